"""Load a wush checkpoint (REFERENCE.md §8, docs/FORMAT.md) in Hugging Face transformers, from the
layout's definition alone (no wush code): every quantized linear decoded to its transformed weights
W~ = E2M1(code) * scale * weight_global_scale, the online block transform x~_j = T_j x_j and the
per-token activation fake-quantization of REFERENCE §1 applied in forward-pre hooks.

    import sys; sys.path.insert(0, "scripts")
    from wush_hf import load_wush_model
    model, tok, info = load_wush_model("gut-wush-mxfp4")      # a LlamaForCausalLM, fp32
    ids = tok("The picture", return_tensors="pt").input_ids
    print(tok.decode(model.generate(ids, max_new_tokens=20)[0]))
"""
import json, os, struct

import torch

E2M1 = [0.0, 0.5, 1.0, 1.5, 2.0, 3.0, 4.0, 6.0]


def read_safetensors(path):
    """name -> (dtype string, shape, raw bytes): the container read directly (no dtype support needed)."""
    with open(path, "rb") as f:
        n = struct.unpack("<Q", f.read(8))[0]
        header = json.loads(f.read(n))
        data = f.read()
    header.pop("__metadata__", None)
    return {k: (v["dtype"], v["shape"], data[v["data_offsets"][0]:v["data_offsets"][1]]) for k, v in header.items()}


def read_checkpoint(d):
    idx = os.path.join(d, "model.safetensors.index.json")
    files = sorted(set(json.load(open(idx))["weight_map"].values())) if os.path.exists(idx) else ["model.safetensors"]
    out = {}
    for f in files:
        out.update(read_safetensors(os.path.join(d, f)))
    return out


NP = {"F32": torch.float32, "BF16": torch.bfloat16, "F16": torch.float16, "U8": torch.uint8, "I64": torch.int64,
      "F8_E8M0": torch.uint8, "F8_E4M3": torch.uint8}


def tensor(entry):
    dtype, shape, raw = entry
    t = torch.frombuffer(bytearray(raw), dtype=NP[dtype]) if raw else torch.empty(0, dtype=NP[dtype])
    return t.reshape(shape)


def e8m0(u8):  # 2^(e - 127); 255 = NaN
    return torch.pow(2.0, u8.to(torch.float64) - 127).to(torch.float32)


def e4m3(u8):  # OCP FP8 E4M3 (bias 7, no infinities, S.1111.111 = NaN)
    b = u8.to(torch.int64)
    e, m = (b >> 3) & 15, (b & 7).to(torch.float64)
    v = torch.where(e == 0, m / 8 * 2.0 ** -6, (1 + m / 8) * torch.pow(2.0, (e - 7).to(torch.float64)))
    return torch.where((b & 0x80) != 0, -v, v).to(torch.float32)


def decode_linear(ts, p):
    """§8: W~[r, k] = E2M1(code) * scale[r, k // G] * weight_global_scale (fp32), T as stored."""
    codes = tensor(ts[p + ".e2m1"]).to(torch.int64)
    nib = torch.stack([codes & 15, codes >> 4], -1).reshape(codes.shape[0], -1)  # low nibble = even column
    mag = torch.tensor(E2M1, dtype=torch.float32)[nib & 7]
    q = torch.where((nib & 8) != 0, -mag, mag)
    sdt = ts[p + ".scale_quant"][0]
    s = tensor(ts[p + ".scale_quant"])
    s = e8m0(s) if sdt == "F8_E8M0" else e4m3(s)
    G = q.shape[1] // s.shape[1]
    wg = tensor(ts[p + ".weight_global_scale"]).reshape(())
    W = (q * s.repeat_interleave(G, 1)) * wg  # the product q*s is exact; one rounding for the global scale
    T = tensor(ts[p + ".transform"]).to(torch.float32)
    return W, T, sdt, float(wg), float(tensor(ts[p + ".activation_global_scale"]).reshape(())), \
        float(tensor(ts[p + ".activation_scale_scale"]).reshape(()))


def rne_e2m1(y):
    """Round |y| to the E2M1 grid, ties to the even code (REFERENCE §1), saturating at 6."""
    a = y.abs()
    grid = torch.tensor(E2M1, dtype=y.dtype, device=y.device)
    mids = (grid[1:] + grid[:-1]) / 2
    k = torch.arange(1, 8, device=y.device)
    code = (a.unsqueeze(-1) > mids).sum(-1) + ((a.unsqueeze(-1) == mids) & (k % 2 == 0)).sum(-1)
    return torch.sign(y) * grid[code]


def act_quant(x, fmt, G):
    """Per-token activation fake-quantization in groups of G along the (transformed) input, REFERENCE §1."""
    sh = x.shape
    xg = x.reshape(-1, G).to(torch.float32)
    amax = xg.abs().amax(-1, keepdim=True)
    nz = amax > 0
    safe = torch.where(nz, amax, torch.ones_like(amax))
    if fmt == "nvfp4":
        g = 10.0
        s = torch.clamp(g * safe / 6, max=448.0).to(torch.float8_e4m3fn).to(torch.float32)
        ok = s > 0  # a scale that rounds to 0 zeroes its group
        s1 = torch.where(ok, s, torch.ones_like(s))
        y = torch.where(ok, rne_e2m1(xg * g / s1) * s1 / g, torch.zeros_like(xg))
    else:
        e = (torch.frexp(safe).exponent - 1).to(torch.float32)  # floor(log2 amax), exactly
        if fmt == "mxfp4":  # reference rule: s = 2^floor(log2 amax), q = RNE(3x/s), x^ = q s / 3
            s = torch.pow(2.0, e)
            y = rne_e2m1(3 * xg / s) * s / 3
        elif fmt == "mxfp4-ocp":  # X = 2^(floor(log2 amax) - 2), q = clamp(RNE(x/X), +-6)
            s = torch.pow(2.0, e - 2)
            y = rne_e2m1(xg / s) * s
        else:
            raise SystemExit(f"interop-check: activation format {fmt} not handled")
    return torch.where(nz, y, torch.zeros_like(y)).reshape(sh)



def load_wush_model(ckpt, transpose_transform=False):
    """-> (LlamaForCausalLM with hooks, tokenizer, info). info["decoded"][p] = (W~, T) as decoded;
    transpose_transform applies T^T (a deliberately wrong reader, for showing a check can fail)."""
    from transformers import AutoTokenizer, LlamaConfig, LlamaForCausalLM

    cfg = json.load(open(os.path.join(ckpt, "config.json")))
    qc = cfg.pop("quantization_config")
    assert qc.get("quant_method") == "wush", f"{ckpt}: not a wush checkpoint"
    fmt, G, acts = qc["format"], qc["group_size"], qc.get("acts", "quantized") == "quantized"
    ts = read_checkpoint(ckpt)
    linears = sorted({k.rsplit(".", 1)[0] for k in ts if k.endswith(".e2m1")})
    dec = {p: decode_linear(ts, p)[:2] for p in linears}
    cfg["torch_dtype"] = cfg["dtype"] = "float32"
    model = LlamaForCausalLM(LlamaConfig.from_dict(cfg)).to(torch.float32)
    sd = {k: tensor(v).to(torch.float32) for k, v in ts.items() if k.rsplit(".", 1)[0] not in dec}
    missing, unexpected = model.load_state_dict(sd, strict=False)
    allowed = {p + ".weight" for p in linears} | ({"lm_head.weight"} if cfg.get("tie_word_embeddings") else set())
    bad = [m for m in missing if m not in allowed]
    if bad or unexpected:
        raise ValueError(f"{ckpt}: state dict mismatch: missing {bad[:5]}, unexpected {list(unexpected)[:5]}")
    if cfg.get("tie_word_embeddings"):
        model.tie_weights()
    mods = dict(model.named_modules())
    for p, (W, T) in dec.items():
        m = mods[p]
        if W.shape != m.weight.shape:
            raise ValueError(f"{p}: decoded {tuple(W.shape)} vs module {tuple(m.weight.shape)} (padded input?)")
        m.weight.data = W.clone()
        Tu = T.transpose(1, 2).contiguous() if transpose_transform else T

        def hook(mod, args, Tu=Tu):
            x = args[0]
            xb = x.to(torch.float32).reshape(*x.shape[:-1], Tu.shape[0], G)
            xt = torch.einsum("bji,...bi->...bj", Tu.to(x.device), xb).reshape(x.shape)  # x~_j = T_j x_j
            if acts:
                xt = act_quant(xt, fmt, G)
            return (xt.to(x.dtype),) + tuple(args[1:])

        m.register_forward_pre_hook(hook)
    tok = AutoTokenizer.from_pretrained(ckpt)
    return model.eval(), tok, {"quantization_config": qc, "decoded": dec}

"""Prefill throughput of Hugging Face transformers' LlamaForCausalLM (PyTorch eager), the baseline
of `wush bench` (tools/cmd_bench.cpp): same model directory, same token ids
(id_i = (7919 i + 13) mod vocab), same warm-up / timed passes, median of the timed passes, each
ended by torch.cuda.synchronize().
Usage: python3 bench/hf_prefill.py MODEL_DIR [--tokens 2048] [--attn eager sdpa] [--warmup 2] [--reps 5]"""
import argparse
import statistics
import time

import torch
import transformers

p = argparse.ArgumentParser()
p.add_argument("model")
p.add_argument("--tokens", type=int, default=2048)
p.add_argument("--attn", nargs="+", default=["eager", "sdpa"])
p.add_argument("--warmup", type=int, default=2)
p.add_argument("--reps", type=int, default=5)
a = p.parse_args()

for attn in a.attn:
    model = transformers.LlamaForCausalLM.from_pretrained(a.model, torch_dtype=torch.bfloat16,
                                                          attn_implementation=attn).cuda().eval()
    V = model.config.vocab_size
    ids = ((torch.arange(a.tokens, dtype=torch.long) * 7919 + 13) % V).unsqueeze(0).cuda()
    times = []
    with torch.no_grad():
        for i in range(a.warmup + a.reps):
            torch.cuda.synchronize()
            t0 = time.perf_counter()
            logits = model(ids, use_cache=False).logits
            torch.cuda.synchronize()
            if i >= a.warmup:
                times.append(time.perf_counter() - t0)
    assert torch.isfinite(logits[0, -1, 0]), "non-finite logit"
    med = statistics.median(times)
    print(f"hf bench: {a.model}, {model.config.num_hidden_layers} layers, cuda bf16, attn {attn}, "
          f"{a.tokens} tokens: median {med * 1e3:.2f} ms (min {min(times) * 1e3:.2f}, max {max(times) * 1e3:.2f}), "
          f"{a.tokens / med:.0f} tokens/s, logits {logits.dtype}", flush=True)
    del model, logits
    torch.cuda.empty_cache()

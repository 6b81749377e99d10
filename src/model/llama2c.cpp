// llama2.c checkpoints (../shared/data/README.md "models/"): a header of 7 x int32
// (dim, hidden_dim, n_layers, n_heads, n_kv_heads, vocab_size, seq_len), then fp32 tensors in the
// order token_embedding, rms_att, wq, wk, wv, wo, rms_ffn, w1, w2, w3, rms_final, freq_cis_real,
// freq_cis_imag (legacy RoPE tables, skipped), and wcls when vocab_size < 0 (unshared classifier).
// Every matrix is stored [out, in] row-major, as torch.nn.Linear keeps it.
//
// llama2.c's RoPE rotates interleaved pairs (2j, 2j+1) of each head; Hugging Face Llama rotates
// halves (j, j + head_dim/2) with the same frequency theta^(-2j/head_dim). Permuting the rows of
// q_proj/k_proj per head as HF's convert_llama_weights_to_hf.py does (new row p*hd/2 + j = old row
// 2j + p) makes the rotate-half forward pass compute exactly what run.c computes.
#include "model/llama2c.h"

#include <cstdint>
#include <cstring>

#include "core/atomic_file.h"
#include "core/error.h"
#include "core/paths.h"

namespace wush {

namespace {

// [n_heads * hd, in] interleaved-pair rows -> rotate-half rows (see the file comment).
at::Tensor permute_rope_rows(const at::Tensor& w, int64_t n_heads) {
  int64_t rows = w.size(0), cols = w.size(1), hd = rows / n_heads;
  return w.view({n_heads, hd / 2, 2, cols}).transpose(1, 2).reshape({rows, cols}).contiguous();
}

struct Reader {
  const std::string& path;
  const float* data;
  int64_t n, pos = 0;
  at::Tensor take(at::IntArrayRef shape) {
    int64_t numel = 1;
    for (int64_t s : shape) numel *= s;
    WUSH_ASSERT(pos + numel <= n);
    at::Tensor t = at::from_blob(const_cast<float*>(data + pos), shape, at::kFloat).clone();
    pos += numel;
    return t;
  }
};

}  // namespace

Model load_llama2c(const std::string& path) {
  WUSH_CHECK(path_exists(path), "%s: no such llama2.c checkpoint", path.c_str());
  std::string bytes = read_file(path);
  WUSH_CHECK(bytes.size() >= 7 * sizeof(int32_t), "%s: %zu bytes, too short for a llama2.c header (28 bytes)",
             path.c_str(), bytes.size());
  int32_t h[7];
  std::memcpy(h, bytes.data(), sizeof h);
  const int64_t dim = h[0], hidden = h[1], n_layers = h[2], n_heads = h[3], n_kv = h[4], seq_len = h[6];
  const bool shared_cls = h[5] > 0;
  const int64_t vocab = shared_cls ? h[5] : -int64_t(h[5]);
  WUSH_CHECK(dim > 0 && hidden > 0 && n_layers > 0 && n_heads > 0 && n_kv > 0 && vocab > 0 && seq_len > 0,
             "%s: not a llama2.c checkpoint (header dim=%lld hidden_dim=%lld n_layers=%lld n_heads=%lld "
             "n_kv_heads=%lld vocab_size=%d seq_len=%lld has a non-positive field)",
             path.c_str(), (long long)dim, (long long)hidden, (long long)n_layers, (long long)n_heads,
             (long long)n_kv, h[5], (long long)seq_len);
  WUSH_CHECK(dim % n_heads == 0 && (dim / n_heads) % 2 == 0 && n_heads % n_kv == 0 && dim < (1 << 20) &&
                 hidden < (1 << 22) && n_layers < 4096 && vocab < (1 << 24) && seq_len < (1 << 24),
             "%s: not a llama2.c checkpoint (implausible header dim=%lld n_heads=%lld n_kv_heads=%lld: dim must "
             "split into heads of even size, n_heads a multiple of n_kv_heads)",
             path.c_str(), (long long)dim, (long long)n_heads, (long long)n_kv);
  const int64_t hd = dim / n_heads, kv_dim = n_kv * hd;

  // Expected float count from the header's shapes; the file must match it exactly.
  const int64_t per_layer = dim /*rms_att*/ + dim * dim /*wq*/ + 2 * kv_dim * dim /*wk,wv*/ + dim * dim /*wo*/ +
                            dim /*rms_ffn*/ + 3 * hidden * dim /*w1,w2,w3*/;
  const int64_t floats = vocab * dim + n_layers * per_layer + dim /*rms_final*/ + seq_len * hd /*freq_cis*/ +
                         (shared_cls ? 0 : vocab * dim);
  const int64_t want = 28 + 4 * floats, have = int64_t(bytes.size());
  WUSH_CHECK(have == want,
             "%s: %s llama2.c checkpoint: %lld bytes, but the header (dim=%lld hidden_dim=%lld n_layers=%lld "
             "n_heads=%lld n_kv_heads=%lld vocab_size=%d seq_len=%lld) needs exactly %lld",
             path.c_str(), have < want ? "truncated" : "oversized", (long long)have, (long long)dim,
             (long long)hidden, (long long)n_layers, (long long)n_heads, (long long)n_kv, h[5], (long long)seq_len,
             (long long)want);

  Model m;
  m.path = path;
  ModelConfig& c = m.config;
  c.architecture = "LlamaForCausalLM";
  c.model_type = "llama";
  c.hidden_size = dim;
  c.intermediate_size = hidden;
  c.num_layers = n_layers;
  c.num_heads = n_heads;
  c.num_kv_heads = n_kv;
  c.head_dim = hd;
  c.vocab_size = vocab;
  c.max_position = seq_len;
  c.rope_theta = 10000.0;
  c.rms_norm_eps = 1e-5;
  c.tie_word_embeddings = shared_cls;
  c.bos_token_id = 1;
  c.eos_token_id = 2;
  c.dtype = "float32";

  Reader r{path, reinterpret_cast<const float*>(bytes.data() + 28), floats};
  auto& w = m.weights;
  auto L = [](int64_t l, const char* s) { return "model.layers." + std::to_string(l) + "." + s; };
  w["model.embed_tokens.weight"] = r.take({vocab, dim});
  // Per-kind stacks over layers, in file order.
  at::Tensor rms_att = r.take({n_layers, dim}), wq = r.take({n_layers, dim, dim}),
             wk = r.take({n_layers, kv_dim, dim}), wv = r.take({n_layers, kv_dim, dim}),
             wo = r.take({n_layers, dim, dim}), rms_ffn = r.take({n_layers, dim}),
             w1 = r.take({n_layers, hidden, dim}), w2 = r.take({n_layers, dim, hidden}),
             w3 = r.take({n_layers, hidden, dim});
  for (int64_t l = 0; l < n_layers; ++l) {
    w[L(l, "input_layernorm.weight")] = rms_att[l].clone();
    w[L(l, "self_attn.q_proj.weight")] = permute_rope_rows(wq[l], n_heads);
    w[L(l, "self_attn.k_proj.weight")] = permute_rope_rows(wk[l], n_kv);
    w[L(l, "self_attn.v_proj.weight")] = wv[l].clone();
    w[L(l, "self_attn.o_proj.weight")] = wo[l].clone();
    w[L(l, "post_attention_layernorm.weight")] = rms_ffn[l].clone();
    w[L(l, "mlp.gate_proj.weight")] = w1[l].clone();
    w[L(l, "mlp.down_proj.weight")] = w2[l].clone();
    w[L(l, "mlp.up_proj.weight")] = w3[l].clone();
  }
  w["model.norm.weight"] = r.take({dim});
  r.pos += seq_len * hd;  // freq_cis_real, freq_cis_imag: [seq_len, hd/2] each, recomputed by the forward pass
  if (!shared_cls) w["lm_head.weight"] = r.take({vocab, dim});
  WUSH_ASSERT(r.pos == floats);

  std::string tok = path_join(path_parent(path), "tok512.bin");
  m.tokenizer_path = path_exists(tok) ? tok : "";
  return m;
}

}  // namespace wush

// The forward pass (see forward.h), written after Hugging Face's modeling_llama.py / modeling_qwen3.py:
//   h = embed(tokens)
//   per block: h += o_proj(attn(rope(q_proj(n1)), rope(k_proj(n1)), v_proj(n1))), n1 = rmsnorm(h)
//              h += down_proj(silu(gate_proj(n2)) * up_proj(n2)),                   n2 = rmsnorm(h)
//   logits = lm_head(rmsnorm(h))
// RMSNorm: y = w * (x / sqrt(mean(x^2) + eps)) with the normalization in fp32 (LlamaRMSNorm).
// RoPE: rotate-half, x * cos + rotate_half(x) * sin with angles pos * inv_freq (fp32), cast to the
// compute dtype. Attention: softmax(q k^T / sqrt(head_dim) + causal mask) in fp32, cast back (eager).
#include "model/forward.h"

#include <torch/csrc/api/include/torch/version.h>

#include <cmath>
#include <limits>

#include "core/error.h"

// at::scaled_dot_product_attention with enable_gqa exists from libtorch 2.5 on (Debian's 1.13 lacks it).
#if TORCH_VERSION_MAJOR > 2 || (TORCH_VERSION_MAJOR == 2 && TORCH_VERSION_MINOR >= 5)
#define WUSH_HAVE_SDPA 1
#else
#define WUSH_HAVE_SDPA 0
#endif

namespace wush {

bool sdpa_available() { return WUSH_HAVE_SDPA; }

namespace {

std::string layer_name(int64_t l, const char* suffix) {
  return "model.layers." + std::to_string(l) + "." + suffix;
}

at::Tensor rotate_half(const at::Tensor& x) {
  int64_t h = x.size(-1) / 2;
  return at::cat({-x.narrow(-1, h, h), x.narrow(-1, 0, h)}, -1);
}

}  // namespace

at::Tensor rope_inv_freq(const ModelConfig& c) {
  const int64_t hd = c.head_dim;
  // _compute_default_rope_parameters: 1 / theta^(2j / head_dim), fp32.
  at::Tensor exps = at::arange(0, hd, 2, at::kLong).to(at::kFloat) / double(hd);
  at::Tensor inv = at::reciprocal(at::pow(c.rope_theta, exps));
  const RopeScaling& s = c.rope_scaling;
  if (s.type.empty() || s.type == "default") return inv;
  if (s.type == "linear") return inv / s.factor;
  WUSH_CHECK(s.type == "llama3", "rope_scaling type '%s' is not supported (valid: none, linear, llama3)",
             s.type.c_str());
  // _compute_llama3_parameters: keep high frequencies, divide low ones by `factor`, interpolate between.
  const double old_ctx = double(s.original_max_position);
  const double low_wavelen = old_ctx / s.low_freq_factor, high_wavelen = old_ctx / s.high_freq_factor;
  at::Tensor wavelen = 2 * M_PI / inv;
  at::Tensor inv_l = at::where(wavelen > low_wavelen, inv / s.factor, inv);
  at::Tensor smooth = (old_ctx / wavelen - s.low_freq_factor) / (s.high_freq_factor - s.low_freq_factor);
  at::Tensor smoothed = (1 - smooth) * inv_l / s.factor + smooth * inv_l;
  at::Tensor medium = at::logical_not(wavelen < high_wavelen).logical_and(at::logical_not(wavelen > low_wavelen));
  return at::where(medium, smoothed, inv_l);
}

Transformer::Transformer(const Model& m, at::Device device, at::ScalarType dtype, bool external_linears)
    : cfg_(m.config), device_(device), dtype_(dtype) {
  WUSH_CHECK(dtype == at::kFloat || dtype == at::kBFloat16 || dtype == at::kDouble,
             "%s: compute dtype %s is not supported (fp32, bf16; fp64 for tests)", m.path.c_str(),
             c10::toString(dtype));
  ModelConfig& c = cfg_;
  WUSH_CHECK(c.hidden_size > 0 && c.num_layers > 0 && c.num_heads > 0 && c.vocab_size > 0,
             "%s: config lacks hidden_size/num_layers/num_heads/vocab_size", m.path.c_str());
  if (c.num_kv_heads <= 0) c.num_kv_heads = c.num_heads;
  if (c.head_dim <= 0) c.head_dim = c.hidden_size / c.num_heads;
  WUSH_CHECK(c.num_heads % c.num_kv_heads == 0 && c.head_dim % 2 == 0,
             "%s: num_attention_heads %lld must be a multiple of num_key_value_heads %lld and head_dim %lld even",
             m.path.c_str(), (long long)c.num_heads, (long long)c.num_kv_heads, (long long)c.head_dim);
  for (const auto& [name, t] : m.weights) w_[name] = t.to(device_, dtype_);

  // Embedding and head; a tied checkpoint may store either one of the two.
  const std::string emb = "model.embed_tokens.weight", lm = "lm_head.weight";
  if (!w_.count(emb) && c.tie_word_embeddings && w_.count(lm)) w_[emb] = w_[lm];
  if (c.tie_word_embeddings || !w_.count(lm)) {
    WUSH_CHECK(c.tie_word_embeddings, "%s: missing tensor '%s' (tie_word_embeddings is false)", m.path.c_str(),
               lm.c_str());
    w_[lm] = weight(emb);
  }
  const int64_t H = c.hidden_size, I = c.intermediate_size, hd = c.head_dim;
  const int64_t q_out = c.num_heads * hd, kv_out = c.num_kv_heads * hd;
  auto expect = [&](const std::string& name, std::vector<int64_t> shape) {
    const at::Tensor& t = weight(name);
    WUSH_CHECK(t.sizes() == at::IntArrayRef(shape), "%s: tensor '%s' has shape %s, the config needs %s",
               m.path.c_str(), name.c_str(), c10::str(t.sizes()).c_str(), c10::str(at::IntArrayRef(shape)).c_str());
  };
  expect(emb, {c.vocab_size, H});
  expect(lm, {c.vocab_size, H});
  expect("model.norm.weight", {H});
  const std::vector<int64_t> shapes[7] = {{q_out, H}, {kv_out, H}, {kv_out, H}, {H, q_out},
                                          {I, H},     {I, H},      {H, I}};
  names_.resize(size_t(c.num_layers));
  for (int64_t l = 0; l < c.num_layers; ++l) {
    expect(layer_name(l, "input_layernorm.weight"), {H});
    expect(layer_name(l, "post_attention_layernorm.weight"), {H});
    if (c.qk_norm) {
      expect(layer_name(l, "self_attn.q_norm.weight"), {hd});
      expect(layer_name(l, "self_attn.k_norm.weight"), {hd});
    }
    for (int i = 0; i < 7; ++i) {
      names_[size_t(l)][size_t(i)] = linear_prefix(l, i);
      // A quantized model's linears live outside (ForwardHooks::linear): their weights may be absent.
      if (external_linears && !find(names_[size_t(l)][size_t(i)] + ".weight")) continue;
      expect(names_[size_t(l)][size_t(i)] + ".weight", shapes[i]);
      if (c.attention_bias && i < 3) expect(names_[size_t(l)][size_t(i)] + ".bias", {shapes[i][0]});
    }
  }
  inv_freq_ = rope_inv_freq(c).to(device_);
}

const at::Tensor* Transformer::find(const std::string& name) const {
  auto it = w_.find(name);
  return it == w_.end() ? nullptr : &it->second;
}

const at::Tensor& Transformer::weight(const std::string& name) const {
  const at::Tensor* t = find(name);
  WUSH_CHECK(t, "forward pass: no tensor '%s'", name.c_str());
  return *t;
}

void Transformer::set_weight(const std::string& name, const at::Tensor& w) {
  const at::Tensor* old = find(name);
  const std::string bias = ".bias";
  if (!old && name.size() > bias.size() && name.compare(name.size() - bias.size(), bias.size(), bias) == 0) {
    // A new bias for an existing linear: shape [out].
    const at::Tensor* lin = find(name.substr(0, name.size() - bias.size()) + ".weight");
    WUSH_CHECK(lin && lin->dim() == 2, "set_weight: '%s' is not the bias of a linear of this model", name.c_str());
    WUSH_CHECK(w.dim() == 1 && w.size(0) == lin->size(0), "set_weight: bias '%s' has shape %s, needs [%lld]",
               name.c_str(), c10::str(w.sizes()).c_str(), (long long)lin->size(0));
  } else {
    WUSH_CHECK(old, "set_weight: the model has no tensor '%s'", name.c_str());
    WUSH_CHECK(w.sizes() == old->sizes(), "set_weight: '%s' has shape %s, the model's is %s", name.c_str(),
               c10::str(w.sizes()).c_str(), c10::str(old->sizes()).c_str());
  }
  w_[name] = w.to(device_, dtype_);
}

at::Tensor Transformer::rms_norm(const at::Tensor& x, const at::Tensor& w) const {
  at::Tensor xf = x.to(at::kFloat);
  if (dtype_ == at::kDouble) xf = x;
  at::Tensor y = xf * at::rsqrt(xf.pow(2).mean(-1, /*keepdim=*/true) + cfg_.rms_norm_eps);
  return w * y.to(dtype_);
}

at::Tensor Transformer::norm(const std::string& name, const at::Tensor& x, const ForwardHooks* hk) const {
  if (!hk && default_hooks_) hk = &*default_hooks_;
  const at::Tensor& w = weight(name + ".weight");
  if (hk && hk->norm) {
    at::Tensor y = hk->norm(name, x, w);
    if (y.defined()) return y;
  }
  return rms_norm(x, w);
}

std::pair<at::Tensor, at::Tensor> Transformer::rope_cos_sin(int64_t pos0, int64_t T) {
  at::Tensor pos = at::arange(pos0, pos0 + T, at::TensorOptions().dtype(at::kLong).device(device_)).to(at::kFloat);
  at::Tensor freqs = at::outer(pos, inv_freq_);  // [T, hd/2], one fp32 product per entry as in HF
  at::Tensor emb = at::cat({freqs, freqs}, -1);
  return {emb.cos().to(dtype_), emb.sin().to(dtype_)};
}

at::Tensor Transformer::linear(int64_t layer, int i, const at::Tensor& x, const ForwardHooks* hk) {
  if (!hk && default_hooks_) hk = &*default_hooks_;
  const std::string& name = names_[size_t(layer)][size_t(i)];
  if (hk && hk->on_linear_input) hk->on_linear_input(name, x);
  if (hk && hk->linear) {
    at::Tensor y = hk->linear(name, x);
    if (y.defined()) return y;
  }
  const at::Tensor& w = weight(name + ".weight");
  const at::Tensor* b = find(name + ".bias");
  return b ? at::linear(x, w, *b) : at::linear(x, w);
}

at::Tensor Transformer::embed(const at::Tensor& tokens) {
  WUSH_CHECK(tokens.dim() == 2, "forward: tokens must be [batch, time], got %s", c10::str(tokens.sizes()).c_str());
  return at::embedding(weight("model.embed_tokens.weight"), tokens.to(device_, at::kLong));
}

at::Tensor Transformer::block(int64_t layer, const at::Tensor& h, const ForwardHooks* hk) {
  return block_at(layer, h, 0, nullptr, hk);
}

at::Tensor Transformer::block_at(int64_t l, const at::Tensor& h, int64_t pos0, KVCache* cache, const ForwardHooks* hk) {
  WUSH_CHECK(l >= 0 && l < cfg_.num_layers, "forward: layer %lld outside 0..%lld", (long long)l,
             (long long)cfg_.num_layers - 1);
  WUSH_CHECK(h.dim() == 3 && h.size(2) == cfg_.hidden_size, "forward: hidden states must be [B,T,%lld], got %s",
             (long long)cfg_.hidden_size, c10::str(h.sizes()).c_str());
  const int64_t B = h.size(0), T = h.size(1), nh = cfg_.num_heads, nkv = cfg_.num_kv_heads, hd = cfg_.head_dim;

  // Attention.
  at::Tensor x = norm(layer_name(l, "input_layernorm"), h, hk);
  at::Tensor q = linear(l, 0, x, hk).view({B, T, nh, hd});
  at::Tensor k = linear(l, 1, x, hk).view({B, T, nkv, hd});
  at::Tensor v = linear(l, 2, x, hk).view({B, T, nkv, hd}).transpose(1, 2);
  if (cfg_.qk_norm) {  // Qwen3: RMSNorm over head_dim before RoPE
    q = rms_norm(q, weight(layer_name(l, "self_attn.q_norm.weight")));
    k = rms_norm(k, weight(layer_name(l, "self_attn.k_norm.weight")));
  }
  q = q.transpose(1, 2);  // [B, nh, T, hd]
  k = k.transpose(1, 2);  // [B, nkv, T, hd]
  auto [cos, sin] = rope_cos_sin(pos0, T);
  q = q * cos + rotate_half(q) * sin;
  k = k * cos + rotate_half(k) * sin;
  if (cache) {
    WUSH_CHECK(pos0 + T <= cache->capacity, "forward: KV cache full (%lld + %lld positions > capacity %lld)",
               (long long)pos0, (long long)T, (long long)cache->capacity);
    WUSH_CHECK(cache->k[size_t(l)].size(0) == B, "forward: KV cache batch %lld != tokens batch %lld",
               (long long)cache->k[size_t(l)].size(0), (long long)B);
    cache->k[size_t(l)].narrow(2, pos0, T).copy_(k);
    cache->v[size_t(l)].narrow(2, pos0, T).copy_(v);
    k = cache->k[size_t(l)].narrow(2, 0, pos0 + T);
    v = cache->v[size_t(l)].narrow(2, 0, pos0 + T);
  }
  at::Tensor h1 = h + linear(l, 3, attention(q, k, v, pos0), hk);

  // SwiGLU MLP.
  x = norm(layer_name(l, "post_attention_layernorm"), h1, hk);
  at::Tensor g = linear(l, 4, x, hk), u = linear(l, 5, x, hk);
  return h1 + linear(l, 6, at::silu(g) * u, hk);
}

void Transformer::set_attention(const AttentionOptions& a) {
  WUSH_CHECK(!a.sdpa || sdpa_available(), "attention 'sdpa' needs libtorch >= 2.5 (this build: %s)", TORCH_VERSION);
  WUSH_CHECK(a.query_chunk >= 1, "attention query chunk %lld must be >= 1", (long long)a.query_chunk);
  attn_ = a;
}

at::Tensor Transformer::attention(const at::Tensor& q, const at::Tensor& k, const at::Tensor& v, int64_t pos0) const {
  const int64_t B = q.size(0), nh = q.size(1), T = q.size(2), hd = q.size(3), nkv = k.size(1), rep = nh / nkv;
  const double scale = 1.0 / std::sqrt(double(hd));
#if WUSH_HAVE_SDPA
  // is_causal aligns the mask top-left, right only when queries start at key 0 (or one query sees all keys).
  if (attn_.sdpa && (pos0 == 0 || T == 1)) {
    at::Tensor o = at::scaled_dot_product_attention(q, k, v, /*attn_mask=*/{}, /*dropout_p=*/0.0,
                                                    /*is_causal=*/T > 1, scale, /*enable_gqa=*/rep > 1);
    return o.transpose(1, 2).reshape({B, T, nh * hd});
  }
#endif
  const int64_t chunk = attn_.query_chunk;
  // GQA without copying K/V: the rep query heads of one KV head are stacked along time,
  // [B, nkv, rep*Tc, hd] x [B, nkv, hd, S].
  at::Tensor qg = q.reshape({B, nkv, rep, T, hd});
  std::vector<at::Tensor> outs;
  for (int64_t t0 = 0; t0 < T; t0 += chunk) {
    const int64_t tc = std::min(chunk, T - t0), S = pos0 + t0 + tc;  // the chunk's last query sees S keys
    at::Tensor scores = at::matmul(qg.narrow(3, t0, tc).reshape({B, nkv, rep * tc, hd}), k.narrow(2, 0, S).transpose(-1, -2));
    scores.mul_(scale);
    if (tc > 1) {  // query t0+i (position pos0+t0+i) sees keys 0..pos0+t0+i
      at::Tensor future = at::ones({tc, S}, at::TensorOptions().dtype(at::kBool).device(device_)).triu(pos0 + t0 + 1);
      scores.view({B, nkv, rep, tc, S}).masked_fill_(future, -std::numeric_limits<double>::infinity());
    }
    at::Tensor probs = at::softmax(scores, -1, dtype_ == at::kDouble ? at::kDouble : at::kFloat).to(dtype_);
    outs.push_back(at::matmul(probs, v.narrow(2, 0, S)).view({B, nkv, rep, tc, hd}));
  }
  at::Tensor o = outs.size() == 1 ? outs[0] : at::cat(outs, 3);
  return o.reshape({B, nh, T, hd}).transpose(1, 2).reshape({B, T, nh * hd});
}

at::Tensor Transformer::head(const at::Tensor& h, const ForwardHooks* hk) {
  at::Tensor x = norm("model.norm", h, hk);
  at::Tensor logits = at::linear(x, weight("lm_head.weight"));
  return dtype_ == at::kDouble ? logits : logits.to(at::kFloat);
}

at::Tensor Transformer::forward(const at::Tensor& tokens, const ForwardHooks* hk) {
  at::Tensor h = embed(tokens);
  for (int64_t l = 0; l < cfg_.num_layers; ++l) h = block_at(l, h, 0, nullptr, hk);
  return head(h, hk);
}

KVCache Transformer::new_cache(int64_t batch, int64_t capacity) {
  KVCache c;
  c.capacity = capacity > 0 ? capacity : cfg_.max_position;
  auto opt = at::TensorOptions().dtype(dtype_).device(device_);
  for (int64_t l = 0; l < cfg_.num_layers; ++l) {
    c.k.push_back(at::zeros({batch, cfg_.num_kv_heads, c.capacity, cfg_.head_dim}, opt));
    c.v.push_back(at::zeros({batch, cfg_.num_kv_heads, c.capacity, cfg_.head_dim}, opt));
  }
  return c;
}

at::Tensor Transformer::forward_cached(const at::Tensor& tokens, KVCache& cache, const ForwardHooks* hk) {
  WUSH_CHECK(int64_t(cache.k.size()) == cfg_.num_layers, "forward: KV cache has %zu layers, the model %lld",
             cache.k.size(), (long long)cfg_.num_layers);
  at::Tensor h = embed(tokens);
  for (int64_t l = 0; l < cfg_.num_layers; ++l) h = block_at(l, h, cache.length, &cache, hk);
  cache.length += tokens.size(1);
  return head(h, hk);
}

}  // namespace wush

// The transformer forward pass in ATen ops (CPU and CUDA, fp32 or bf16 compute): Llama, Mistral,
// Qwen2 (q/k/v biases), Qwen3 (q_norm/k_norm over head_dim before RoPE), with GQA, RMSNorm in fp32,
// rotate-half RoPE (rope_theta, "llama3"/"linear" rope_scaling), SwiGLU MLP, tied or separate lm_head.
// It follows Hugging Face's modeling_llama.py (eager attention) operation for operation. Pure ATen,
// so autograd can backpropagate through it (LATMiX training); the KV cache is for inference only.
#pragma once
#include <ATen/ATen.h>

#include <array>
#include <functional>
#include <map>
#include <optional>
#include <string>
#include <vector>

#include "model/model.h"

namespace wush {

// Hooks into the seven quantizable linears of every block (kLinearNames); `name` is
// linear_prefix(layer, i), e.g. "model.layers.3.self_attn.q_proj"; x is the linear's input [B,T,C]
// in the compute dtype.
struct ForwardHooks {
  // Observer (calibration statistics).
  std::function<void(const std::string& name, const at::Tensor& x)> on_linear_input;
  // Override: a defined result replaces the linear's output, bias included (quantized layers:
  // online transform + activation fake-quant + dequantized weight). An undefined result falls
  // back to x W^T + b.
  std::function<at::Tensor(const std::string& name, const at::Tensor& x)> linear;
  // RMSNorm override: `name` is "model.layers.3.input_layernorm",
  // "model.layers.3.post_attention_layernorm" or "model.norm"; h is the residual stream [B,T,H],
  // gain the norm's weight. A defined result replaces gain * h / rms(h). LATMiX uses it: its
  // affine residual-stream transform needs the RMS of the untransformed stream (src/latmix/).
  // Not applied to Qwen3's q_norm/k_norm.
  std::function<at::Tensor(const std::string& name, const at::Tensor& h, const at::Tensor& gain)> norm;
};

// Keys and values of every layer for incremental decoding: [B, n_kv_heads, capacity, head_dim].
struct KVCache {
  std::vector<at::Tensor> k, v;
  int64_t length = 0;    // positions filled
  int64_t capacity = 0;
};

// How block() computes attention. Eager (default) follows HF's eager attention operation for
// operation, in query chunks of `query_chunk`. sdpa: at::scaled_dot_product_attention (libtorch >= 2.5,
// fused flash/memory-efficient kernels, fp32 accumulation without the bf16 rounding of the
// probabilities) for prefill from position 0 and single-token decoding; other calls stay eager.
struct AttentionOptions {
  bool sdpa = false;
  int64_t query_chunk = 128;
};
bool sdpa_available();  // this build's libtorch has at::scaled_dot_product_attention with GQA

class Transformer {
 public:
  // The model's weights on `device` in `dtype` (at::kFloat or at::kBFloat16; at::kDouble for tests).
  // Where device and dtype already match, the tensors share storage with `m` (never written in place).
  // external_linears: the seven linears of each block may lack weights because a ForwardHooks::linear
  // override computes them (quantized models); running such a block without the hook is an error.
  Transformer(const Model& m, at::Device device = at::kCPU, at::ScalarType dtype = at::kFloat,
              bool external_linears = false);

  const ModelConfig& config() const { return cfg_; }
  at::Device device() const { return device_; }
  at::ScalarType dtype() const { return dtype_; }

  at::Tensor embed(const at::Tensor& tokens);  // int64 [B,T] -> [B,T,H]
  // One block at positions 0..T-1 with a causal mask. Right-padded batches are exact at every
  // position before the padding (causal attention never looks right), so batched scoring needs no
  // padding mask.
  at::Tensor block(int64_t layer, const at::Tensor& h, const ForwardHooks* hk = nullptr);
  at::Tensor head(const at::Tensor& h, const ForwardHooks* hk = nullptr);  // final norm + lm_head -> fp32 logits [B,T,V]
  at::Tensor forward(const at::Tensor& tokens, const ForwardHooks* hk = nullptr);  // logits [B,T,V]

  // Incremental decoding: tokens [B,T] continue the cached sequence at positions
  // cache.length .. cache.length+T-1; returns their fp32 logits [B,T,V] and extends the cache.
  KVCache new_cache(int64_t batch, int64_t capacity = 0);  // capacity 0: config max_position
  at::Tensor forward_cached(const at::Tensor& tokens, KVCache& cache, const ForwardHooks* hk = nullptr);

  // Current weight by Hugging Face name (in the compute dtype on the device); wush::Error if absent.
  const at::Tensor& weight(const std::string& name) const;
  bool has_weight(const std::string& name) const { return w_.count(name) > 0; }
  // Replaces a weight (shape must match), or adds a bias "<linear>.bias" of shape [out]. The head
  // keeps its own "lm_head.weight" entry even when tied: setting "model.embed_tokens.weight" does
  // not change the head (set both), setting "lm_head.weight" unties them.
  void set_weight(const std::string& name, const at::Tensor& w);

  // Hooks used whenever a call passes none (a quantized model installs its W4A4 linears here, so
  // every evaluation path runs them); std::nullopt removes them.
  void set_default_hooks(std::optional<ForwardHooks> hk) { default_hooks_ = std::move(hk); }

  // wush::Error if sdpa is asked for and !sdpa_available(), or query_chunk < 1.
  void set_attention(const AttentionOptions& a);
  const AttentionOptions& attention_options() const { return attn_; }

 private:
  at::Tensor block_at(int64_t layer, const at::Tensor& h, int64_t pos0, KVCache* cache, const ForwardHooks* hk);
  at::Tensor linear(int64_t layer, int i, const at::Tensor& x, const ForwardHooks* hk);
  // Causal softmax(q k^T / sqrt(hd)) v for queries at positions pos0.. (HF eager attention, fp32
  // softmax). Queries run in chunks of attn_.query_chunk: a chunk needs only the keys up to its last
  // position, which skips most of the masked triangle (62% of the score work at T = 512 with
  // chunks of 128) and bounds the scores' memory.
  at::Tensor attention(const at::Tensor& q, const at::Tensor& k, const at::Tensor& v, int64_t pos0) const;
  AttentionOptions attn_;
  at::Tensor rms_norm(const at::Tensor& x, const at::Tensor& w) const;
  // rms_norm of the weight `name`.weight, or the ForwardHooks::norm override.
  at::Tensor norm(const std::string& name, const at::Tensor& x, const ForwardHooks* hk) const;
  std::pair<at::Tensor, at::Tensor> rope_cos_sin(int64_t pos0, int64_t T);  // [T, head_dim] each, dtype_
  const at::Tensor* find(const std::string& name) const;

  ModelConfig cfg_;
  at::Device device_;
  at::ScalarType dtype_;
  std::map<std::string, at::Tensor> w_;
  std::vector<std::array<std::string, 7>> names_;  // linear_prefix(layer, i)
  at::Tensor inv_freq_;                           // fp32 [head_dim/2] on device
  at::Tensor cos_, sin_;                          // cached tables for positions 0..cached_len-1
  std::optional<ForwardHooks> default_hooks_;
};

// HF's rope inverse frequencies with rope_scaling applied (_compute_default_rope_parameters,
// _compute_llama3_parameters, linear), fp32 [head_dim/2].
at::Tensor rope_inv_freq(const ModelConfig& c);

}  // namespace wush

// Where the LATMiX transforms sit in a Llama-style model, and the folded model (REFERENCE.md §5).
//
// Notation: h is the original residual stream, T1(x) = A x + v (n = hidden_size), T2(y) = A2 y + v2
// (n = head_dim), B2 = diag(A2, ..., A2) over the heads. RMSNorm gains g are folded into the next
// linears first: W' = W diag(g) for q/k/v (input_layernorm) and gate/up (post_attention_layernorm).
//
//   residual stream   h~ = A h + v                embed rows: E~ = E A^T + v ("shift after embedding")
//   q, k, gate, up    W~ = W' A^{-1},             bias b~ = b - W' A^{-1} v
//   v_proj            W~ = B2 W' A^{-1},          bias b~ = B2 (b - W' A^{-1} v) + [v2; ...; v2]
//   o_proj            W~ = A W_o B2^{-1},         bias b~ = -A W_o B2^{-1} [v2; ...; v2]
//   down_proj         W~ = A W_d;  online: a fixed block Hadamard on its input (pipeline: the
//                     "hadamard" transform on down_proj, identity on the other six)
//   lm_head           unchanged (untied from the embedding)
// T2 is exact because attention mixes values with weights that sum to 1:
//   sum_j p_j (A2 v_j + v2) = A2 (sum_j p_j v_j) + v2, per head.
// o_proj and down_proj write A (.) into the stream, so h~ stays A h + v through every block.
//
// RMSNorm. RMS(A x + v) != RMS(x) for a non-orthogonal A (or any v != 0), so the norm cannot stay
// as it is on the transformed stream. (The LATMiX paper's text was not available to us, only its
// abstract and REFERENCE §5; we resolve it so that the folded model is exact.) The norm keeps
// computing the statistic of the *original* stream, online, from the transformed one:
//   u = A^{-1} (h~ - v)            (= h; triangular solves through the parameterization)
//   r = sqrt(mean(u^2) + eps)      (the original RMSNorm statistic, fp32)
//   z~ = v + (h~ - v) / r          (= A (h / r) + v = T1(normalized h))
// z~ is exactly T1 of the gain-free normalized input, which is what the folded q/k/v/gate/up
// (W' A^{-1}, bias -W' A^{-1} v) expect, and it is the tensor the quantized layers fake-quantize
// in MX groups (the point of T1). Equivalent to "T1^{-1} before the norm, T1 after it" but needs
// one solve instead of a solve and a product. The final norm returns g * u / r (original
// coordinates) and lm_head stays the original one, so the logits are unchanged.
// Cost at inference: one n x n triangular solve pair per token per norm, in high precision (like
// the norm itself; never quantized).
//
// The norm override goes through ForwardHooks::norm (model/forward.h); the linears of the folded
// model are ordinary linears with biases (Transformer uses any "<linear>.bias" present).
#pragma once
#include <ATen/ATen.h>

#include <map>
#include <memory>
#include <string>

#include "latmix/latmix_transforms.h"
#include "model/forward.h"
#include "model/model.h"

namespace wush::latmix {

// The original weights (on t's device, in t's dtype) with the RMSNorm gains folded in and the
// transforms applied as above: every tensor of the folded model that differs from the original
// ("model.embed_tokens.weight", "lm_head.weight" (original values), the seven linears' weights and
// the six biases, norm gains set to 1 except model.norm). Differentiable in t's parameters.
// `base`: m's weights already moved to t's device/dtype (training calls this every step).
std::map<std::string, at::Tensor> transformed_weights(const std::map<std::string, at::Tensor>& base,
                                                      const ModelConfig& cfg, const LatmixTransforms& t);
std::map<std::string, at::Tensor> base_weights(const Model& m, at::Device d, at::ScalarType s);

// The RMSNorm override for the transformed stream (above). name: the norm's name as
// ForwardHooks::norm receives it; gain is used only for "model.norm".
at::Tensor latmix_norm(const AffineTransform& t1, double eps, const std::string& name, const at::Tensor& h,
                       const at::Tensor& gain);

// The block Hadamard of down_proj's input, rows: x [..., C] -> zero-padded to a multiple of G,
// times diag(Had_G) (normalized Sylvester; symmetric, so no transpose question). fp as x.
at::Tensor block_hadamard(const at::Tensor& x, int64_t group);

// What the quantized forward must run besides the folded linears.
struct LatmixOnline {
  AffineTransform t1;    // detached, fp32 CPU
  double eps = 1e-5;     // the model's rms_norm_eps
  int64_t hadamard_group = 32;  // block Hadamard before down_proj
  // ForwardHooks::norm for the folded model (caches t1 per device).
  std::function<at::Tensor(const std::string&, const at::Tensor&, const at::Tensor&)> norm_hook() const;
};

struct LatmixModel {
  Model model;          // folded, transformed weights (fp32), tie_word_embeddings false
  LatmixOnline online;
};

// The folded, transformed model and its online part. With quantization off,
// Transformer(result.model) run with {norm = online.norm_hook(), Hadamard before down_proj (or not:
// it is orthogonal and cancels in full precision)} reproduces m's logits.
LatmixModel apply_latmix(const Model& m, const LatmixTransforms& t);

// Hooks that run a Transformer over the folded weights as the training sees it: the norm
// override, the down_proj block Hadamard, and (format != None) straight-through MX fake-quant of
// every linear's input (scale_grad: see mx_fake_quant_ste), then x W^T + b with the Transformer's current weights. `t1` is read at
// call time (it may be the live, trained transform); `tr` must outlive the hooks.
ForwardHooks training_hooks(Transformer& tr, const AffineTransform* t1, Format format, int64_t group,
                            bool scale_grad = true);

}  // namespace wush::latmix

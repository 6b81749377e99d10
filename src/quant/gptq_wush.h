// GPTQ with a WUSH transform fitted block by block from the current, error-fed weights
// (REFERENCE.md §3), in the two forms of the reference releases:
//   gptq_wush_babai()  earlier release (`wush`): reverse-order Babai loop on y = U W^T; per block
//                      T = WUSH(U_jj, y_j), QR of U_jj T^T, intra-block GPTQ in transformed coordinates.
//   gptq_wush_local()  current release (`wush-local`): forward GPTQ; per block T from the Gram of the
//                      error-fed weight block and the damped H_jj; GPTQ of W_j T^{-1} under T Hb T^T;
//                      the error of the mapped-back block propagated with GPTQ's update.
// Both return the quantized transformed weights (dequantized, [R, C] with C a multiple of G), the
// per-group scales they fixed, and the per-block transforms T [C/G, G, G].
#pragma once
#include <ATen/ATen.h>

#include <functional>

#include "quant/gptq.h"

namespace wush {

// T_j from (U_jj, Y_j = U_jj W_j^T) (wush form, REFERENCE §2 steps 3-6), bf16-rounded, fp64 [G, G].
using WushBlockFit = std::function<at::Tensor(const at::Tensor& Ujj, const at::Tensor& Yj)>;
// T_j from (W_j [R, G], H_jj [G, G]) (wush-local form, REFERENCE §2), bf16-rounded, fp64 [G, G].
using WushLocalBlockFit = std::function<at::Tensor(const at::Tensor& Wj, const at::Tensor& Hjj)>;

struct GptqWushOptions {
  double damp = 0.01;
  bool error_feedback = true;  // false: no feedback anywhere, i.e. RTN with the same transforms
};

struct GptqWushResult {
  at::Tensor wq;      // dequantized quantized transformed weights W~ [R, C]
  at::Tensor scales;  // [R, C/G] group scales fixed by the loop (GroupQuantizer::scales values)
  at::Tensor T;       // [C/G, G, G] per-block transforms (what runs online on activations)
};

GptqWushResult gptq_wush_babai(const at::Tensor& W, const at::Tensor& H, const GroupQuantizer& q,
                               const WushBlockFit& fit, const GptqWushOptions& opt = {});
GptqWushResult gptq_wush_local(const at::Tensor& W, const at::Tensor& H, const GroupQuantizer& q,
                               const WushLocalBlockFit& fit, const GptqWushOptions& opt = {});

}  // namespace wush

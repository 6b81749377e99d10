// GPTQ (REFERENCE.md §3): error-feedback weight quantization against the layer Hessian H = X X^T/N.
//   gptq()       the standard loop: columns left to right, Cholesky of H^{-1} (upper), lazy block
//                updates, group scales fixed when a group starts, from the current error-fed values.
//   gptq_babai() the "Babai nearest plane" form: upper Cholesky U of the damped H, target y = U W^T,
//                columns processed last to first; equal to gptq() on reversed columns.
// Both work in W's dtype (fp32 or fp64) and return the dequantized weights, shape of W.
#pragma once
#include <ATen/ATen.h>

#include "quant/group_quantizer.h"

namespace wush {

struct GptqOptions {
  double damp = 0.01;      // H += damp * mean(diag(H)) * I
  int64_t block = 128;     // lazy-update block (a multiple of the group size)
};

struct GptqResult {
  at::Tensor wq;           // dequantized quantized weights [R, C]
  at::Tensor scales;       // [R, C/G] the group scales the loop fixed (GroupQuantizer::scales values)
  double loss_proxy = 0;   // sum over columns of err^2 / d (GPTQ's own objective, for logs)
};

GptqResult gptq(const at::Tensor& W, const at::Tensor& H, const GroupQuantizer& q,
                const GptqOptions& opt = {});
GptqResult gptq_babai(const at::Tensor& W, const at::Tensor& H, const GroupQuantizer& q,
                      const GptqOptions& opt = {});

// Damped copy of H (dead channels, diag == 0, get 1) and the mask of dead channels.
at::Tensor damp_hessian(const at::Tensor& H, double damp, at::Tensor* dead = nullptr);

// The common start of every GPTQ loop: W in `dtype` (a copy) with dead channels zeroed, and the
// damped Hessian (damp_hessian).
struct DampedProblem {
  at::Tensor W, H;
};
DampedProblem damped_problem(const at::Tensor& W, const at::Tensor& H, double damp, at::ScalarType dtype);

// Cholesky with retries: adds another `damp * mean(diag)` up to `tries` times (REFERENCE §2 wush
// step 1). Returns the upper factor U (H = U^T U).
at::Tensor cholesky_upper_retry(const at::Tensor& H, double damp = 0.01, int tries = 100);

}  // namespace wush

// The per-block WUSH constructions of REFERENCE.md §2, as batched free functions over [..., G, G]
// so that whole-layer fits (WushTransform, WushLocalTransform) and GPTQ + WUSH (§3, which calls
// them block by block with error-fed targets) share one implementation. All fp64.
//
// Canonical choice (§9 last bullet): singular/eigen vectors get canonical_signs() (largest-|.|
// component positive); wush pairs singular values in descending order with the Hadamard columns
// in Sylvester order, wush-local pairs eigenvalues in ascending order (as eigh returns them).
#pragma once
#include <ATen/ATen.h>

#include <string>

namespace wush {

struct WushBlockOptions {
  bool hadamard = true;    // false: the Hadamard factor is I ("wus")
  bool damp = true;        // wush: s += 0.01 mean(s); wush-local: damp Gw and Gx (§2)
  bool round_bf16 = true;  // round T_j to bf16 (§2 step 4 / step 6)
};

// Upper Cholesky factor U of H (+ damping): H_damped = U^T U, [C, C] fp64 (the transposed view
// of the lower factor). If the factorization
// fails, another 1% of mean(diag(H)) is added and it is retried, up to 100 times (§2 wush step 1);
// then wush::Error naming `what`.
at::Tensor damped_upper_cholesky(const at::Tensor& H, bool damp, const std::string& what);

// wush (§2, earlier release), steps 3-6, batched:
//   U [..., G, G]: U_jj, the diagonal block of the upper Cholesky factor of the whole damped H
//     (a Schur-complement factor, not chol(H_jj));
//   Y [..., G, R]: the weight target U_jj W_j^T (in GPTQ mode the error-fed target).
// SVD Y = V diag(s) Uh; s <- s / sqrt(R) (+ 0.01 mean(s) if damping);
// T_j = Had diag(s)^{1/2} V^T U_jj^{-T} (triangular solve). Needs R >= G: checked.
// The SVD is taken of the G x G factor Rq^T of Y^T = Q Rq (same V and s), which batches well.
at::Tensor wush_block(const at::Tensor& U, const at::Tensor& Y, const WushBlockOptions& opt = {},
                      const std::string& what = "wush");

// wush-local (§2, the paper's form), batched:
//   Gw [..., G, G] = W_j^T W_j / R, Gx [..., G, G] = H_jj (both undamped; damped here if opt.damp).
// Lw = chol(Gw) (lower), M = Lw^T Gx Lw = E diag(l) E^T (l ascending),
// T_j = Had diag(l)^{-1/4} E^T Lw^T.
at::Tensor wush_local_block(const at::Tensor& Gw, const at::Tensor& Gx,
                            const WushBlockOptions& opt = {},
                            const std::string& what = "wush-local");

// The data-dependent factors of wush-local: wush_local_block() = ((Had * d) Et) LwT before bf16
// rounding, with d = l^{-1/4} [..., G] scaling Had's columns, Et = E^T, LwT = Lw^T. wush-search
// negates Had's columns (the eigenvector signs).
struct WushLocalFactors {
  at::Tensor d, Et, LwT;
  // ((had * d) Et) LwT for a [..., G, G] `had` (Had, or Had with negated columns).
  at::Tensor compose(const at::Tensor& had) const;
};
WushLocalFactors wush_local_factors(const at::Tensor& Gw, const at::Tensor& Gx,
                                    const WushBlockOptions& opt = {},
                                    const std::string& what = "wush-local");

// wush-local from the weight block itself: Wj [..., R, G], Hjj [..., G, G] (undamped; damped
// here with opt.damp) -> wush_local_block(Wj^T Wj / R, Hjj). The shape GPTQ + wush-local
// (quant/gptq_wush.h, WushLocalBlockFit) calls with the error-fed block.
at::Tensor wush_local_block_from_weight(const at::Tensor& Wj, const at::Tensor& Hjj,
                                        const WushBlockOptions& opt = {},
                                        const std::string& what = "wush-local");

}  // namespace wush

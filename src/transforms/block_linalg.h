// Batched linear-algebra helpers shared by the block transforms (REFERENCE.md §2): damping,
// diagonal-block extraction, zero padding of channels, the canonical sign of eigen/singular
// vectors (§9) and bf16 rounding. Every function works on [..., G, G] batches, fp64.
#pragma once
#include <ATen/ATen.h>

#include <string>

namespace wush {

// Damping of a second moment (§2): M + 0.01 * mean(diag(M)) * I, per matrix of a batch.
constexpr double kDampFraction = 0.01;
at::Tensor damp(const at::Tensor& M, double fraction = kDampFraction);

// The diagonal blocks of M [nb*G, nb*G] -> [nb, G, G] (a copy).
at::Tensor diagonal_blocks(const at::Tensor& M, int64_t G);

// Columns [jG, (j+1)G) of W [R, nb*G] as a batch of transposed blocks W_j^T -> [nb, G, R]
// (a strided view of W, no copy).
at::Tensor column_blocks_t(const at::Tensor& W, int64_t G);

// Zero-pads the last dimension of x from C to Cp.
at::Tensor pad_last(const at::Tensor& x, int64_t Cp);

// Pads a second moment M [C, C] to [Cp, Cp] for channels that are always zero after padding:
// zero rows and columns, and a diagonal of 1% of the mean real diagonal so that every
// factorization exists even with damping off (x~ does not depend on these columns of T since
// the padded inputs are zero). Damping (§2) is applied afterwards on the padded matrix.
at::Tensor pad_second_moment(const at::Tensor& M, int64_t Cp);

// Sets the diagonal entries of padded channels c in [C, nb*G) of blocks [nb, G, G] to `value`.
void fill_padded_diagonal(at::Tensor& blocks, int64_t C, double value);

// Canonical sign of the columns of V [..., n, k] (REFERENCE §9 last bullet): each column is
// multiplied by the sign of its largest-magnitude component (the first one on exact ties), so
// that component is positive. Makes eigh/SVD outputs independent of the LAPACK/cuSOLVER build,
// up to (near-)repeated eigenvalues, whose subspace basis no sign rule can fix.
at::Tensor canonical_signs(const at::Tensor& V);

// x rounded to bf16 and back to x's dtype (§2 step 4: the offline weights must match the
// transform that runs online in bf16).
at::Tensor round_to_bf16(const at::Tensor& x);

// wush::Error "<what>: <tensor> contains NaN or Inf" when t has a non-finite element.
void check_finite(const at::Tensor& t, const std::string& what, const char* tensor);

}  // namespace wush

// A learnable invertible affine map T(x) = A x + v of R^n (REFERENCE.md §5, LATMiX), in one of two
// parameterizations, both written as A = O L (Ut + diag(s)):
//   lu: O = P, a fixed permutation; L unit lower triangular (its strictly lower part learned);
//       Ut strictly upper (learned).                              A = P L (U + diag(s))
//   qr: O = exp((G - G^T) / 2), G learned (O is orthogonal, det 1); L = I; Ut = R strictly upper.
//                                                                 A = exp((G - G^T)/2) (R + diag(s))
// s = sign_s * exp(log_s): log|s| is learned, the signs are fixed at initialization, so A stays
// invertible. det A = +-prod(s): log|det A| = sum(log_s), and the volume regularizer is
// lambda * (sum log_s)^2. Inverses use triangular solves (never an explicit inverse):
//   A^{-1} y = (Ut + S)^{-1} L^{-1} O^T y,   A^{-T} y = O L^{-T} (Ut + S)^{-T} y.
// Everything is differentiable with libtorch autograd (matrix_exp, solve_triangular).
// Row convention for activations: x [..., n] -> x A^T + v.
#pragma once
#include <ATen/ATen.h>

#include <map>
#include <string>
#include <vector>

namespace wush::latmix {

enum class Param { LU, QR };
Param parse_param(const std::string& s);  // "lu" | "qr"
std::string param_name(Param p);

struct AffineTransform {
  Param kind = Param::LU;
  at::Tensor perm;    // lu: int64 [n], (P y)[i] = y[perm[i]]           (fixed)
  at::Tensor lower;   // lu: [n, n], only the strictly lower part is used (learned)
  at::Tensor skew;    // qr: [n, n] G, O = exp((G - G^T)/2)              (learned)
  at::Tensor upper;   // [n, n], only the strictly upper part is used    (learned)
  at::Tensor log_s;   // [n] log|s|                                      (learned)
  at::Tensor sign_s;  // [n] +-1                                         (fixed)
  at::Tensor shift;   // [n] v                                           (learned)

  int64_t n() const { return log_s.size(0); }
  std::vector<at::Tensor> parameters() const;  // the learned tensors (above)
  void set_requires_grad(bool on);
  AffineTransform to(at::Device d, at::ScalarType t) const;  // copies (fixed and learned tensors)
  AffineTransform detached() const;                          // same values, no autograd history

  at::Tensor ortho() const;                  // O [n, n]
  at::Tensor unit_lower() const;             // L [n, n]
  at::Tensor upper_diag() const;             // Ut + diag(s) [n, n]
  at::Tensor matrix() const;                 // A = O L (Ut + S)
  at::Tensor log_abs_det() const;            // sum(log_s), a scalar
  at::Tensor volume_penalty() const;         // (sum log_s)^2

  at::Tensor apply(const at::Tensor& x) const;       // x [..., n] -> x A^T + v
  at::Tensor inverse(const at::Tensor& y) const;     // y [..., n] -> (y - v) A^{-T}
  at::Tensor linear(const at::Tensor& x) const;      // x [..., n] -> x A^T (no shift)
  at::Tensor solve(const at::Tensor& B) const;       // A^{-1} B, B [n, m]
  at::Tensor solve_t(const at::Tensor& B) const;     // A^{-T} B, B [n, m]
  at::Tensor left(const at::Tensor& W) const;        // A W, W [n, m]
  at::Tensor right_inverse(const at::Tensor& W) const;  // W A^{-1}, W [m, n]

  // Represents a given invertible matrix A0 [n, n] exactly (up to rounding) in the
  // parameterization: lu from the pivoted LU A0 = P L U; qr from A0 = Q R with det Q = +1 (a sign
  // moved into R) and G = log Q (real matrix logarithm through the eigendecomposition; wush::Error
  // if Q has a pair of eigenvalues at -1, where no real log is well defined). fp64, shift 0.
  // `what` names the transform in errors.
  // block > 0 and < n: A0 is block-diagonal with blocks of `block` (the last one may be smaller),
  // and the factors are computed block by block (so P, L, U, Q, R stay block-diagonal).
  static AffineTransform from_matrix(const at::Tensor& A0, Param kind, const std::string& what,
                                     int64_t block = 0);

  // Serialization into flat tensors "<prefix>.<field>"; absent fields are omitted.
  void save_into(std::map<std::string, at::Tensor>& out, const std::string& prefix) const;
  static AffineTransform load_from(const std::map<std::string, at::Tensor>& in, const std::string& prefix,
                                   Param kind, const std::string& what);
};

// Real logarithm of an orthogonal matrix Q [n, n] with det +1, fp64, skew-symmetric result;
// wush::Error naming `what` if exp(log Q) does not reproduce Q.
at::Tensor orthogonal_log(const at::Tensor& Q, const std::string& what);

}  // namespace wush::latmix

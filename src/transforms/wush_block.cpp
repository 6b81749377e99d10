#include "transforms/wush_block.h"

#include <cmath>

#include "core/error.h"
#include "transforms/block_linalg.h"
#include "transforms/hadamard.h"

namespace wush {
namespace {

constexpr int kMaxCholeskyRetries = 100;  // §2 wush step 1

// Had, or I for "wus", on M's device.
at::Tensor hadamard_factor(int64_t G, bool hadamard, const at::Tensor& like) {
  at::Tensor h = hadamard ? hadamard_matrix(G) : at::eye(G, at::kDouble);
  return h.to(like.device());
}

at::Tensor mT(const at::Tensor& x) { return x.transpose(-2, -1); }

}  // namespace

at::Tensor damped_upper_cholesky(const at::Tensor& H, bool do_damp, const std::string& what) {
  WUSH_CHECK(H.dim() == 2 && H.size(0) == H.size(1), "%s: H must be square", what.c_str());
  const double step = kDampFraction * H.diagonal().mean().item<double>();
  WUSH_CHECK(step > 0, "%s: the second moment H has a zero (or negative) mean diagonal: no "
             "non-zero activations were collected", what.c_str());
  at::Tensor M = do_damp ? damp(H) : H.clone();
  for (int attempt = 0; attempt <= kMaxCholeskyRetries; ++attempt) {
    auto [L, info] = at::linalg_cholesky_ex(M, /*upper=*/false, /*check_errors=*/false);
    if (info.item<int64_t>() == 0) return mT(L);  // a view: no 128 MB transpose at C = 4096
    M.diagonal().add_(step);
  }
  WUSH_FAIL("%s: the damped second moment H is not positive definite after %d retries of +1%% "
            "mean(diag)",
            what.c_str(), kMaxCholeskyRetries);
}

at::Tensor wush_block(const at::Tensor& U, const at::Tensor& Y, const WushBlockOptions& opt,
                      const std::string& what) {
  WUSH_CHECK(U.dim() >= 2 && U.size(-1) == U.size(-2), "%s: U_jj must be [..., G, G]",
             what.c_str());
  const int64_t G = U.size(-1), R = Y.size(-1);
  WUSH_CHECK(Y.dim() == U.dim() && Y.size(-2) == G, "%s: Y must be [..., G=%lld, R]", what.c_str(),
             (long long)G);
  // §9: the SVD form needs at least G singular values.
  WUSH_CHECK(R >= G,
             "%s: WUSH's SVD form needs R >= G, but the layer has R = %lld outputs < G = %lld; "
             "use wush-local (its Gram form works for any R), or hadamard",
             what.c_str(), (long long)R, (long long)G);
  // Y = Rq^T Q^T with Y^T = Q Rq: the left singular vectors and singular values of Y are those
  // of the G x G matrix Rq^T.
  at::Tensor Z = R > G ? mT(std::get<1>(at::linalg_qr(mT(Y), "r"))) : Y;
  auto [V, s, Vh_unused] = at::linalg_svd(Z, /*full_matrices=*/false);  // s descending
  (void)Vh_unused;
  V = canonical_signs(V);
  s = s / std::sqrt(double(R));
  WUSH_CHECK((s.select(-1, 0) > 0).all().item<bool>(),
             "%s: a block of U W^T is all zeros (its weights or its calibration activations are all "
             "zero), WUSH is undefined for it; use hadamard",
             what.c_str());
  if (opt.damp) s = s + kDampFraction * s.mean(-1, /*keepdim=*/true);
  WUSH_CHECK((s.select(-1, G - 1) > 0).all().item<bool>(),
             "%s: a weight target block has rank < G = %lld (singular T); enable damping",
             what.c_str(), (long long)G);
  at::Tensor had = hadamard_factor(G, opt.hadamard, U);
  at::Tensor A = at::matmul(had * s.sqrt().unsqueeze(-2), mT(V));  // Had diag(s)^{1/2} V^T
  // T = A U^{-T}  <=>  T^T = U^{-1} A^T  (upper-triangular solve)
  at::Tensor T = mT(at::linalg_solve_triangular(U, mT(A), /*upper=*/true)).contiguous();
  check_finite(T, what, "T (wush)");
  return opt.round_bf16 ? round_to_bf16(T) : T;
}

WushLocalFactors wush_local_factors(const at::Tensor& Gw0, const at::Tensor& Gx0,
                                    const WushBlockOptions& opt, const std::string& what) {
  WUSH_CHECK(Gw0.dim() >= 2 && Gw0.sizes() == Gx0.sizes() && Gw0.size(-1) == Gw0.size(-2),
             "%s: Gw and Gx must both be [..., G, G]", what.c_str());
  const at::Tensor Gw = opt.damp ? damp(Gw0) : Gw0;
  const at::Tensor Gx = opt.damp ? damp(Gx0) : Gx0;
  auto [Lw, info] = at::linalg_cholesky_ex(Gw, /*upper=*/false, /*check_errors=*/false);
  WUSH_CHECK((info == 0).all().item<bool>(),
             "%s: a weight Gram W_j^T W_j / R is not positive definite (a rank-deficient or zero "
             "weight block, or all-zero activations in it); use hadamard or wush",
             what.c_str());
  at::Tensor M = at::matmul(mT(Lw), at::matmul(Gx, Lw));
  M = (M + mT(M)) / 2;
  auto [l, E] = at::linalg_eigh(M);  // ascending
  E = canonical_signs(E);
  WUSH_CHECK((l.select(-1, 0) > 0).all().item<bool>(),
             "%s: an activation block H_jj is not positive definite (all-zero calibration activations "
             "in a block); use hadamard or wush",
             what.c_str());
  return {l.pow(-0.25).unsqueeze(-2), mT(E), mT(Lw)};
}

at::Tensor WushLocalFactors::compose(const at::Tensor& had) const {
  return at::matmul(at::matmul(had * d, Et), LwT);
}

at::Tensor wush_local_block(const at::Tensor& Gw, const at::Tensor& Gx,
                            const WushBlockOptions& opt, const std::string& what) {
  const WushLocalFactors f = wush_local_factors(Gw, Gx, opt, what);
  at::Tensor T = f.compose(hadamard_factor(Gw.size(-1), opt.hadamard, Gw));
  check_finite(T, what, "T (wush-local)");
  return opt.round_bf16 ? round_to_bf16(T) : T;
}

at::Tensor wush_local_block_from_weight(const at::Tensor& Wj, const at::Tensor& Hjj,
                                        const WushBlockOptions& opt, const std::string& what) {
  WUSH_CHECK(Wj.dim() >= 2 && Wj.size(-2) > 0, "%s: Wj must be [..., R, G]", what.c_str());
  const at::Tensor Gw = at::matmul(mT(Wj), Wj) / double(Wj.size(-2));
  return wush_local_block(Gw, Hjj, opt, what);
}

}  // namespace wush

#include "latmix/affine.h"

#include <algorithm>
#include <cmath>

#include "core/error.h"

namespace wush::latmix {

namespace {

at::Tensor opt_to(const at::Tensor& t, at::Device d, at::ScalarType s) {
  if (!t.defined()) return t;
  return t.scalar_type() == at::kLong ? t.to(d) : t.to(d, s);
}

at::Tensor opt_detach(const at::Tensor& t) { return t.defined() ? t.detach().clone() : t; }

// Block boundaries [start, size) of `block` along n (the last block may be smaller).
std::vector<std::pair<int64_t, int64_t>> blocks_of(int64_t n, int64_t block) {
  std::vector<std::pair<int64_t, int64_t>> b;
  if (block <= 0 || block >= n) block = n;
  for (int64_t i = 0; i < n; i += block) b.emplace_back(i, std::min(block, n - i));
  return b;
}

}  // namespace

Param parse_param(const std::string& s) {
  if (s == "lu") return Param::LU;
  if (s == "qr") return Param::QR;
  WUSH_FAIL("latmix: parameterization '%s' is not known (valid: lu, qr)", s.c_str());
}

std::string param_name(Param p) { return p == Param::LU ? "lu" : "qr"; }

std::vector<at::Tensor> AffineTransform::parameters() const {
  return {kind == Param::LU ? lower : skew, upper, log_s, shift};
}

void AffineTransform::set_requires_grad(bool on) {
  for (at::Tensor* t : {kind == Param::LU ? &lower : &skew, &upper, &log_s, &shift}) t->requires_grad_(on);
}

AffineTransform AffineTransform::to(at::Device d, at::ScalarType s) const {
  AffineTransform r;
  r.kind = kind;
  r.perm = opt_to(perm, d, s);
  r.lower = opt_to(lower, d, s);
  r.skew = opt_to(skew, d, s);
  r.upper = opt_to(upper, d, s);
  r.log_s = opt_to(log_s, d, s);
  r.sign_s = opt_to(sign_s, d, s);
  r.shift = opt_to(shift, d, s);
  return r;
}

AffineTransform AffineTransform::detached() const {
  AffineTransform r;
  r.kind = kind;
  r.perm = opt_detach(perm);
  r.lower = opt_detach(lower);
  r.skew = opt_detach(skew);
  r.upper = opt_detach(upper);
  r.log_s = opt_detach(log_s);
  r.sign_s = opt_detach(sign_s);
  r.shift = opt_detach(shift);
  return r;
}

at::Tensor AffineTransform::ortho() const {
  if (kind == Param::LU) return at::eye(n(), upper.options()).index_select(0, perm);  // P[i, perm[i]] = 1
  return at::matrix_exp((skew - skew.t()) * 0.5);
}

at::Tensor AffineTransform::unit_lower() const {
  at::Tensor I = at::eye(n(), upper.options());
  return kind == Param::LU ? at::tril(lower, -1) + I : I;
}

at::Tensor AffineTransform::upper_diag() const {
  return at::triu(upper, 1) + at::diag(sign_s * at::exp(log_s));
}

at::Tensor AffineTransform::matrix() const {
  at::Tensor M = upper_diag();
  if (kind == Param::LU) M = at::matmul(unit_lower(), M);
  return at::matmul(ortho(), M);
}

at::Tensor AffineTransform::log_abs_det() const { return log_s.sum(); }
at::Tensor AffineTransform::volume_penalty() const { return log_abs_det().pow(2); }

at::Tensor AffineTransform::solve(const at::Tensor& B) const {
  // A^{-1} B = (Ut + S)^{-1} L^{-1} O^T B
  at::Tensor X = at::matmul(ortho().t(), B);
  if (kind == Param::LU) X = at::linalg_solve_triangular(unit_lower(), X, /*upper=*/false, /*left=*/true, /*unitriangular=*/true);
  return at::linalg_solve_triangular(upper_diag(), X, /*upper=*/true);
}

at::Tensor AffineTransform::solve_t(const at::Tensor& B) const {
  // A^{-T} B = O L^{-T} (Ut + S)^{-T} B
  at::Tensor X = at::linalg_solve_triangular(upper_diag().t(), B, /*upper=*/false);
  if (kind == Param::LU) X = at::linalg_solve_triangular(unit_lower().t(), X, /*upper=*/true, /*left=*/true, /*unitriangular=*/true);
  return at::matmul(ortho(), X);
}

at::Tensor AffineTransform::left(const at::Tensor& W) const { return at::matmul(matrix(), W); }

at::Tensor AffineTransform::right_inverse(const at::Tensor& W) const { return solve_t(W.t()).t(); }

at::Tensor AffineTransform::linear(const at::Tensor& x) const { return at::matmul(x, matrix().t()); }

at::Tensor AffineTransform::apply(const at::Tensor& x) const { return linear(x) + shift; }

at::Tensor AffineTransform::inverse(const at::Tensor& y) const {
  WUSH_CHECK(y.size(-1) == n(), "latmix transform: input has %lld features, the transform %lld", (long long)y.size(-1),
             (long long)n());
  at::Tensor d = (y - shift).reshape({-1, n()});
  return solve(d.t()).t().reshape(y.sizes());
}

at::Tensor orthogonal_log(const at::Tensor& Q, const std::string& what) {
  at::Tensor Qd = Q.to(at::kDouble);
  auto [w, V] = at::linalg_eig(Qd);                     // Q = V diag(w) V^{-1}, |w| = 1
  at::Tensor VL = V * at::log(w).unsqueeze(0);           // V diag(log w)
  at::Tensor K = at::linalg_solve(V.t(), VL.t()).t();    // V diag(log w) V^{-1}
  at::Tensor Kr = at::real(K);
  Kr = (Kr - Kr.t()) * 0.5;
  double imag = at::imag(K).abs().max().item<double>();
  double err = (at::matrix_exp(Kr) - Qd).abs().max().item<double>();
  WUSH_CHECK(imag < 1e-8 && err < 1e-8,
             "%s: the orthogonal factor has no usable real logarithm (exp(log Q) misses Q by %.2e, imaginary part "
             "%.2e; eigenvalues at -1): use another initialization for the qr parameterization",
             what.c_str(), err, imag);
  return Kr;
}

AffineTransform AffineTransform::from_matrix(const at::Tensor& A0, Param kind, const std::string& what,
                                             int64_t block) {
  WUSH_CHECK(A0.dim() == 2 && A0.size(0) == A0.size(1), "%s: the matrix must be square, got %s", what.c_str(),
             c10::str(A0.sizes()).c_str());
  const int64_t n = A0.size(0);
  at::Tensor A = A0.to(at::kDouble).cpu();
  WUSH_CHECK(at::isfinite(A).all().item<bool>(), "%s: the initial matrix has NaN or Inf", what.c_str());
  auto o = A.options();
  AffineTransform t;
  t.kind = kind;
  at::Tensor diag = at::zeros({n}, o);
  t.upper = at::zeros({n, n}, o);
  if (kind == Param::LU) {
    t.perm = at::arange(n, at::kLong);
    t.lower = at::zeros({n, n}, o);
  } else {
    t.skew = at::zeros({n, n}, o);
  }
  for (auto [b0, bs] : blocks_of(n, block)) {
    at::Tensor Ab = A.slice(0, b0, b0 + bs).slice(1, b0, b0 + bs);
    if (kind == Param::LU) {
      auto [P, L, U] = at::linalg_lu(Ab);  // Ab = P L U, partial pivoting
      t.perm.slice(0, b0, b0 + bs).copy_(P.argmax(1) + b0);
      t.lower.slice(0, b0, b0 + bs).slice(1, b0, b0 + bs).copy_(at::tril(L, -1));
      t.upper.slice(0, b0, b0 + bs).slice(1, b0, b0 + bs).copy_(at::triu(U, 1));
      diag.slice(0, b0, b0 + bs).copy_(U.diagonal());
    } else {
      auto [Q, R] = at::linalg_qr(Ab);
      if (at::linalg_det(Q).item<double>() < 0) {  // det Q = -1: move a sign into R (Q D)(D R)
        Q.select(1, bs - 1).neg_();
        R.select(0, bs - 1).neg_();
      }
      t.skew.slice(0, b0, b0 + bs).slice(1, b0, b0 + bs).copy_(orthogonal_log(Q, what));
      t.upper.slice(0, b0, b0 + bs).slice(1, b0, b0 + bs).copy_(at::triu(R, 1));
      diag.slice(0, b0, b0 + bs).copy_(R.diagonal());
    }
  }
  WUSH_CHECK((diag != 0).all().item<bool>(), "%s: the initial matrix is singular", what.c_str());
  t.sign_s = at::sign(diag);
  t.log_s = at::log(diag.abs());
  t.shift = at::zeros({n}, o);
  return t;
}

void AffineTransform::save_into(std::map<std::string, at::Tensor>& out, const std::string& prefix) const {
  auto put = [&](const char* name, const at::Tensor& t) {
    if (t.defined()) out[prefix + "." + name] = t.detach().cpu().contiguous();
  };
  put("perm", perm);
  put("lower", lower);
  put("skew", skew);
  put("upper", upper);
  put("log_s", log_s);
  put("sign_s", sign_s);
  put("shift", shift);
}

AffineTransform AffineTransform::load_from(const std::map<std::string, at::Tensor>& in, const std::string& prefix,
                                           Param kind, const std::string& what) {
  auto get = [&](const char* name) {
    auto it = in.find(prefix + "." + name);
    WUSH_CHECK(it != in.end(), "%s: missing tensor '%s.%s'", what.c_str(), prefix.c_str(), name);
    return it->second;
  };
  AffineTransform t;
  t.kind = kind;
  if (kind == Param::LU) {
    t.perm = get("perm").to(at::kLong);
    t.lower = get("lower");
  } else {
    t.skew = get("skew");
  }
  t.upper = get("upper");
  t.log_s = get("log_s");
  t.sign_s = get("sign_s");
  t.shift = get("shift");
  const int64_t n = t.log_s.size(0);
  for (const at::Tensor* m : {kind == Param::LU ? &t.lower : &t.skew, &t.upper})
    WUSH_CHECK(m->dim() == 2 && m->size(0) == n && m->size(1) == n, "%s: '%s' factor has shape %s, needs [%lld, %lld]",
               what.c_str(), prefix.c_str(), c10::str(m->sizes()).c_str(), (long long)n, (long long)n);
  WUSH_CHECK(t.sign_s.numel() == n && t.shift.numel() == n && (!t.perm.defined() || t.perm.numel() == n),
             "%s: '%s' vectors do not match n = %lld", what.c_str(), prefix.c_str(), (long long)n);
  if (kind == Param::LU) {
    at::Tensor sorted = std::get<0>(t.perm.sort());
    WUSH_CHECK(sorted.equal(at::arange(n, at::kLong)), "%s: '%s.perm' is not a permutation", what.c_str(), prefix.c_str());
  }
  return t;
}

}  // namespace wush::latmix

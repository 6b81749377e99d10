#include "quant/gptq.h"

#include "core/error.h"

namespace wush {

at::Tensor damp_hessian(const at::Tensor& H, double damp, at::Tensor* dead_out) {
  WUSH_CHECK(H.dim() == 2 && H.size(0) == H.size(1), "GPTQ: Hessian must be square, got [%lld, %lld]",
             (long long)H.size(0), (long long)(H.dim() > 1 ? H.size(1) : -1));
  WUSH_CHECK(at::isfinite(H).all().item<bool>(), "GPTQ: Hessian has NaN or Inf entries");
  at::Tensor Hd = H.clone();
  at::Tensor diag = Hd.diagonal();
  at::Tensor dead = diag == 0;
  diag.masked_fill_(dead, 1.0);
  double mean = diag.mean().item<double>();
  diag.add_(damp * mean);
  if (dead_out) *dead_out = dead;
  return Hd;
}

DampedProblem damped_problem(const at::Tensor& W_in, const at::Tensor& H_in, double damp, at::ScalarType dtype) {
  at::Tensor dead;
  DampedProblem p;
  p.H = damp_hessian(H_in.to(dtype), damp, &dead);
  p.W = W_in.to(dtype).clone();
  p.W.index_put_({at::indexing::Slice(), dead}, 0);
  return p;
}

at::Tensor cholesky_upper_retry(const at::Tensor& H, double damp, int tries) {
  at::Tensor Hd = H.clone();
  double step = damp * Hd.diagonal().mean().item<double>();
  for (int t = 0; t <= tries; ++t) {
    auto [L, info] = at::linalg_cholesky_ex(Hd, /*upper=*/true);
    if (info.item<int64_t>() == 0) return L;
    Hd.diagonal().add_(step);
  }
  WUSH_FAIL("Cholesky failed after %d damping retries: the Hessian is not positive definite", tries);
}

static void check_inputs(const at::Tensor& W, const at::Tensor& H, const GroupQuantizer& q) {
  WUSH_CHECK(W.dim() == 2, "GPTQ: weight must be 2-D [R, C], got %lld dims", (long long)W.dim());
  WUSH_CHECK(H.size(0) == W.size(1), "GPTQ: Hessian is %lld x %lld but the weight has %lld columns",
             (long long)H.size(0), (long long)H.size(1), (long long)W.size(1));
  WUSH_CHECK(W.size(1) % q.group() == 0,
             "GPTQ: %lld columns are not a multiple of the group size %d (pad first)",
             (long long)W.size(1), q.group());
  WUSH_CHECK(W.scalar_type() == at::kFloat || W.scalar_type() == at::kDouble,
             "GPTQ: weight dtype must be float32 or float64");
  WUSH_CHECK(at::isfinite(W).all().item<bool>(), "GPTQ: weight has NaN or Inf entries");
}

GptqResult gptq(const at::Tensor& W_in, const at::Tensor& H_in, const GroupQuantizer& q,
                const GptqOptions& opt) {
  check_inputs(W_in, H_in, q);
  const int64_t C = W_in.size(1), G = q.group();
  const int64_t B = std::max<int64_t>(G, opt.block / G * G);
  auto [W, H] = damped_problem(W_in, H_in, opt.damp, W_in.scalar_type());
  // Hinv = chol(H^{-1}) upper, as in the GPTQ reference: its row i holds the update direction.
  at::Tensor L = at::linalg_cholesky(H);
  at::Tensor Hinv = at::linalg_cholesky(at::cholesky_inverse(L), /*upper=*/true);
  at::Tensor Q = at::zeros_like(W);
  at::Tensor hdiag = Hinv.diagonal().to(at::kCPU, at::kDouble).contiguous();
  const double* hd = hdiag.data_ptr<double>();
  at::Tensor loss = at::zeros({}, W.options());
  at::Tensor scales, all_scales;
  // One scratch buffer for the rank-1 and lazy-block products: allocating them afresh (up to
  // R x C fp64 per block, R x B per column) made page faults dominate at 8B sizes. Same arithmetic.
  at::Tensor scratch = at::empty({W.size(0) * std::max(B, C - B)}, W.options());
  auto scratch_as = [&](int64_t rows, int64_t cols) { return scratch.narrow(0, 0, rows * cols).view({rows, cols}); };
  for (int64_t i1 = 0; i1 < C; i1 += B) {
    int64_t i2 = std::min(i1 + B, C), n = i2 - i1;
    at::Tensor W1 = W.slice(1, i1, i2).clone();
    at::Tensor E1 = at::zeros_like(W1);
    at::Tensor Hinv1 = Hinv.slice(0, i1, i2).slice(1, i1, i2);
    for (int64_t i = 0; i < n; ++i) {
      // Group scales fixed at the group's first column, from the current (error-fed) values.
      if ((i1 + i) % G == 0) {
        scales = q.scales(W1.slice(1, i, i + G));
        if (!all_scales.defined()) all_scales = at::zeros({W.size(0), C / G}, scales.options());
        all_scales.select(1, (i1 + i) / G).copy_(scales);
      }
      at::Tensor w = W1.select(1, i);
      double d = hd[i1 + i];
      at::Tensor qc = q.quantize(w, scales);
      Q.select(1, i1 + i).copy_(qc);
      at::Tensor err = (w - qc) / d;
      loss += (err * err).sum();  // (w - q)^2 / [H^-1]_ii^2, GPTQ's objective
      at::Tensor upd = scratch_as(W1.size(0), n - i);
      at::mul_out(upd, err.unsqueeze(1), Hinv1[i].slice(0, i).unsqueeze(0));
      W1.slice(1, i).sub_(upd);
      E1.select(1, i).copy_(err);
    }
    if (i2 < C) {
      at::Tensor upd = scratch_as(W.size(0), C - i2);
      at::mm_out(upd, E1, Hinv.slice(0, i1, i2).slice(1, i2));
      W.slice(1, i2).sub_(upd);
    }
  }
  return {Q, all_scales, loss.item<double>()};
}

GptqResult gptq_babai(const at::Tensor& W_in, const at::Tensor& H_in, const GroupQuantizer& q,
                      const GptqOptions& opt) {
  check_inputs(W_in, H_in, q);
  const int64_t C = W_in.size(1), G = q.group();
  auto [W, H] = damped_problem(W_in, H_in, opt.damp, W_in.scalar_type());
  at::Tensor U = at::linalg_cholesky(H, /*upper=*/true);  // H = U^T U
  at::Tensor y = U.matmul(W.t());                          // [C, R]
  at::Tensor X = at::zeros_like(y);                        // quantized x = W^T, dequantized
  at::Tensor udiag = U.diagonal().to(at::kCPU, at::kDouble).contiguous();
  const double* ud = udiag.data_ptr<double>();
  at::Tensor loss = at::zeros({}, W.options());
  at::Tensor all_scales;
  at::Tensor scratch = at::empty({C * W.size(0)}, W.options());  // see gptq(): no per-column allocations
  for (int64_t j = C / G - 1; j >= 0; --j) {
    int64_t a = j * G, b = a + G;
    // Current error-fed values of the block: solve U_jj x_j = y_j (the later blocks are fixed).
    at::Tensor Ujj = U.slice(0, a, b).slice(1, a, b);
    at::Tensor xj = at::linalg_solve_triangular(Ujj, y.slice(0, a, b), /*upper=*/true);
    at::Tensor scales = q.scales(xj.t());
    if (!all_scales.defined()) all_scales = at::zeros({W.size(0), C / G}, scales.options());
    all_scales.select(1, j).copy_(scales);
    for (int64_t i = b - 1; i >= a; --i) {
      double uii = ud[i];
      at::Tensor target = y[i] / uii;
      at::Tensor xi = q.quantize(target, scales);
      X[i].copy_(xi);
      at::Tensor r = target - xi;
      loss += (r * r).sum() * (uii * uii);
      if (i > 0) {
        at::Tensor upd = scratch.narrow(0, 0, i * y.size(1)).view({i, y.size(1)});
        at::mul_out(upd, U.slice(0, 0, i).select(1, i).unsqueeze(1), xi.unsqueeze(0));
        y.slice(0, 0, i).sub_(upd);
      }
    }
  }
  return {X.t().contiguous(), all_scales, loss.item<double>()};
}

}  // namespace wush

#include "quant/gptq_wush.h"

#include "core/error.h"

namespace wush {

using at::indexing::Slice;

static void check(const at::Tensor& W, const at::Tensor& H, const GroupQuantizer& q) {
  WUSH_CHECK(W.dim() == 2 && H.dim() == 2 && H.size(0) == W.size(1) && H.size(1) == W.size(1),
             "GPTQ-WUSH: weight [R, C] and Hessian [C, C] expected");
  WUSH_CHECK(W.size(1) % q.group() == 0, "GPTQ-WUSH: %lld columns not a multiple of the group %d (pad first)",
             (long long)W.size(1), q.group());
  WUSH_CHECK(W.size(0) >= q.group(),
             "GPTQ-WUSH: the layer has %lld output rows, fewer than the group size %d; WUSH's SVD needs "
             "R >= G (use hadamard or identity for this layer)",
             (long long)W.size(0), q.group());
}

GptqWushResult gptq_wush_babai(const at::Tensor& W_in, const at::Tensor& H_in, const GroupQuantizer& q,
                               const WushBlockFit& fit, const GptqWushOptions& opt) {
  check(W_in, H_in, q);
  const auto dt = at::kDouble;
  const int64_t R = W_in.size(0), C = W_in.size(1), G = q.group(), nb = C / G;
  auto [W, Hd] = damped_problem(W_in, H_in, opt.damp, dt);
  at::Tensor U = cholesky_upper_retry(Hd, opt.damp);  // Hs + damp = U^T U
  at::Tensor y = U.matmul(W.t());                       // [C, R]
  at::Tensor Xq = at::zeros({C, R}, W.options());
  at::Tensor scales = at::zeros({R, nb}, W.options());
  at::Tensor Ts = at::zeros({nb, G, G}, W.options());
  // Scratch for the lazy update of the earlier blocks (up to C x R fp64): allocating it per block
  // made page faults dominate at 8B sizes. Same arithmetic.
  at::Tensor scratch = at::empty({C * R}, W.options());
  for (int64_t j = nb - 1; j >= 0; --j) {
    const int64_t a = j * G, b = a + G;
    at::Tensor Ujj = U.slice(0, a, b).slice(1, a, b);
    // Without feedback the target is the block's own U_jj W_j^T (the later blocks' exact part removed).
    at::Tensor yj = opt.error_feedback ? y.slice(0, a, b) : Ujj.matmul(W.slice(1, a, b).t());
    at::Tensor T = fit(Ujj, yj).to(dt);               // from the current, error-fed target
    Ts[j].copy_(T);
    auto [Qm, Rp] = at::linalg_qr(Ujj.matmul(T.t()));  // transformed block Hessian = R'^T R'
    at::Tensor yp = Qm.t().matmul(yj);                // [G, R]
    at::Tensor xt = at::linalg_solve_triangular(Rp, yp, /*upper=*/true);  // = T^{-T} x_j
    at::Tensor s = q.scales(xt.t().to(W_in.scalar_type())).to(dt);  // fixed once here
    scales.select(1, j).copy_(s);
    for (int64_t i = G - 1; i >= 0; --i) {  // intra-block GPTQ (Babai, reverse order)
      double rii = Rp[i][i].item<double>();
      at::Tensor target = opt.error_feedback ? yp[i] / rii : xt[i];
      at::Tensor v = q.quantize(target.to(W_in.scalar_type()), s.to(W_in.scalar_type())).to(dt);
      xt[i].copy_(v);
      if (opt.error_feedback && i > 0) yp.slice(0, 0, i).sub_(Rp.slice(0, 0, i).select(1, i).unsqueeze(1) * v.unsqueeze(0));
    }
    Xq.slice(0, a, b).copy_(xt);
    at::Tensor xj = T.t().matmul(xt);  // dequantized block, original coordinates
    if (opt.error_feedback && a > 0) {
      at::Tensor upd = scratch.narrow(0, 0, a * R).view({a, R});
      at::mm_out(upd, U.slice(0, 0, a).slice(1, a, b), xj);
      y.slice(0, 0, a).sub_(upd);
    }
  }
  return {Xq.t().contiguous().to(W_in.scalar_type()), scales.to(W_in.scalar_type()), Ts};
}

GptqWushResult gptq_wush_local(const at::Tensor& W_in, const at::Tensor& H_in, const GroupQuantizer& q,
                               const WushLocalBlockFit& fit, const GptqWushOptions& opt) {
  check(W_in, H_in, q);
  const auto dt = at::kDouble;
  const int64_t R = W_in.size(0), C = W_in.size(1), G = q.group(), nb = C / G;
  at::Tensor Hraw = H_in.to(dt);
  auto [W, Hd] = damped_problem(W_in, H_in, opt.damp, dt);
  // Upper Cholesky of H^{-1} (GPTQ's Hinv): Hinv = Ui^T Ui; block j of GPTQ sees Hb = (Ui_jj^T Ui_jj)^{-1}.
  at::Tensor Ui = at::linalg_cholesky(at::cholesky_inverse(at::linalg_cholesky(Hd)), /*upper=*/true);
  at::Tensor Wt_all = at::zeros({R, C}, W.options());
  at::Tensor scales = at::zeros({R, nb}, W.options());
  at::Tensor Ts = at::zeros({nb, G, G}, W.options());
  at::Tensor scratch = at::empty({R * C}, W.options());  // see gptq_wush_babai
  GptqOptions inner;
  inner.damp = 0;  // the block Hessian is already damped
  inner.block = G;
  for (int64_t j = 0; j < nb; ++j) {
    const int64_t a = j * G, b = a + G;
    at::Tensor Wj = W.slice(1, a, b);
    // From the error-fed weights and H_jj; the fit damps H_jj itself (REFERENCE §2), once.
    at::Tensor T = fit(Wj, Hraw.slice(0, a, b).slice(1, a, b)).to(dt);
    Ts[j].copy_(T);
    at::Tensor Uij = Ui.slice(0, a, b).slice(1, a, b);
    at::Tensor Hb = at::cholesky_inverse(Uij, /*upper=*/true);  // (Ui_jj^T Ui_jj)^{-1}
    // W~_j = W_j T^{-1}:  solve X T = W_j  <=>  T^T X^T = W_j^T
    at::Tensor Wt = at::linalg_solve(T.t(), Wj.t()).t();
    at::Tensor Ht = T.matmul(Hb).matmul(T.t());
    Ht = (Ht + Ht.t()) / 2;
    at::Tensor s = q.scales(Wt.to(W_in.scalar_type())).to(dt);
    scales.select(1, j).copy_(s);
    at::Tensor Qt;
    if (opt.error_feedback) {
      Qt = gptq(Wt.to(W_in.scalar_type()), Ht.to(W_in.scalar_type()), q, inner).wq.to(dt);
    } else {
      Qt = q.quantize(Wt.to(W_in.scalar_type()), s.to(W_in.scalar_type())).to(dt);
    }
    Wt_all.slice(1, a, b).copy_(Qt);
    if (opt.error_feedback && b < C) {
      at::Tensor E = Qt.matmul(T) - Wj;  // error of the mapped-back block, original coordinates
      // GPTQ's block update: W_later -= (W_j - Q_j) Ui_jj^{-1} Ui_{j,later}
      at::Tensor M = at::linalg_solve_triangular(Uij, Ui.slice(0, a, b).slice(1, b), /*upper=*/true);
      at::Tensor upd = scratch.narrow(0, 0, R * (C - b)).view({R, C - b});
      at::mm_out(upd, E, M);
      W.slice(1, b).add_(upd);
    }
  }
  return {Wt_all.to(W_in.scalar_type()), scales.to(W_in.scalar_type()), Ts};
}

}  // namespace wush

#include "transforms/wush_search_transform.h"

#include <ATen/CPUGeneratorImpl.h>

#include "core/error.h"
#include "transforms/block_linalg.h"
#include "transforms/hadamard.h"
#include "transforms/wush_block.h"
#include "transforms/wush_local_transform.h"

namespace wush {
namespace {

at::Tensor mT(const at::Tensor& x) { return x.transpose(-2, -1); }

// The objective of the header, per block: Wb [nb, R, G], X [nb, G, N], Y = Wb X, T [nb, G, G].
at::Tensor block_losses(const at::Tensor& T, const at::Tensor& Wb, const at::Tensor& X, const at::Tensor& Y,
                        Format f) {
  const at::Tensor Wt = mT(at::linalg_solve(mT(T), mT(Wb)));  // W_j T_j^{-1}
  const at::Tensor Qw = fake_quantize(Wt.to(at::kFloat).contiguous(), f).to(at::kDouble);
  const at::Tensor Qx = fake_quantize(mT(at::matmul(T, X)).to(at::kFloat).contiguous(), f).to(at::kDouble);
  return (Y - at::matmul(Qw, mT(Qx))).pow(2).mean({1, 2});
}

}  // namespace

WushSearchResult wush_search_blocks(const at::Tensor& Gw, const at::Tensor& Gx, const at::Tensor& W, Format format,
                                    bool damp_on, bool round_bf16, const WushSearchOptions& opt,
                                    const std::string& what) {
  WUSH_CHECK(format != Format::None, "%s: the sign search needs a quantization format (the recipe's)", what.c_str());
  const int64_t nb = Gw.size(0), G = Gw.size(-1), R = W.size(0);
  WUSH_CHECK(Gw.dim() == 3 && W.dim() == 2 && W.size(1) == nb * G, "%s: W must be [R, nb*G] for Gw [nb, G, G]",
             what.c_str());
  WUSH_CHECK(opt.samples >= 1 && opt.passes >= 0, "%s: need samples >= 1 and passes >= 0", what.c_str());
  WushBlockOptions bo;
  bo.damp = damp_on;
  const WushLocalFactors fac = wush_local_factors(Gw, Gx, bo, what);
  const at::Tensor had = hadamard_matrix(G).to(at::kDouble);
  auto make_T = [&](const at::Tensor& s) {  // s [nb, G] of +-1: Had's columns negated per block
    at::Tensor T = fac.compose(had.unsqueeze(0) * s.unsqueeze(-2));
    return round_bf16 ? round_to_bf16(T) : T;
  };
  // Gaussian stand-ins for the calibration inputs of each block: x = chol(damped Gx) z.
  at::Generator gen = at::detail::createCPUGenerator(opt.seed);
  const at::Tensor Lx = at::linalg_cholesky(damp(Gx));
  const at::Tensor X = at::matmul(Lx, at::randn({nb, G, opt.samples}, gen, at::kDouble));
  const at::Tensor Wb = W.reshape({R, nb, G}).permute({1, 0, 2}).contiguous();  // [nb, R, G]
  const at::Tensor Y = at::matmul(Wb, X);

  WushSearchResult res;
  at::Tensor s = at::ones({nb, G}, at::kDouble);
  at::Tensor T = make_T(s);
  at::Tensor loss = block_losses(T, Wb, X, Y, format);
  res.loss_initial = loss.clone();
  for (int pass = 0; pass < opt.passes; ++pass) {
    int64_t accepted = 0;
    for (int64_t i = 0; i < G; ++i) {
      at::Tensor s2 = s.clone();
      s2.select(1, i).neg_();
      at::Tensor T2 = make_T(s2);
      at::Tensor l2 = block_losses(T2, Wb, X, Y, format);
      at::Tensor better = l2 < loss;  // [nb]
      const int64_t n = better.sum().item<int64_t>();
      if (n == 0) continue;
      accepted += n;
      s = at::where(better.unsqueeze(-1), s2, s);
      T = at::where(better.unsqueeze(-1).unsqueeze(-1), T2, T);
      loss = at::where(better, l2, loss);
    }
    res.flips += accepted;
    if (accepted == 0) break;
  }
  res.T = T;
  res.loss_final = loss;
  return res;
}

at::Tensor WushSearchTransform::fit_blocks(const FitInput& in, int64_t nb) {
  Format f = format_;
  if (f == Format::None) {
    WUSH_CHECK(in.group == 32 || in.group == 16, "%s: wush-search: no format given and group %lld is neither 32 "
               "(MXFP4) nor 16 (NVFP4)", in.layer.c_str(), (long long)in.group);
    f = in.group == 16 ? Format::NVFP4 : Format::MXFP4;
  }
  const at::Tensor Gw = wush_local_weight_grams(in, nb);
  // Transform::fit rounds to bf16 afterwards; rounding here too makes the search judge the T that runs.
  return wush_search_blocks(Gw.cpu(), diagonal_blocks(in.H, in.group).cpu(), in.W.cpu(), f, in.damp,
                            in.round_bf16, opt_, in.layer)
      .T;
}

}  // namespace wush

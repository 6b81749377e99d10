// GPTQ-WUSH loops (REFERENCE.md §3) checked against plain GPTQ with T = I, and against RTN of the
// transformed weights with error feedback off. The WUSH fits themselves are tested in the
// transforms tests; here the per-block fit is a stand-in (identity or a fixed orthogonal matrix).
#include <ATen/CPUGeneratorImpl.h>
#include <gtest/gtest.h>

#include "quant/gptq_wush.h"

namespace {

struct Uniform : wush::GroupQuantizer {
  int g;
  explicit Uniform(int g_) : g(g_) {}
  int group() const override { return g; }
  at::Tensor scales(const at::Tensor& xg) const override { return xg.abs().amax(1).clamp_min(1e-12) / 3; }
  at::Tensor quantize(const at::Tensor& x, const at::Tensor& s) const override {
    at::Tensor sc = x.dim() == 2 ? s.unsqueeze(1) : s;
    return at::clamp(at::round(x / sc), -4, 3) * sc;
  }
};

struct Problem {
  at::Tensor W, H, X;
};

Problem make_problem(int64_t R, int64_t C, int64_t N, uint64_t seed) {
  auto gen = at::make_generator<at::CPUGeneratorImpl>(seed);
  auto o = at::TensorOptions(at::kDouble);
  at::Tensor A = at::randn({C, C}, gen, o) / std::sqrt(double(C));
  A.diagonal().add_(1.0);
  at::Tensor X = A.matmul(at::randn({C, N}, gen, o));
  return {at::randn({R, C}, gen, o), X.matmul(X.t()) / N, X};
}

at::Tensor orthogonal(int64_t G, uint64_t seed) {
  auto gen = at::make_generator<at::CPUGeneratorImpl>(seed);
  return std::get<0>(at::linalg_qr(at::randn({G, G}, gen, at::TensorOptions(at::kDouble))));
}

}  // namespace

TEST(GptqWush, LocalFormWithIdentityIsPlainGptq) {
  auto p = make_problem(40, 64, 400, 1);
  Uniform q(16);
  auto ident = [](const at::Tensor& Wj, const at::Tensor&) { return at::eye(Wj.size(1), at::kDouble); };
  auto r = wush::gptq_wush_local(p.W, p.H, q, ident);
  wush::GptqOptions o;
  o.block = 16;
  at::Tensor ref = wush::gptq(p.W, p.H, q, o).wq;
  EXPECT_LT((r.wq - ref).abs().max().item<double>(), 1e-9);
}

TEST(GptqWush, BabaiFormWithIdentityIsBabaiGptq) {
  auto p = make_problem(40, 64, 400, 2);
  Uniform q(16);
  auto ident = [](const at::Tensor& Ujj, const at::Tensor&) { return at::eye(Ujj.size(0), at::kDouble); };
  auto r = wush::gptq_wush_babai(p.W, p.H, q, ident);
  at::Tensor ref = wush::gptq_babai(p.W, p.H, q).wq;
  EXPECT_LT((r.wq - ref).abs().max().item<double>(), 1e-9);
}

TEST(GptqWush, NoFeedbackIsRtnOfTransformedWeights) {
  auto p = make_problem(32, 64, 300, 3);
  Uniform q(16);
  at::Tensor T = orthogonal(16, 9);
  auto fit_b = [&](const at::Tensor&, const at::Tensor&) { return T; };
  auto fit_l = [&](const at::Tensor&, const at::Tensor&) { return T; };
  wush::GptqWushOptions o;
  o.error_feedback = false;
  // RTN of W~_j = W_j T^{-1} = W_j T^T (orthogonal T)
  at::Tensor rtn = at::empty_like(p.W);
  for (int64_t a = 0; a < 64; a += 16) {
    at::Tensor wt = p.W.slice(1, a, a + 16).matmul(T.t());
    rtn.slice(1, a, a + 16).copy_(q.quantize(wt, q.scales(wt)));
  }
  for (auto& r : {wush::gptq_wush_babai(p.W, p.H, q, fit_b, o), wush::gptq_wush_local(p.W, p.H, q, fit_l, o)}) {
    EXPECT_LT((r.wq - rtn).abs().max().item<double>(), 1e-9);
    EXPECT_TRUE(at::equal(r.T[2], T));
  }
}

TEST(GptqWush, FeedbackLowersLossBelowRtnWithTheSameTransform) {
  auto p = make_problem(32, 64, 600, 4);
  Uniform q(16);
  at::Tensor T = orthogonal(16, 5);
  auto fit_b = [&](const at::Tensor&, const at::Tensor&) { return T; };
  auto fit_l = [&](const at::Tensor&, const at::Tensor&) { return T; };
  wush::GptqWushOptions off;
  off.error_feedback = false;
  auto loss = [&](const wush::GptqWushResult& r) {
    // y = W x = W~ x~ with x~_j = T x_j
    at::Tensor Xt = at::empty_like(p.X);
    for (int64_t a = 0; a < 64; a += 16) Xt.slice(0, a, a + 16).copy_(T.matmul(p.X.slice(0, a, a + 16)));
    return (p.W.matmul(p.X) - r.wq.matmul(Xt)).pow(2).mean().item<double>();
  };
  double rtn = loss(wush::gptq_wush_local(p.W, p.H, q, fit_l, off));
  EXPECT_LT(loss(wush::gptq_wush_local(p.W, p.H, q, fit_l)), 0.85 * rtn);
  EXPECT_LT(loss(wush::gptq_wush_babai(p.W, p.H, q, fit_b)), 0.85 * rtn);
}

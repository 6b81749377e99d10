// GPTQ: the standard loop and the Babai reverse-order form (REFERENCE.md §3), with a simple
// uniform group quantizer defined here so these tests depend on nothing but the GPTQ math.
#include <gtest/gtest.h>

#include <ATen/CPUGeneratorImpl.h>

#include "core/error.h"
#include "quant/gptq.h"

namespace {

// Symmetric uniform 3-bit grid, group scale = absmax / 3 (rounding half away from zero).
struct UniformQuantizer : wush::GroupQuantizer {
  int g;
  explicit UniformQuantizer(int g_) : g(g_) {}
  int group() const override { return g; }
  at::Tensor scales(const at::Tensor& xg) const override {
    return xg.abs().amax(1).clamp_min(1e-12) / 3;
  }
  at::Tensor quantize(const at::Tensor& x, const at::Tensor& s) const override {
    at::Tensor sc = x.dim() == 2 ? s.unsqueeze(1) : s;
    return at::clamp(at::round(x / sc), -4, 3) * sc;
  }
};

at::Tensor correlated_inputs(int64_t C, int64_t N, uint64_t seed, at::ScalarType dt) {
  auto gen = at::make_generator<at::CPUGeneratorImpl>(seed);
  at::Tensor A = at::randn({C, C}, gen, at::TensorOptions(dt)) / std::sqrt(double(C));
  A.diagonal().add_(1.0);
  return A.matmul(at::randn({C, N}, gen, at::TensorOptions(dt)));
}

double layer_loss(const at::Tensor& W, const at::Tensor& Wq, const at::Tensor& X) {
  return (W - Wq).matmul(X).pow(2).mean().item<double>();
}

}  // namespace

TEST(Gptq, BabaiReverseEqualsStandardOnReversedColumns) {
  const int64_t R = 24, C = 64, N = 512;
  auto gen = at::make_generator<at::CPUGeneratorImpl>(7);
  at::Tensor W = at::randn({R, C}, gen, at::TensorOptions(at::kDouble));
  at::Tensor X = correlated_inputs(C, N, 8, at::kDouble);
  at::Tensor H = X.matmul(X.t()) / N;
  UniformQuantizer q(16);
  at::Tensor babai = wush::gptq_babai(W, H, q).wq;
  at::Tensor rev = at::arange(C - 1, -1, -1, at::kLong);
  wush::GptqOptions opt;
  opt.block = 32;
  at::Tensor std_rev = wush::gptq(W.index_select(1, rev), H.index_select(0, rev).index_select(1, rev), q, opt).wq;
  at::Tensor back = std_rev.index_select(1, rev);
  EXPECT_LT((babai - back).abs().max().item<double>(), 1e-9);
  // The two orders are genuinely different: forward GPTQ does not give the same weights.
  at::Tensor fwd = wush::gptq(W, H, q).wq;
  EXPECT_GT((fwd - babai).abs().max().item<double>(), 1e-3);
}

TEST(Gptq, LazyBlockSizeDoesNotChangeResult) {
  const int64_t R = 8, C = 96, N = 300;
  auto gen = at::make_generator<at::CPUGeneratorImpl>(1);
  at::Tensor W = at::randn({R, C}, gen, at::TensorOptions(at::kDouble));
  at::Tensor X = correlated_inputs(C, N, 2, at::kDouble);
  at::Tensor H = X.matmul(X.t()) / N;
  UniformQuantizer q(16);
  wush::GptqOptions a, b;
  a.block = 16;
  b.block = 128;
  EXPECT_LT((wush::gptq(W, H, q, a).wq - wush::gptq(W, H, q, b).wq).abs().max().item<double>(), 1e-10);
}

TEST(Gptq, LowersLayerLossBelowRtn) {
  const int64_t R = 32, C = 128, N = 1024;
  auto gen = at::make_generator<at::CPUGeneratorImpl>(3);
  at::Tensor W = at::randn({R, C}, gen, at::TensorOptions(at::kDouble));
  at::Tensor X = correlated_inputs(C, N, 4, at::kDouble);
  at::Tensor H = X.matmul(X.t()) / N;
  UniformQuantizer q(32);
  at::Tensor rtn = at::empty_like(W);
  for (int64_t j = 0; j < C; j += 32) {
    at::Tensor s = q.scales(W.slice(1, j, j + 32));
    rtn.slice(1, j, j + 32).copy_(q.quantize(W.slice(1, j, j + 32), s));
  }
  double l_rtn = layer_loss(W, rtn, X), l_gptq = layer_loss(W, wush::gptq(W, H, q).wq, X);
  EXPECT_LT(l_gptq, 0.8 * l_rtn) << "rtn " << l_rtn << " gptq " << l_gptq;
}

TEST(Gptq, DeadChannelsAndBadInput) {
  const int64_t R = 4, C = 32;
  at::Tensor W = at::randn({R, C}, at::TensorOptions(at::kDouble));
  at::Tensor H = at::eye(C, at::TensorOptions(at::kDouble));
  H[5][5] = 0;  // a channel never active
  UniformQuantizer q(16);
  at::Tensor wq = wush::gptq(W, H, q).wq;
  EXPECT_EQ(wq.select(1, 5).abs().max().item<double>(), 0.0);
  EXPECT_THROW(wush::gptq(W.slice(1, 0, 20), H.slice(0, 0, 20).slice(1, 0, 20), q), wush::Error);
  at::Tensor Wn = W.clone();
  Wn[1][2] = std::nan("");
  EXPECT_THROW(wush::gptq(Wn, H, q), wush::Error);
}

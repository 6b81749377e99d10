// Synthetic layers for the transform tests: correlated, heavy-tailed activations (per-token
// log-normal scale, a few outlier channels, a dense channel mixing) and a weight with uneven
// column norms. fp64, CPU, deterministic from the seed.
#pragma once
#include <ATen/ATen.h>
#include <ATen/CPUGeneratorImpl.h>

namespace wush::testing {

struct SyntheticLayer {
  at::Tensor X;  // [N, C]
  at::Tensor H;  // [C, C] = X^T X / N
  at::Tensor W;  // [R, C]
};

inline SyntheticLayer synthetic_layer(int64_t N, int64_t C, int64_t R, uint64_t seed) {
  at::Generator gen = at::make_generator<at::CPUGeneratorImpl>(seed);
  const auto f64 = at::TensorOptions().dtype(at::kDouble);
  at::Tensor token_scale = at::exp(0.6 * at::randn({N, 1}, gen, f64));
  at::Tensor channel_scale = at::exp(0.8 * at::randn({1, C}, gen, f64));
  at::Tensor mix = at::eye(C, f64) + 0.4 * at::randn({C, C}, gen, f64) / std::sqrt(double(C));
  at::Tensor X = at::mm(at::randn({N, C}, gen, f64) * token_scale, mix) * channel_scale;
  at::Tensor W = at::randn({R, C}, gen, f64) * at::exp(0.3 * at::randn({1, C}, gen, f64));
  return {X, at::mm(X.t(), X) / double(N), W};
}

// max |a - b| / max |b|
inline double rel_err(const at::Tensor& a, const at::Tensor& b) {
  return (a - b).abs().max().item<double>() / b.abs().max().item<double>();
}

}  // namespace wush::testing

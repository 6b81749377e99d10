// Per-layer loss of WUSH vs Hadamard under W4A4 fake quantization (REFERENCE.md §6 "per-layer
// loss", §2 "which form is better ... measure"): on synthetic correlated heavy-tailed data,
// wush's (and wush-local's) MXFP4 and INT4 layer loss ||Y - Y_q||^2 / numel is lower than
// hadamard's. Needs the formats library (wush::fake_quantize, src/formats/format.h): rename to
// transform_loss_test.cpp once the formats land.
#include <gtest/gtest.h>

#include "formats/format.h"
#include "transforms/transform_registry.h"
#include "transform_test_util.h"

using namespace wush;

namespace {

// ||X W^T - Q(T X) Q(W T^{-1})^T||^2 / numel, activations quantized per token after the
// transform, weights after weight_side (both fp32, as the pipeline quantizes them).
double layer_loss(const Transform& t, const at::Tensor& X, const at::Tensor& W, Format f) {
  at::Tensor y = at::mm(X, W.t());
  at::Tensor xq = fake_quantize(t.apply(X).to(at::kFloat), f).to(at::kDouble);
  at::Tensor wq = fake_quantize(t.weight_side(W).to(at::kFloat), f).to(at::kDouble);
  return (y - at::mm(xq, wq.t())).pow(2).mean().item<double>();
}

}  // namespace

TEST(TransformLoss, WushBeatsHadamardOnHeavyTailedData) {
  const int64_t N = 2048, C = 256, R = 256, G = 32;
  auto L = wush::testing::synthetic_layer(N, C, R, 31);
  for (Format f : {Format::MXFP4, Format::INT4}) {
    double loss[3];
    const char* names[3] = {"hadamard", "wush", "wush-local"};
    for (int i = 0; i < 3; ++i) {
      FitInput in;
      in.H = L.H;
      in.W = L.W;
      in.group = G;
      in.layer = "synthetic";
      auto t = make_transform(names[i]);
      t->fit(in);
      loss[i] = layer_loss(*t, L.X, L.W, f);
    }
    EXPECT_LT(loss[1], loss[0]) << format_name(f) << ": wush " << loss[1] << " vs hadamard "
                                << loss[0];
    EXPECT_LT(loss[2], loss[0]) << format_name(f) << ": wush-local " << loss[2]
                                << " vs hadamard " << loss[0];
  }
}

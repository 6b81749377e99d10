// The ATen NVFP4 fake-quantization (src/formats/aten_nvfp4.h) against the CPU codec, bit for bit.
#include <gtest/gtest.h>

#include "formats/aten_nvfp4.h"
#include "formats/format.h"

namespace {

at::Tensor codec(const at::Tensor& x, float g) {
  wush::QuantOptions o;
  o.global_mode = wush::GlobalScaleMode::Fixed;
  o.nvfp4_global = g;
  return wush::fake_quantize(x, wush::Format::NVFP4, o);
}

int64_t mismatches(const at::Tensor& a, const at::Tensor& b) {
  // bit patterns, so that a -0 / +0 or NaN difference counts too
  return a.contiguous().view(at::kInt).ne(b.contiguous().view(at::kInt)).sum().item<int64_t>();
}

TEST(AtenNvfp4, EqualsTheCodecOnRandomGroupsOfEveryMagnitude) {
  at::Generator gen = at::detail::createCPUGenerator(17);
  // rows of 72 (4.5 groups: padding), magnitudes 2^-40 .. 2^40 so that E4M3 scales go subnormal,
  // normal and saturated (overflowing groups clip to +-6 s)
  at::Tensor mag = at::pow(2.0, at::randint(-40, 41, {4096, 1}, gen, at::kLong).to(at::kFloat));
  at::Tensor x = at::randn({4096, 72}, gen) * mag;
  x.select(0, 0).zero_();  // an all-zero row
  for (float g : {10.0f, 1.0f, 0.37f, 2688.0f}) {
    at::Tensor ref = codec(x, g), got = wush::nvfp4_fake_quant_aten(x, g);
    ASSERT_EQ(got.sizes(), ref.sizes());
    EXPECT_EQ(mismatches(got, ref), 0) << "g = " << g;
  }
}

TEST(AtenNvfp4, DecisionBoundariesRoundHalfToEven) {
  // g = 1, one group whose amax is 6 * 2^k * 1.0 -> s = 2^k exactly; the elements x = b s sit on
  // every decision boundary b of E2M1 (ties to the even code), and just beside each.
  const float b[] = {0.25f, 0.75f, 1.25f, 1.75f, 2.5f, 3.5f, 5.0f};
  const float want[] = {0.0f, 1.0f, 1.0f, 2.0f, 2.0f, 4.0f, 4.0f};
  for (int k : {-3, 0, 5}) {
    const float s = std::ldexp(1.0f, k);
    at::Tensor x = at::zeros({3, 16});
    for (int i = 0; i < 7; ++i) {
      x[0][i] = b[i] * s;
      x[1][i] = std::nextafter(b[i] * s, 0.0f);
      x[2][i] = -std::nextafter(b[i] * s, 100.0f);
    }
    x.select(1, 15).fill_(6.0f * s);
    at::Tensor got = wush::nvfp4_fake_quant_aten(x, 1.0f);
    for (int i = 0; i < 7; ++i) EXPECT_EQ(got[0][i].item<float>(), want[i] * s) << "boundary " << b[i];
    EXPECT_EQ(mismatches(got, codec(x, 1.0f)), 0) << "k = " << k;
  }
}

TEST(AtenNvfp4, RejectsABadGlobalScale) {
  EXPECT_THROW(wush::nvfp4_fake_quant_aten(at::ones({16}), 0.0f), std::exception);
  EXPECT_THROW(wush::nvfp4_fake_quant_aten(at::ones({16}, at::kInt), 1.0f), std::exception);
}

}  // namespace

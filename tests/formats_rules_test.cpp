// A float64 re-derivation of every format's rule, written from the REFERENCE.md §1 table (nearest
// value searches in long double, not the threshold code of rules.h), compared element for element
// with quantize / fake_quantize on seeded data of several distributions, ties, edge cases and
// padding.
#include <gtest/gtest.h>

#include <cmath>
#include <cstring>
#include <vector>

#include "formats/format.h"
#include "formats/synthetic.h"

using namespace wush;

namespace {

const double kE2M1[8] = {0, 0.5, 1, 1.5, 2, 3, 4, 6};

// Index of the value of grid[0..n) nearest to a >= 0, ties to the even index, saturating.
int nearest(const double* grid, int n, long double a, long double unit = 1) {
  if (a >= grid[n - 1] * unit) return n - 1;  // saturate (and no cancellation for huge a)
  int best = 0;
  for (int i = 1; i < n; ++i) {
    const long double d = std::fabs(grid[i] * unit - a), db = std::fabs(grid[best] * unit - a);
    if (d < db || (d == db && i % 2 == 0)) best = i;
  }
  return best;
}

// The 127 non-negative finite E4M3 values, in code order (OCP OFP8: bias 7, S.1111.111 = NaN).
const std::vector<double>& e4m3_values() {
  static const std::vector<double> v = [] {
    std::vector<double> r;
    for (int c = 0; c < 127; ++c) {
      const int e = c >> 3, m = c & 7;
      r.push_back(e == 0 ? std::ldexp(m / 8.0, -6) : std::ldexp(1 + m / 8.0, e - 7));
    }
    return r;
  }();
  return v;
}
double e4m3_nearest(long double a) {
  const auto& v = e4m3_values();
  return v[nearest(v.data(), int(v.size()), a)];
}
double bf16_nearest(double d) {
  if (d < std::ldexp(1.0, -126)) return std::ldexp(std::nearbyint(std::ldexp(d, 133)), -133);
  int e;
  const double m = std::frexp(d, &e);  // d = m 2^e, m in [0.5, 1): keep 8 significant bits
  return std::ldexp(std::nearbyint(std::ldexp(m, 8)), e - 8);
}
int floor_log2(double a) { return int(std::floor(std::log2(a))); }
double pow2_scale(double amax, int offset) {  // E8M0: 2^clamp(floor(log2 amax) - offset, -127, 127)
  const int e = amax > 0 ? std::max(floor_log2(amax) - offset, -127) : -127;
  return std::ldexp(1.0, e);
}

struct Ref {
  std::vector<float> y, scales;
  int64_t overflow = 0;
};

Ref reference(const at::Tensor& x, Format f, double g) {
  const int64_t rows = x.size(0), K = x.size(1);
  const int64_t G = traits(f).group ? traits(f).group : K, ngr = (K + G - 1) / G;
  const float* p = x.data_ptr<float>();
  Ref r;
  r.y.assign(size_t(rows * K), 0.0f);
  for (int64_t row = 0; row < rows; ++row)
    for (int64_t j = 0; j < ngr; ++j) {
      std::vector<double> v(size_t(G), 0.0);  // zero padding
      for (int64_t i = 0; i < G && j * G + i < K; ++i) v[size_t(i)] = p[row * K + j * G + i];
      double amax = 0, sumsq = 0;
      for (double a : v) amax = std::max(amax, std::fabs(a)), sumsq += a * a;
      double scale = 0;
      std::vector<double> out(size_t(G), 0.0);
      for (int64_t i = 0; i < G; ++i) {
        const long double a = std::fabs((long double)v[size_t(i)]);
        const double sgn = std::signbit(v[size_t(i)]) ? -1 : 1;
        double& o = out[size_t(i)];
        switch (f) {
          case Format::MXFP4:  // s = 2^floor(log2 amax); q = RNE_E2M1(3x/s); q s / 3
            scale = pow2_scale(amax, 0);
            o = sgn * double((long double)kE2M1[nearest(kE2M1, 8, 3 * a / scale)] * scale / 3);
            break;
          case Format::MXFP4_OCP:  // X = 2^(floor(log2 amax) - 2); q = RNE_E2M1(x/X) (sat.); q X
            scale = pow2_scale(amax, 2);
            o = sgn * kE2M1[nearest(kE2M1, 8, a / scale)] * scale;
            break;
          case Format::NVFP4: {  // s = E4M3(g amax / 6); q = RNE_E2M1(x g / s); q s / g
            scale = e4m3_nearest((long double)g * amax / 6);
            if (scale > 0)
              o = sgn * double((long double)kE2M1[nearest(kE2M1, 8, a * g, scale)] * scale / g);
            break;
          }
          case Format::MXINT4:  // X = 2^(floor(log2 amax) - 2); q = clamp(RNE(x/X), -8, 7); q X
            scale = pow2_scale(amax, 2);
            o = std::clamp(std::nearbyint(v[size_t(i)] / scale), -8.0, 7.0) * scale;
            break;
          case Format::INT4:  // s = bf16(2.5139 * 2/15 * rms); q = clamp(floor(x/s), -8, 7); (q+.5)s
            scale = bf16_nearest(2.5139 * 2 / 15 * std::sqrt(sumsq / double(G)));
            if (scale > 0)
              o = (std::clamp(double(std::floor((long double)v[size_t(i)] / scale)), -8.0, 7.0) + 0.5) *
                  scale;
            break;
          case Format::MXFP8:  // X = 2^(floor(log2 amax) - 8); q = E4M3(x/X) (sat. 448); q X
            scale = pow2_scale(amax, 8);
            o = sgn * e4m3_nearest(a / scale) * scale;
            break;
          case Format::INT8:  // s = amax / 127 (fp32); q = clamp(RNE(x/s), -127, 127); q s
            scale = float(amax / 127);
            if (scale > 0)
              o = std::clamp(double(std::nearbyint((long double)v[size_t(i)] / scale)), -127.0,
                             127.0) *
                  scale;
            break;
          default: break;
        }
      }
      if (f == Format::NVFP4 && g * amax / 6 > 448) ++r.overflow;
      r.scales.push_back(float(scale));
      for (int64_t i = 0; i < G && j * G + i < K; ++i) r.y[size_t(row * K + j * G + i)] = float(out[size_t(i)]);
    }
  return r;
}

// Rows of edge cases: an all-zero row, subnormals, exact powers of two, ties of every grid,
// values past the E4M3 and NVFP4 ranges, huge and tiny magnitudes.
at::Tensor edge_rows(int64_t K) {
  at::Tensor t = at::zeros({8, K});
  float* p = t.data_ptr<float>();
  for (int64_t i = 0; i < K; ++i) {
    p[1 * K + i] = std::ldexp(float(int(i % 13) - 6), -140);         // subnormal inputs
    p[2 * K + i] = std::ldexp(1.0f, int(i % 9) - 4) * (i % 2 ? -1 : 1);  // powers of two
    p[3 * K + i] = float(int(i % 61) - 30) / 8;                      // dyadic: exact ties
    p[4 * K + i] = i % 16 == 0 ? 480.0f : float(int(i % 29) - 14) * 30;  // 480: E4M3 saturates
    p[5 * K + i] = i % 16 == 3 ? 300.0f : float(i % 7);              // NVFP4 (g = 10) overflow
    p[6 * K + i] = float(int(i % 11) - 5) * 1e30f;                   // huge
    p[7 * K + i] = float(int(i % 5) - 2) * 1e-30f;                   // tiny
  }
  return t;
}

void expect_matches(const at::Tensor& x, Format f, const QuantOptions& opt, const std::string& what) {
  const float g = global_scale_for(x, f, opt);
  const Ref r = reference(x, f, g);
  const at::Tensor y = fake_quantize(x, f, opt);
  const QuantizedTensor q = quantize(x, f, opt);
  ASSERT_EQ(y.numel(), int64_t(r.y.size()));
  const float* py = y.data_ptr<float>();
  int64_t bad = 0;
  for (size_t i = 0; i < r.y.size() && bad < 5; ++i)
    if (std::memcmp(&py[i], &r.y[i], 4) != 0 && !(py[i] == 0 && r.y[i] == 0)) {
      ADD_FAILURE() << format_name(f) << " " << what << ": element " << i << " x = "
                    << x.reshape({-1})[int64_t(i)].item<float>() << " got " << py[i]
                    << " want " << r.y[i];
      ++bad;
    }
  ASSERT_EQ(q.scales.numel(), int64_t(r.scales.size())) << format_name(f);
  const float* ps = q.scales.data_ptr<float>();
  for (size_t i = 0; i < r.scales.size(); ++i)
    ASSERT_EQ(ps[i], r.scales[i]) << format_name(f) << " " << what << ": scale of group " << i;
  EXPECT_EQ(q.overflow_groups, r.overflow) << format_name(f) << " " << what;
  int64_t ovf = -1;
  fake_quantize(x, f, opt, &ovf);
  EXPECT_EQ(ovf, r.overflow) << format_name(f) << " " << what;
}

}  // namespace

TEST(FormatsRules, Float64ReDerivationOnSeededData) {
  for (const FormatTraits& t : all_formats())
    for (auto& [d, name] : all_dists())
      for (int64_t K : {64, 100}) {  // 100: padding for every group size
        const at::Tensor x = synthetic(d, 24, K, 7 + K) * (d == Dist::Outliers ? 3.0 : 1.0);
        expect_matches(x, t.id, {}, name + " K=" + std::to_string(K));
      }
}

TEST(FormatsRules, Float64ReDerivationOnEdgeCases) {
  for (const FormatTraits& t : all_formats()) expect_matches(edge_rows(100), t.id, {}, "edge");
}

TEST(FormatsRules, Nvfp4GlobalScales) {
  QuantOptions tensor_amax;
  tensor_amax.global_mode = GlobalScaleMode::TensorAmax;
  QuantOptions g8;
  g8.nvfp4_global = 8;  // a power of two: E2M1 ties become exact on dyadic data
  for (const QuantOptions& o : {tensor_amax, g8}) {
    expect_matches(edge_rows(96), Format::NVFP4, o, "edge");
    expect_matches(synthetic(Dist::StudentT3, 16, 80, 3), Format::NVFP4, o, "student-t");
  }
}

TEST(FormatsRules, EdgeCaseFacts) {
  const at::Tensor x = edge_rows(64);
  // all-zero group: scale 0 code (2^-127 for E8M0 formats, 0 otherwise), zeros out
  for (const FormatTraits& t : all_formats()) {
    const QuantizedTensor q = quantize(x, t.id);
    const float s0 = q.scales[0][0].item<float>();
    EXPECT_EQ(s0, t.scale == ScaleType::E8M0 ? std::ldexp(1.0f, -127) : 0.0f) << t.name;
    EXPECT_TRUE(at::equal(fake_quantize(x, t.id)[0], at::zeros({64}))) << t.name;
    EXPECT_TRUE((q.codes[0] == 0).all().item<bool>()) << t.name;
  }
  // MXFP4 reference rule: amax exactly a power of two is represented exactly (3 amax / s = 3)
  const at::Tensor p2 = fake_quantize(x, Format::MXFP4);
  EXPECT_EQ(p2[2][8].item<float>(), 16.0f);
  // MXFP8 saturates at 448 X: amax 480 -> X = 2^(8-8) = 1, 480 > 448 -> 448
  EXPECT_EQ(fake_quantize(x, Format::MXFP8)[4][0].item<float>(), 448.0f);
  // NVFP4 (g = 10): a group with amax 300 wants scale 500 > 448: saturated, reported, no NaN;
  // row 5 has one such element in each of its 4 groups
  const QuantizedTensor q = quantize(x.slice(0, 5, 6), Format::NVFP4);
  EXPECT_EQ(q.overflow_groups, 4);
  EXPECT_TRUE((q.scales == 448.0f).all().item<bool>());
  EXPECT_EQ(fake_quantize(x, Format::NVFP4)[5][3].item<float>(), float(6 * 448 / 10.0));
  EXPECT_FALSE(at::isnan(dequantize(q)).any().item<bool>());
  // subnormal inputs: MXFP4's scale is the smallest E8M0 value and the decode is exact
  EXPECT_EQ(quantize(x, Format::MXFP4).scales[1][0].item<float>(), std::ldexp(1.0f, -127));
}

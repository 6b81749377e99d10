// The formats API (format.h) over every row of the table: fake_quantize == dequantize(quantize)
// bit for bit, nearest-grid-value property, packing, padding, NaN/Inf errors, the GPTQ entry
// points, the table lookups.
#include <gtest/gtest.h>

#include <algorithm>
#include <cstring>
#include <vector>

#include "core/error.h"
#include "formats/format.h"
#include "formats/synthetic.h"

using namespace wush;

namespace {

bool bit_equal(const at::Tensor& a, const at::Tensor& b) {
  if (a.sizes() != b.sizes() || a.scalar_type() != b.scalar_type()) return false;
  const at::Tensor ac = a.contiguous(), bc = b.contiguous();
  return std::memcmp(ac.data_ptr(), bc.data_ptr(), size_t(ac.numel() * ac.element_size())) == 0;
}

std::string error_of(const std::function<void()>& f) {
  try {
    f();
  } catch (const Error& e) {
    return e.what();
  }
  return "(no error)";
}

// The grid of one group: dequantize every code against the group's stored scale.
std::vector<float> group_grid(Format f, float scale, float g) {
  const FormatTraits& t = traits(f);
  const int ncodes = 1 << t.bits, G = t.group ? t.group : ncodes;
  QuantizedTensor q;
  q.format = f;
  q.shape = {ncodes, G};
  q.global_scale = g;
  q.scales = at::full({ncodes, 1}, scale, at::kFloat);
  q.codes = at::empty({ncodes, G * t.bits / 8}, at::kByte);
  for (int c = 0; c < ncodes; ++c) q.codes[c].fill_(t.bits == 4 ? c | (c << 4) : c);
  const at::Tensor d = dequantize(q).select(1, 0).contiguous();
  std::vector<float> v(d.data_ptr<float>(), d.data_ptr<float>() + ncodes);
  v.erase(std::remove_if(v.begin(), v.end(), [](float a) { return std::isnan(a); }), v.end());
  std::sort(v.begin(), v.end());
  return v;
}

}  // namespace

TEST(FormatsApi, FakeEqualsDequantizeOfQuantizeBitForBit) {
  for (const FormatTraits& t : all_formats())
    for (auto& [d, name] : all_dists())
      for (auto shape : std::vector<std::vector<int64_t>>{{33, 64}, {3, 5, 100}, {7, 16}, {1, 1}}) {
        const at::Tensor x = synthetic(d, 1, std::accumulate(shape.begin(), shape.end(), int64_t(1),
                                                             std::multiplies<int64_t>()),
                                       11)
                                 .reshape(shape);
        for (auto dtype : {at::kFloat, at::kBFloat16, at::kHalf}) {
          const at::Tensor xi = x.to(dtype);
          const at::Tensor fq = fake_quantize(xi, t.id);
          const QuantizedTensor q = quantize(xi, t.id);
          ASSERT_EQ(fq.scalar_type(), at::kFloat);
          ASSERT_EQ(fq.sizes(), x.sizes());
          ASSERT_TRUE(bit_equal(fq, dequantize(q))) << t.name << " " << name << " " << xi.sizes();
          // a low-precision input is quantized as its fp32 value
          ASSERT_TRUE(bit_equal(fq, fake_quantize(xi.to(at::kFloat), t.id))) << t.name;
        }
      }
}

TEST(FormatsApi, NonContiguousAndFloat64Inputs) {
  const at::Tensor x = synthetic(Dist::Laplace, 64, 96, 5);
  for (const FormatTraits& t : all_formats()) {
    const at::Tensor xt = x.t();  // [96, 64], not contiguous
    ASSERT_FALSE(xt.is_contiguous());
    EXPECT_TRUE(bit_equal(fake_quantize(xt, t.id), fake_quantize(xt.contiguous(), t.id))) << t.name;
    EXPECT_TRUE(bit_equal(fake_quantize(x.to(at::kDouble), t.id), fake_quantize(x, t.id))) << t.name;
  }
}

TEST(FormatsApi, NearestGridValueAndClipping) {
  // Every output is the grid value nearest to its input (within half a grid step), except where
  // the input lies past the group's largest grid value: then it is that value (clipping).
  for (const FormatTraits& t : all_formats())
    for (auto& [d, name] : all_dists()) {
      const at::Tensor x = synthetic(d, 16, 64, 21);
      const QuantizedTensor q = quantize(x, t.id);
      const at::Tensor y = dequantize(q);
      const int64_t G = t.group ? t.group : 64;
      int64_t clipped = 0;
      for (int64_t r = 0; r < 16; ++r)
        for (int64_t j = 0; j < 64 / G; ++j) {
          const float s = q.scales[r][j].item<float>();
          const std::vector<float> grid = group_grid(t.id, s, q.global_scale);
          for (int64_t i = j * G; i < (j + 1) * G; ++i) {
            const double xv = x[r][i].item<float>(), yv = y[r][i].item<float>();
            ASSERT_TRUE(std::binary_search(grid.begin(), grid.end(), float(yv))) << t.name;
            if (xv > grid.back() || xv < grid.front()) {
              ++clipped;
              EXPECT_EQ(yv, xv > 0 ? grid.back() : grid.front()) << t.name << " " << xv;
              continue;
            }
            auto hi = std::lower_bound(grid.begin(), grid.end(), float(xv));
            const double up = *hi, lo = hi == grid.begin() ? up : *(hi - 1);
            ASSERT_LE(std::fabs(yv - xv), 0.5 * (up - lo) * (1 + 1e-6) + 1e-30)
                << t.name << " " << name << " x = " << xv << " y = " << yv;
          }
        }
      if (t.id == Format::MXFP4) {
        EXPECT_EQ(clipped, 0) << "the MXFP4 reference rule never clips";
      }
    }
}

TEST(FormatsApi, PackingLowNibbleIsEvenElement) {
  // MXFP4 (reference rule), one group with amax 4: s = 4, 3x/s = 0.75x.
  at::Tensor x = at::zeros({1, 32});
  x[0][0] = 4.0f;    // 3   -> code 5
  x[0][1] = -4.0f;   // -3  -> code 0xD
  x[0][2] = 2.0f;    // 1.5 -> code 3
  x[0][3] = -1.0f;   // -0.75 -> -1 (tie to even) -> code 0xA
  x[0][31] = 0.5f;   // 0.375 -> 0.5 -> code 1
  const QuantizedTensor q = quantize(x, Format::MXFP4);
  ASSERT_EQ(q.codes.sizes(), (std::vector<int64_t>{1, 16}));
  EXPECT_EQ(q.codes[0][0].item<int>(), 0xD5);
  EXPECT_EQ(q.codes[0][1].item<int>(), 0xA3);
  EXPECT_EQ(q.codes[0][15].item<int>(), 0x10);
  EXPECT_EQ(q.scales[0][0].item<float>(), 4.0f);
  // 8-bit formats: one code per byte (MXFP8: X = 2^(2-8); 4 / X = 256 = E4M3 0x78)
  const QuantizedTensor q8 = quantize(x, Format::MXFP8);
  ASSERT_EQ(q8.codes.sizes(), (std::vector<int64_t>{1, 32}));
  EXPECT_EQ(q8.codes[0][0].item<int>(), 0x78);
  EXPECT_EQ(q8.codes[0][1].item<int>(), 0xF8);
}

TEST(FormatsApi, PaddingIsZerosAndDropped) {
  for (const FormatTraits& t : all_formats()) {
    const int64_t K = 40;  // pads to 48 (G = 16) or 64 (G = 32)
    const at::Tensor x = synthetic(Dist::StudentT3, 5, K, 9);
    const QuantizedTensor q = quantize(x, t.id);
    const int64_t G = t.group ? t.group : K, Kp = (K + G - 1) / G * G;
    EXPECT_EQ(q.pad, Kp - K) << t.name;
    EXPECT_EQ(q.codes.size(1), Kp * t.bits / 8) << t.name;
    EXPECT_EQ(q.scales.size(1), Kp / G) << t.name;
    EXPECT_EQ(q.shape, x.sizes().vec()) << t.name;
    const at::Tensor padded = at::cat({x, at::zeros({5, Kp - K})}, 1);
    EXPECT_TRUE(bit_equal(dequantize(q), fake_quantize(padded, t.id).slice(1, 0, K))) << t.name;
    EXPECT_TRUE(bit_equal(q.codes, quantize(padded, t.id).codes)) << t.name;
  }
  // INT4 midrise: a padded zero decodes to +scale/2, which is why dequantize drops the padding
  const at::Tensor x = synthetic(Dist::Gaussian, 1, 40, 2);
  const QuantizedTensor q = quantize(at::cat({x, at::zeros({1, 24})}, 1), Format::INT4);
  EXPECT_EQ(dequantize(q)[0][63].item<float>(), 0.5f * q.scales[0][1].item<float>());
}

TEST(FormatsApi, NanAndInfNameTheTensorAndPosition) {
  for (const FormatTraits& t : all_formats()) {
    at::Tensor x = synthetic(Dist::Gaussian, 4, 70, 1).reshape({2, 2, 70});
    x[1][0][37] = std::nanf("");
    QuantOptions opt;
    opt.tensor_name = "layers.3.mlp.w2";
    for (auto fn : {std::function<void()>([&] { fake_quantize(x, t.id, opt); }),
                    std::function<void()>([&] { quantize(x, t.id, opt); })}) {
      const std::string e = error_of(fn);
      EXPECT_NE(e.find("layers.3.mlp.w2"), std::string::npos) << e;
      EXPECT_NE(e.find("NaN at index [1, 0, 37]"), std::string::npos) << e;
      EXPECT_NE(e.find(t.name), std::string::npos) << e;
    }
    x[1][0][37] = 1.0f;
    x[0][1][69] = -INFINITY;  // in a padded last group
    EXPECT_NE(error_of([&] { fake_quantize(x.to(at::kBFloat16), t.id); }).find("-Inf at index [0, 1, 69]"),
              std::string::npos)
        << t.name;
  }
  QuantOptions ta;
  ta.global_mode = GlobalScaleMode::TensorAmax;
  at::Tensor x = at::ones({3, 16});
  x[2][5] = INFINITY;
  EXPECT_NE(error_of([&] { quantize(x, Format::NVFP4, ta); }).find("[2, 5]"), std::string::npos);
}

TEST(FormatsApi, GptqScalesAgreeWithFakeQuantize) {
  for (const FormatTraits& t : all_formats()) {
    const int64_t G = t.group ? t.group : 48;
    const at::Tensor w = synthetic(Dist::Outliers, 37, G, 4) * 50;  // NVFP4: some overflow at g = 10
    const float g = global_scale_for(w, t.id);
    const at::Tensor s = group_scales(w, t.id, g);
    EXPECT_TRUE(bit_equal(s, quantize(w, t.id).scales.reshape({-1}))) << t.name;
    const at::Tensor want = fake_quantize(w, t.id);
    EXPECT_TRUE(bit_equal(quantize_with_scales(w, s, t.id, g), want)) << t.name;
    // fp64: same scales, same decisions, the dequantized value rounds to the fp32 one
    const at::Tensor wd = w.to(at::kDouble);
    EXPECT_TRUE(bit_equal(group_scales(wd, t.id, g), s)) << t.name;
    const at::Tensor yd = quantize_with_scales(wd, s, t.id, g);
    EXPECT_EQ(yd.scalar_type(), at::kDouble);
    EXPECT_TRUE(bit_equal(yd.to(at::kFloat), want)) << t.name;
    // one column at a time (GPTQ's loop): x [R] against the frozen scales
    for (int64_t c : {int64_t(0), G - 1})
      EXPECT_TRUE(bit_equal(quantize_with_scales(w.select(1, c), s, t.id, g), want.select(1, c).contiguous()))
          << t.name;
    // scales that are not scales of the format are refused
    if (t.scale == ScaleType::E8M0 || t.scale == ScaleType::E4M3) {
      const std::string e = error_of([&] { quantize_with_scales(w, s * 1.1f + 1e-3f, t.id, g); });
      EXPECT_NE(e.find("not a valid"), std::string::npos) << t.name << ": " << e;
    }
  }
}

TEST(FormatsApi, EncodeWithScales) {
  for (const FormatTraits& t : all_formats()) {
    const int64_t G = t.group ? t.group : 64, R = 9, K = 2 * G;
    const at::Tensor w = synthetic(Dist::StudentT3, R, K, 8) * 30;
    const float g = global_scale_for(w, t.id);
    // the group's own scales: the same codes as quantize
    const QuantizedTensor q = quantize(w, t.id);
    const QuantizedTensor e = encode_with_scales(w, q.scales, t.id, g);
    EXPECT_TRUE(bit_equal(e.codes, q.codes)) << t.name;
    EXPECT_TRUE(bit_equal(e.scales, q.scales)) << t.name;
    // frozen scales of other data (GPTQ): dequantize = quantize_with_scales' rounding, group by group
    const int64_t ng = t.group ? K / G : 1, Gx = K / ng;  // INT8: one group per row
    const at::Tensor other = group_scales(synthetic(Dist::Gaussian, R * ng, Gx, 9) * 20, t.id, g);
    const QuantizedTensor f = encode_with_scales(w, other.reshape({R, ng}), t.id, g);
    const at::Tensor want = quantize_with_scales(w.reshape({R * ng, Gx}), other, t.id, g);
    EXPECT_TRUE(bit_equal(dequantize(f), want.reshape({R, K}))) << t.name;
    EXPECT_TRUE(bit_equal(f.scales.reshape({-1}), other)) << t.name;
    if (t.scale == ScaleType::E8M0 || t.scale == ScaleType::E4M3) {
      const std::string m =
          error_of([&] { encode_with_scales(w, q.scales * 1.1f + 1e-3f, t.id, g); });
      EXPECT_NE(m.find("not a valid"), std::string::npos) << t.name << ": " << m;
    }
    EXPECT_NE(error_of([&] { encode_with_scales(w, q.scales.reshape({-1}).slice(0, 1), t.id, g); }).find("scales must"),
              std::string::npos)
        << t.name;
  }
}

TEST(FormatsApi, TensorAmaxGlobalScale) {
  QuantOptions o;
  o.global_mode = GlobalScaleMode::TensorAmax;
  for (auto& [d, name] : all_dists()) {
    const at::Tensor x = synthetic(d, 8, 64, 3);
    const double amax = x.abs().max().item<double>();
    const float g = global_scale_for(x, Format::NVFP4, o);
    EXPECT_LE(double(g) * amax / 6, 448.0) << name;
    EXPECT_GT(double(std::nextafter(g, INFINITY)) * amax / 6, 448.0) << name;  // the largest such g
    const QuantizedTensor q = quantize(x, Format::NVFP4, o);
    EXPECT_EQ(q.global_scale, g);
    EXPECT_EQ(q.overflow_groups, 0);
    EXPECT_EQ(q.scales.max().item<float>(), 448.0f) << name;  // the amax group uses the top scale
  }
  EXPECT_EQ(global_scale_for(at::ones({2, 16}), Format::MXFP4, o), 1.0f);
  EXPECT_EQ(global_scale_for(at::ones({2, 16}), Format::NVFP4), 10.0f);
}

TEST(FormatsApi, TableLookups) {
  std::vector<std::string> names;
  for (const FormatTraits& t : all_formats()) {
    EXPECT_EQ(parse_format(t.name), t.id);
    EXPECT_EQ(format_name(t.id), t.name);
    EXPECT_EQ(&traits(t.id), &traits(t.id));
    names.push_back(t.name);
  }
  EXPECT_EQ(names, (std::vector<std::string>{"mxfp4", "mxfp4-ocp", "nvfp4", "mxint4", "int4", "mxfp8",
                                             "int8"}));
  EXPECT_EQ(traits(Format::NVFP4).group, 16);
  EXPECT_EQ(traits(Format::MXFP4).group, 32);
  EXPECT_EQ(parse_format("none"), Format::None);
  const std::string e = error_of([] { parse_format("mxfp5"); });
  EXPECT_NE(e.find("unknown format 'mxfp5' (valid: mxfp4, mxfp4-ocp, nvfp4, mxint4, int4, mxfp8, int8"),
            std::string::npos)
      << e;
  // "none" is the identity (a copy in fp32)
  const at::Tensor x = synthetic(Dist::Gaussian, 2, 8, 1);
  const at::Tensor y = fake_quantize(x, Format::None);
  EXPECT_TRUE(bit_equal(x, y));
  EXPECT_NE(x.data_ptr(), y.data_ptr());
}

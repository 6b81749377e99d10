#include "latmix/mx_ste.h"

#include <c10/core/GradMode.h>

#include "core/error.h"
#include "formats/aten_nvfp4.h"

namespace wush::latmix {

namespace {

// RNE onto the E2M1 magnitudes {0, .5, 1, 1.5, 2, 3, 4, 6} (REFERENCE §1): the grid step is 0.5
// below 2, 1 in [2, 4), 2 from 4 on; at::round rounds half to even, which on y / step is the
// ties-to-even-mantissa rule (0.25 -> 0, 0.75 -> 1, 1.25 -> 1, 2.5 -> 2, 5 -> 4). Saturates at 6.
at::Tensor rne_e2m1(const at::Tensor& y) {
  at::Tensor a = y.abs();
  at::Tensor step = at::where(a < 2, at::full({}, 0.5, a.options()),
                              at::where(a < 4, at::full({}, 1.0, a.options()), at::full({}, 2.0, a.options())));
  at::Tensor q = at::clamp_max(at::round(a / step) * step, 6.0);
  return at::sign(y) * q;
}

struct Grouped {
  at::Tensor g;      // [..., ng, G] (padded)
  int64_t C = 0, Cp = 0;
};

Grouped to_groups(const at::Tensor& x, int64_t G) {
  Grouped r;
  r.C = x.size(-1);
  r.Cp = (r.C + G - 1) / G * G;
  at::Tensor xp = r.Cp == r.C ? x : at::constant_pad_nd(x, {0, r.Cp - r.C});
  auto shape = xp.sizes().vec();
  shape.back() = r.Cp / G;
  shape.push_back(G);
  r.g = xp.reshape(shape);
  return r;
}

at::Tensor from_groups(const at::Tensor& g, const Grouped& r) {
  auto shape = g.sizes().vec();
  shape.pop_back();
  shape.back() = r.Cp;
  at::Tensor y = g.reshape(shape);
  return r.Cp == r.C ? y : y.narrow(-1, 0, r.C);
}

// 2^(floor(log2 amax) + offset) per group [..., ng, 1]; amax = 0 -> scale 1 (the group is all
// zeros and decodes to zeros whatever the scale). frexp: amax = m 2^e, m in [0.5, 1).
at::Tensor pow2_scale(const at::Tensor& amax, int64_t offset) {
  auto fe = at::frexp(amax);
  at::Tensor e = std::get<1>(fe).to(at::kInt) - 1 + int(offset);
  at::Tensor s = at::ldexp(at::ones_like(amax), e);
  return at::where(amax > 0, s, at::ones_like(amax));
}

// INT4 (paper rule, REFERENCE §1): s = bf16(2.5139 * 2/15 * rms(group)), midrise levels (q + 1/2) s,
// q = -8..7, chosen by the codec's thresholds fl32(k s), k = -7..7 (x >= fl32(k s) moves one level up).
// The group's sum of squares is taken in float64 (the codec's too; its order may differ in the last
// bit of a double, which the bf16 rounding of s does not see but in an exact tie).
std::pair<at::Tensor, at::Tensor> int4_groups(const at::Tensor& g) {
  at::Tensor gd = g.to(at::kDouble);
  at::Tensor rms = (gd * gd).sum(-1, /*keepdim=*/true).div(double(g.size(-1))).sqrt();
  at::Tensor s = (rms * (2.5139 * 2.0 / 15.0)).to(at::kBFloat16).to(at::kFloat);  // RNE to bf16
  at::Tensor x = g.to(at::kFloat);
  at::Tensor k = at::floor(gd / at::where(s > 0, s, at::ones_like(s)).to(at::kDouble)).to(at::kFloat);
  // fix the candidate against the fp32 thresholds, as the codec compares
  k = at::where(x >= (k + 1) * s, k + 1, k);
  k = at::where(x < k * s, k - 1, k);
  at::Tensor q = at::clamp(k, -8, 7);
  at::Tensor v = at::where(s > 0, (q + 0.5) * s, at::zeros_like(x));
  return {v.to(g.scalar_type()), (k >= -8).logical_and(k <= 7)};
}

// Dequantized values and the STE pass-through mask, both [..., ng, G].
std::pair<at::Tensor, at::Tensor> quantize_groups(const at::Tensor& g, Format f) {
  if (f == Format::NVFP4) {
    // The activations' fixed global scale (QuantOptions: 10). E4M3 rounds g amax / 6 to nearest, and
    // saturates at 448 for large groups: x g / s then passes 6 and clips. Gradient 1 where x g / s lies
    // inside [-7, 7] (rounding to the top level 6), 0 beyond.
    const float gs = QuantOptions().nvfp4_global;
    auto shape = g.sizes().vec();
    at::Tensor v = nvfp4_fake_quant_aten(g.flatten(-2), gs).view(shape);
    at::Tensor s = nvfp4_scales_aten(g.abs().amax(-1, /*keepdim=*/true), gs);
    return {v.to(g.scalar_type()), (g.to(at::kDouble).abs() * double(gs)).le(7.0 * s)};
  }
  if (f == Format::INT4) return int4_groups(g);
  at::Tensor amax = g.abs().amax(-1, /*keepdim=*/true);
  if (f == Format::MXFP4) {
    at::Tensor s = pow2_scale(amax, 0);
    return {rne_e2m1(g * 3 / s) * s / 3, at::ones_like(g, at::kBool)};
  }
  WUSH_ASSERT(f == Format::MXINT4);
  at::Tensor X = pow2_scale(amax, -2);
  at::Tensor y = g / X;
  return {at::clamp(at::round(y), -8, 7) * X, (y >= -8.5).logical_and(y <= 7.5)};
}

void check(const at::Tensor& x, Format f, int64_t G) {
  WUSH_CHECK(ste_supports(f), "latmix: the training fake-quantizer implements mxfp4, mxint4, nvfp4 and int4, not %s",
             ste_format_name(f).c_str());
  WUSH_CHECK(G > 0 && x.dim() >= 1 && x.is_floating_point(), "latmix fake-quant: needs a float tensor and G > 0");
}

}  // namespace

Format parse_ste_format(const std::string& name) {
  if (name == "mxfp4") return Format::MXFP4;
  if (name == "mxint4") return Format::MXINT4;
  if (name == "nvfp4") return Format::NVFP4;
  if (name == "int4") return Format::INT4;
  if (name == "none") return Format::None;
  WUSH_FAIL("latmix: format '%s' is not supported for training (valid: mxfp4, mxint4, nvfp4, int4, none)", name.c_str());
}

std::string ste_format_name(Format f) {
  switch (f) {
    case Format::MXFP4: return "mxfp4";
    case Format::MXINT4: return "mxint4";
    case Format::NVFP4: return "nvfp4";
    case Format::INT4: return "int4";
    case Format::None: return "none";
    default: return "format#" + std::to_string(int(f));
  }
}

bool ste_supports(Format f) {
  return f == Format::None || f == Format::MXFP4 || f == Format::MXINT4 || f == Format::NVFP4 || f == Format::INT4;
}

at::Tensor mx_fake_quant(const at::Tensor& x, Format f, int64_t G) {
  check(x, f, G);
  if (f == Format::None) return x;
  c10::NoGradGuard ng;
  Grouped r = to_groups(x, G);
  return from_groups(quantize_groups(r.g, f).first, r);
}

at::Tensor mx_fake_quant_ste(const at::Tensor& x, Format f, int64_t G, bool scale_grad) {
  check(x, f, G);
  if (f == Format::None) return x;
  Grouped r = to_groups(x, G);
  at::Tensor q, mask;
  {
    c10::NoGradGuard ng;
    std::tie(q, mask) = quantize_groups(r.g, f);
  }
  // value q, gradient mask: g * mask + (q - g * mask) with the second term detached.
  at::Tensor gm = r.g * mask.to(r.g.scalar_type());
  at::Tensor y = gm + (q - gm).detach();
  if (scale_grad) {  // + (amax - amax) * (q - x) / amax: zero in value, d/d amax = (q - x) / amax
    at::Tensor amax = r.g.abs().amax(-1, /*keepdim=*/true);
    at::Tensor slope = at::where(amax > 0, (q - r.g) / amax, at::zeros_like(q)).detach();
    y = y + (amax - amax.detach()) * slope;
  }
  return from_groups(y, r);
}

}  // namespace wush::latmix

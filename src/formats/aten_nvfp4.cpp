#include "formats/aten_nvfp4.h"

#include <cmath>

#include "core/error.h"

namespace wush {

namespace {

// RNE of a >= 0 (float64) to E4M3: 3 mantissa bits in the normal range (exponent >= -6), the
// multiples of 2^-9 below it; saturates at 448. a / step is exact (a power of two), at::round
// rounds half to even.
at::Tensor round_e4m3(const at::Tensor& a) {
  at::Tensor e = std::get<1>(at::frexp(a)).to(at::kInt) - 1;  // a = m 2^e, m in [1, 2)
  at::Tensor step = at::ldexp(at::ones_like(a), at::clamp_min(e, -6) - 3);
  return at::clamp_max(at::round(a / step) * step, 448.0);
}

// RNE onto {0, .5, 1, 1.5, 2, 3, 4, 6} (steps .5 below 2, 1 below 4, 2 above), saturating at 6.
at::Tensor round_e2m1(const at::Tensor& y) {
  at::Tensor a = y.abs();
  at::Tensor step = at::where(a < 2, at::full({}, 0.5, a.options()),
                              at::where(a < 4, at::full({}, 1.0, a.options()), at::full({}, 2.0, a.options())));
  return at::sign(y) * at::clamp_max(at::round(a / step) * step, 6.0);
}

}  // namespace

at::Tensor nvfp4_scales_aten(const at::Tensor& amax, float global_scale) {
  return round_e4m3(amax.to(at::kDouble) * double(global_scale) / 6.0);
}

at::Tensor nvfp4_fake_quant_aten(const at::Tensor& x, float global_scale) {
  WUSH_CHECK(x.is_floating_point() && x.dim() >= 1, "nvfp4 fake-quant: needs a float tensor, got %s",
             c10::toString(x.scalar_type()));
  WUSH_CHECK(global_scale > 0 && std::isfinite(global_scale), "nvfp4: global scale g = %g must be finite and > 0",
             global_scale);
  constexpr int64_t G = 16;
  const int64_t C = x.size(-1), Cp = (C + G - 1) / G * G;
  at::Tensor xp = x.to(at::kDouble);
  if (Cp != C) xp = at::constant_pad_nd(xp, {0, Cp - C});
  auto shape = xp.sizes().vec();
  shape.back() = Cp / G;
  shape.push_back(G);
  at::Tensor v = xp.reshape(shape);
  const double g = global_scale;
  at::Tensor s = nvfp4_scales_aten(v.abs().amax(-1, /*keepdim=*/true), global_scale);
  at::Tensor pos = s > 0;
  at::Tensor q = round_e2m1(v * g / at::where(pos, s, at::ones_like(s)));
  at::Tensor y = at::where(pos, (q * s) / g, at::zeros_like(q)).to(at::kFloat);
  shape.pop_back();
  shape.back() = Cp;
  y = y.reshape(shape);
  return Cp == C ? y : y.narrow(-1, 0, C).contiguous();
}

}  // namespace wush

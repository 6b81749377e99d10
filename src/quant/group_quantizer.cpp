#include "quant/group_quantizer.h"

#include "core/error.h"

namespace wush {

FormatQuantizer::FormatQuantizer(Format f, float global_scale) : f_(f), g_(global_scale) {
  WUSH_CHECK(f != Format::None, "GPTQ: format 'none' has no quantizer");
  group_ = traits(f).group;
  WUSH_CHECK(group_ > 0, "GPTQ: format %s has no column groups", traits(f).name);
}

at::Tensor FormatQuantizer::scales(const at::Tensor& xg) const { return group_scales(xg, f_, g_); }

at::Tensor FormatQuantizer::quantize(const at::Tensor& x, const at::Tensor& s) const {
  return quantize_with_scales(x, s.to(at::kFloat), f_, g_);
}

}  // namespace wush

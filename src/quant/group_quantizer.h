// The quantizer GPTQ calls (REFERENCE.md §3): group scales fixed once when a group starts, then
// element-wise rounding of one column at a time against those scales.
#pragma once
#include <ATen/ATen.h>

#include "formats/format.h"

namespace wush {

struct GroupQuantizer {
  virtual ~GroupQuantizer() = default;
  virtual int group() const = 0;
  // Scales of one group of columns xg [R, G] (current, error-fed values) -> [R] (opaque to GPTQ).
  virtual at::Tensor scales(const at::Tensor& xg) const = 0;
  // Quantize-dequantize x [R] or [R, n] against per-row scales [R]; result in x's dtype.
  virtual at::Tensor quantize(const at::Tensor& x, const at::Tensor& scales) const = 0;
};

// The format's own rule (group_scales / quantize_with_scales of formats/format.h).
class FormatQuantizer : public GroupQuantizer {
 public:
  // global_scale: NVFP4's g (see global_scale_for); 1 for the other formats.
  explicit FormatQuantizer(Format f, float global_scale = 1.0f);
  int group() const override { return group_; }
  at::Tensor scales(const at::Tensor& xg) const override;
  at::Tensor quantize(const at::Tensor& x, const at::Tensor& scales) const override;

 private:
  Format f_;
  float g_;
  int group_;
};

}  // namespace wush

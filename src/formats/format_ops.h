// Internal: a format's row of the table (format_table.cpp) = its public traits plus the kernels
// instantiated from its rule (kernels.h). format.cpp dispatches every call through this row.
#pragma once
#include "formats/format.h"
#include "formats/kernels.h"

namespace wush {

struct FormatOps {
  using RangeFn = void (*)(const kernels::Job&, int64_t, int64_t);
  template <class T>
  using ScalesFn = void (*)(const T*, int64_t, float, float*, const kernels::Job&, int64_t, int64_t);
  template <class T>
  using WithScalesFn = void (*)(const T*, T*, int64_t, const float*, float, const kernels::Job&,
                                int64_t, int64_t);

  FormatTraits traits;
  RangeFn fake = nullptr, quantize = nullptr, dequantize = nullptr;  // over groups [g0, g1)
  RangeFn encode = nullptr;  // quantize against the given scales (encode_with_scales)
  ScalesFn<float> group_scales_f32 = nullptr;                        // over rows [r0, r1)
  ScalesFn<double> group_scales_f64 = nullptr;
  WithScalesFn<float> with_scales_f32 = nullptr;
  WithScalesFn<double> with_scales_f64 = nullptr;
};

// The row of f; Format::None has no kernels.
const FormatOps& format_ops(Format f);

}  // namespace wush

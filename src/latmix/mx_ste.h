// Differentiable activation fake-quantization for LATMiX training (REFERENCE.md §1, §5): ATen
// implementations of the format rules LATMiX trains against, wrapped in a straight-through
// estimator. Per token, groups of G along the last dimension (zero-padded to a multiple of G, the
// padding dropped again). The block scale is a function of the group's amax (or RMS) and is treated
// as a constant in the backward pass (it is piecewise constant almost everywhere).
//   mxfp4 (reference rule): s = 2^floor(log2 amax), q = RNE_E2M1(3 x / s), dequant q s / 3.
//       3 amax / s lies in [3, 6): nothing clips, so the gradient is 1 everywhere.
//   mxint4: X = 2^(floor(log2 amax) - 2), q = clamp(RNE(x / X), -8, 7), dequant q X.
//       Gradient 1 where x / X lies inside [-8.5, 7.5] (rounding, not clipping), 0 where it clips.
//   nvfp4 (G = 16, g = 10): formats/aten_nvfp4.h; gradient 1 where |x g / s| <= 7 (E4M3 saturation
//       of large groups makes the top elements clip).
//   int4 (midrise, s = bf16(2.5139 * 2/15 * rms)): gradient 1 inside the 16 levels' range, 0 beyond.
// Each forward agrees bit for bit with wush::fake_quantize of src/formats (tests/latmix_test.cpp).
#pragma once
#include <ATen/ATen.h>

#include <string>

#include "formats/format.h"

namespace wush::latmix {

// Formats the STE implements (MXFP4, MXINT4, NVFP4, INT4); Format::None passes x through.
bool ste_supports(Format f);
// "mxfp4", "mxint4", "nvfp4", "int4", "none" <-> Format (wush::Error naming the valid ones).
Format parse_ste_format(const std::string& name);
std::string ste_format_name(Format f);

// Forward value of the fake-quantization (no autograd), in x's dtype: the reference of the STE.
at::Tensor mx_fake_quant(const at::Tensor& x, Format f, int64_t group = 32);

// Straight-through fake-quantization: forward = mx_fake_quant(x) exactly; backward: every element
// passes grad * inside-range mask (see above). With scale_grad, the group scale is also
// differentiated as a function of the group's amax (its power-of-two rounding passed straight
// through, as LSQ does for learned scales): q = x + scale * delta with delta = (q - x) / scale
// held fixed gives dq/d amax = (q - x) / amax, which reaches the amax element. This is the signal
// that a transform lowering the group maxima lowers the error; without it the STE sees the
// rounding error as a constant and only rewards growing the transform (a bias the volume
// regularizer alone does not remove). Differentiable with libtorch autograd.
at::Tensor mx_fake_quant_ste(const at::Tensor& x, Format f, int64_t group = 32, bool scale_grad = false);

}  // namespace wush::latmix

// NVFP4 fake-quantization (REFERENCE.md §1) written with ATen operations, so that it runs on any
// device (the CUDA simulation of W4A4 evaluation; the codecs of src/formats are CPU-only).
// Bit-identical to wush::fake_quantize(x, Format::NVFP4, {Fixed, g}) (tests/aten_nvfp4_test.cpp):
// per token, groups of 16 along the last dimension (zero-padded, the padding dropped again):
//   s = E4M3(g amax / 6)   [g amax exact in float64, one float64 rounding of the quotient, then
//                           RNE to E4M3 with subnormals, saturating at 448: the codec's order]
//   q = RNE_E2M1(x g / s)  [x g exact in float64; the float64 quotient cannot land on a decision
//                           boundary it does not equal: x g has <= 48 significant bits, s 4]
//   value = fl32((q s) / g) [the codec's decode table, the same float64 expression]
// A group with s = 0 (all zeros, or below E4M3's smallest subnormal) decodes to zeros.
#pragma once
#include <ATen/ATen.h>

namespace wush {

// x: float tensor [..., C] on any device; returns float32 of the same shape and device.
at::Tensor nvfp4_fake_quant_aten(const at::Tensor& x, float global_scale);
// The group scales s = E4M3(g amax / 6) of group maxima amax (any shape), float64, as above.
at::Tensor nvfp4_scales_aten(const at::Tensor& amax, float global_scale);

}  // namespace wush

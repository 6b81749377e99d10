// Microscaling number formats (REFERENCE.md §1): the public API every other part of wush uses.
// One format = one row of traits (format_table.cpp); quantize/dequantize/fake_quantize work on
// libtorch tensors of any leading shape, with groups of G along the last dimension.
#pragma once
#include <ATen/ATen.h>

#include <cstdint>
#include <string>
#include <vector>

namespace wush {

enum class Format : int { None = 0, MXFP4, MXFP4_OCP, NVFP4, MXINT4, INT4, MXFP8, INT8 };
enum class Elem : int { None = 0, E2M1, INT4, INT4_MIDRISE, E4M3, INT8 };
enum class ScaleType : int { None = 0, E8M0, E4M3, BF16, FP32 };

// NVFP4's FP32 tensor scale g (dequant = q * s / g).
enum class GlobalScaleMode : int {
  Fixed,       // g = QuantOptions::nvfp4_global (reference code: 10), the default
  TensorAmax,  // g = 448 * 6 / amax(tensor)  (NVIDIA recipe, natural for weights)
};

struct QuantOptions {
  GlobalScaleMode global_mode = GlobalScaleMode::Fixed;
  float nvfp4_global = 10.0f;
  const char* tensor_name = "input";  // named in error messages (NaN/Inf position, overflow)
};

struct FormatTraits;

// A quantized tensor. Codes of 4-bit formats are packed two per byte, low nibble = even element.
struct QuantizedTensor {
  Format format = Format::None;
  at::Tensor codes;             // uint8 [..., Kp/2] (4-bit) or [..., Kp] (8-bit)
  at::Tensor scales;            // float32 [..., Kp/G]: the exact value of each stored group scale
  std::vector<int64_t> shape;   // original shape (last dim K)
  int64_t pad = 0;              // zero columns appended: Kp = K + pad, a multiple of G
  float global_scale = 1.0f;    // NVFP4: g; 1 otherwise
  int64_t overflow_groups = 0;  // NVFP4 groups whose E4M3 scale saturated (reported, not silent)
};

// x: CPU, fp32 / bf16 / fp16 (computed in fp32; other floating types are converted to fp32), any
// layout. NaN/Inf -> wush::Error naming opt.tensor_name and the index.
QuantizedTensor quantize(const at::Tensor& x, Format f, const QuantOptions& opt = {});
at::Tensor dequantize(const QuantizedTensor& q);  // float32, original shape
// dequantize(quantize(x)) in one pass, bit-identical to it; float32, same shape as x.
at::Tensor fake_quantize(const at::Tensor& x, Format f, const QuantOptions& opt = {});
// The same, and *overflow_groups = the number of NVFP4 groups whose E4M3 scale saturated.
at::Tensor fake_quantize(const at::Tensor& x, Format f, const QuantOptions& opt,
                         int64_t* overflow_groups);

// For GPTQ (scales fixed when a group starts): the stored group scales of x [R, G]
// (one group per row) -> [R] float32, with opt's global scale rule; and element quantization of
// x [R] or [R, n] against those per-row scales -> dequantized values in x's dtype (fp32/fp64).
at::Tensor group_scales(const at::Tensor& x, Format f, float global_scale = 1.0f);
at::Tensor quantize_with_scales(const at::Tensor& x, const at::Tensor& scales, Format f,
                                float global_scale = 1.0f);
// Encode x [R, K] (K a multiple of G; otherwise zero-padded as in quantize, scales
// [R, ceil(K/G)]) against given group scales [R, K/G] (the values
// group_scales returned, e.g. the scales GPTQ fixed) -> a QuantizedTensor holding exactly those
// scales; x is rounded with quantize_with_scales' rule, so dequantize() returns that rounding.
QuantizedTensor encode_with_scales(const at::Tensor& x, const at::Tensor& scales, Format f,
                                   float global_scale = 1.0f, const QuantOptions& opt = {});
// The NVFP4 global scale g for a tensor under opt (1 for other formats).
float global_scale_for(const at::Tensor& x, Format f, const QuantOptions& opt = {});

// ---- traits table -----------------------------------------------------------------------------
struct FormatTraits {
  Format id;
  const char* name;       // "mxfp4", "mxfp4-ocp", "nvfp4", "mxint4", "int4", "mxfp8", "int8", "none"
  int group;              // G; 0 = one group per row (INT8)
  int bits;               // element bits
  Elem elem;
  ScaleType scale;
  const char* rule;       // one line: the scale and rounding rule
};

const std::vector<FormatTraits>& all_formats();     // every row, "none" excluded
const FormatTraits& traits(Format f);
// Looks the name up in the table; unknown -> wush::Error listing the valid names.
Format parse_format(const std::string& name);
std::string format_name(Format f);

}  // namespace wush

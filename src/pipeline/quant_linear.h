// A W4A4 linear layer, simulated exactly (REFERENCE.md §2, §4): online block transform
// x~_j = T_j x_j, per-token activation fake-quantization in groups of G, then the product with the
// dequantized transformed weights W~ (stored quantized: codes + scales).
#pragma once
#include <ATen/ATen.h>

#include <string>

#include "formats/format.h"

namespace wush {

struct QuantLinear {
  std::string name;            // "model.layers.3.mlp.down_proj"
  Format format = Format::None;
  bool quantize_acts = true;
  std::string transform = "identity";
  at::Tensor T;                // [nb, G, G] fp32 (bf16-rounded values); undefined = identity
  QuantizedTensor weight;      // W~ [R, Cp] quantized (format None: `dense` holds W~ instead)
  at::Tensor dense;            // dequantized W~ [R, Cp] fp32, cached for the forward
  at::Tensor bias;             // [R] or undefined
  int64_t in_features = 0;     // C (before padding)
  int64_t group = 32;          // G of the transform blocks (= the format's group)
  // Padded columns are structurally zero for identity and diagonal transforms: drop them from the
  // product (INT4's midrise grid decodes zeros to +-scale/2, REFERENCE §9).
  bool drop_pad = false;

  int64_t padded_in() const { return (in_features + group - 1) / group * group; }
  // x [..., C] (any float dtype) -> y [..., R] fp32
  at::Tensor forward(const at::Tensor& x) const;
  // The activation side alone: pad, transform, fake-quantize -> [..., Cp] fp32 (on x's device;
  // the fake-quantization itself runs on the CPU).
  at::Tensor transform_acts(const at::Tensor& x) const;
  void refresh_dense();        // dense = dequantize(weight) (after loading or quantizing)
};

// x [..., C] -> zero-padded to Cp and transformed block by block with T [nb, G, G].
at::Tensor apply_block_transform(const at::Tensor& x, const at::Tensor& T, int64_t group);

}  // namespace wush

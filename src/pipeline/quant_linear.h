// A W4A4 linear layer, simulated exactly (REFERENCE.md §2, §4): online block transform
// x~_j = T_j x_j, per-token activation fake-quantization in groups of G, then the product with the
// dequantized transformed weights W~ (stored quantized: codes + scales).
#pragma once
#include <ATen/ATen.h>

#include <memory>
#include <string>

#include "formats/format.h"

namespace wush {

struct CudaW4A4State;  // quant_linear_cuda.h

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
  // §8's weight_global_scale as stored (a loaded checkpoint); 0 = checkpoint_weight_global(format, g).
  float weight_global = 0;

  // The real W4A4 kernels' device state (quant_linear_cuda.h), built on the first CUDA forward.
  mutable std::shared_ptr<CudaW4A4State> cuda_state;

  float decode_global() const;  // the weight_global_scale the decode multiplies in
  int64_t padded_in() const { return (in_features + group - 1) / group * group; }
  // x [..., C] (any float dtype) -> y [..., R] fp32. On a CUDA input, where the format allows
  // (cuda_w4a4_supported), the real W4A4 kernels run instead of the simulation.
  at::Tensor forward(const at::Tensor& x) const;
  // The activation side alone: pad, transform, fake-quantize -> [..., Cp] fp32 (on x's device;
  // the fake-quantization itself runs on the CPU).
  at::Tensor transform_acts(const at::Tensor& x) const;
  // dense = decode_checkpoint_weight(weight) (after loading or quantizing); drops cuda_state
  void refresh_dense();
};

// REFERENCE §8's weight_global_scale of a format: what the decode multiplies in (MXFP4 1/3,
// NVFP4 1/g, 1 otherwise). g is the NVFP4 tensor scale (QuantizedTensor::global_scale).
float checkpoint_weight_global(Format f, float g);
// The dequantized weights as §8 defines them: E2M1(code) * scale * weight_global_scale, each
// product rounded to fp32 once (the multiply-in-decode convention every reader of the layout
// follows; NVFP4's q*s/g would differ from q*s*fl(1/g) in the last bit). Formats without a global
// scale decode with dequantize(). fp32, the codes' [R, Cp].
at::Tensor decode_checkpoint_weight(const QuantizedTensor& w, float weight_global);

// x [..., C] -> zero-padded to Cp and transformed block by block with T [nb, G, G].
at::Tensor apply_block_transform(const at::Tensor& x, const at::Tensor& T, int64_t group);

}  // namespace wush

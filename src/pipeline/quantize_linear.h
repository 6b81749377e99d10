// Quantizing one linear layer with a recipe (REFERENCE.md §2-§3): fit the block transform, derive
// the transformed weights, quantize them with RTN or GPTQ (GPTQ + wush / wush-local fit their
// transforms inside the loop), and return the simulated W4A4 layer.
#pragma once
#include <ATen/ATen.h>

#include <string>

#include "pipeline/quant_linear.h"
#include "pipeline/recipe.h"

namespace wush {

class LayerStats;

struct LinearQuantInput {
  std::string name;              // "model.layers.3.mlp.down_proj"
  at::Tensor W;                  // [R, C] any float dtype
  at::Tensor bias;               // [R] or undefined
  const LayerStats* stats = nullptr;  // needed by data-aware transforms and GPTQ
  uint64_t seed = 0;             // random transform
  // REFERENCE §2 knobs of the data-aware transforms (measured in docs/ACCURACY.md): the damping
  // of the transform's second moments (wush: s += 0.01 mean(s); wush-local: Gw, Gx) and the bf16
  // rounding of T_j. GPTQ's own Hessian damping (§3) is not affected.
  bool transform_damp = true;
  bool round_bf16 = true;
};

// The group size a recipe uses (the format's G; 32 for format none).
int64_t recipe_group(const Recipe& r);

QuantLinear quantize_linear(const LinearQuantInput& in, const Recipe& r);

// ||Y - Y_q||^2 / numel on inputs X [..., C] (REFERENCE §6 per-layer loss), in fp64.
double layer_loss(const QuantLinear& q, const at::Tensor& W, const at::Tensor& bias, const at::Tensor& X);

}  // namespace wush

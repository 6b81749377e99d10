// The model-level pipeline (REFERENCE.md §4): block by block, one forward of the not-yet-quantized
// block on the calibration inputs collects the seven linears' statistics; the seven are quantized
// with the recipe; the block's outputs are recomputed with the quantized layers (activation
// quantization included) and fed to the next block.
#pragma once
#include <ATen/ATen.h>

#include <map>
#include <memory>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "model/forward.h"
#include "model/model.h"
#include "pipeline/quant_linear.h"
#include "pipeline/recipe.h"
#include "quant/calib_stats.h"

namespace wush {

struct QuantizedModel {
  Model base;                                   // config + unquantized tensors (no linear weights)
  // By linear prefix; shared so that hooks() stays valid when the model is moved or copied.
  std::shared_ptr<std::map<std::string, QuantLinear>> linears = std::make_shared<std::map<std::string, QuantLinear>>();
  Recipe recipe;
  nlohmann::json calibration;                   // what calibrated it (file, nsamples, seqlen, seed)

  // Hooks that route the seven linears of every block through the simulated W4A4 layers.
  ForwardHooks hooks() const;
  // A Transformer over the base weights with hooks() installed as its default hooks.
  Transformer transformer(at::Device dev = at::kCPU) const;
};

struct QuantizeOptions {
  Recipe recipe;
  int64_t batch = 8;            // calibration windows per forward
  uint64_t seed = 0;            // random transforms
  at::Device device = at::kCPU;
};

struct QuantizeReport {
  nlohmann::json layers = nlohmann::json::array();  // {name, loss, seconds}
  double seconds = 0;
};

// The seven linears' input statistics of block `layer` over the hidden states h (one forward of the
// unquantized block per batch). q/k/v and gate/up receive the same tensor: it is accumulated once,
// under the first name, and the others point at it through `alias`.
struct BlockStats {
  CalibStats stats;
  std::map<std::string, std::string> alias;  // linear -> the linear whose identical input was recorded
  const LayerStats& of(const std::string& linear) const;
};
BlockStats collect_block_stats(Transformer& tf, int64_t layer, const std::vector<at::Tensor>& h);

// tokens: calibration windows int64 [n, L] (undefined for data-free recipes: RTN with identity,
// hadamard or random).
QuantizedModel quantize_model(const Model& m, const at::Tensor& tokens, const QuantizeOptions& opt,
                              QuantizeReport* report = nullptr);

}  // namespace wush

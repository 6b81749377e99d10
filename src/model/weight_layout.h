// The tensors a Hugging Face causal LM of a given configuration holds, with their shapes
// (nn.Linear weights are [out_features, in_features]). One list serves loading checks, synthetic
// models and parameter counts.
#pragma once
#include <cstdint>
#include <string>
#include <vector>

#include "model/config.h"

namespace wush {

struct WeightSpec {
  std::string name;
  std::vector<int64_t> shape;
  bool is_norm = false;  // an RMSNorm gain (initialised to 1), not a matrix or bias
  bool is_bias = false;
};

// In file order: model.embed_tokens.weight, each layer (norms, attention, MLP), model.norm.weight,
// lm_head.weight (absent when the embeddings are tied).
std::vector<WeightSpec> expected_weights(const ModelConfig& c);

// Sum of the element counts of expected_weights(c).
int64_t parameter_count(const ModelConfig& c);

}  // namespace wush

// Synthetic Hugging Face models: seeded random weights in the exact shapes of real models, for
// benchmarks and tests without downloading weights. Shapes of the presets come from
// ../shared/data/configs (tests check the table against those files).
#pragma once
#include <cstdint>
#include <string>
#include <vector>

#include "model/config.h"

namespace wush {

struct SynthParams {
  std::string preset = "tiny";  // synth_presets()
  std::string out;              // output directory
  int64_t layers = 2;           // transformer blocks (the real model's count is in the preset)
  std::string dtype = "bf16";   // bf16 | fp32
  int64_t outliers = 0;         // K outlier channels: RMSNorm gains of kOutlierGain there
  uint64_t seed = 0;
  bool force = false;
  int64_t max_shard_bytes = 0;  // 0: kDefaultMaxShardBytes
};

// Gain of an outlier channel in the hidden-size RMSNorms: real LLMs show activations of 20-100x
// the RMS in a few channels (gutenberg-llama-16M: 66x at down_proj inputs, data/README.md).
constexpr double kOutlierGain = 50.0;

std::vector<std::string> synth_presets();
// The configuration of a preset with `layers` blocks; wush::Error naming the valid presets.
ModelConfig synth_config(const std::string& preset, int64_t layers);
// The K outlier channels (sorted, distinct, in [0, hidden)) that `seed` selects.
std::vector<int64_t> synth_outlier_channels(int64_t hidden, int64_t k, uint64_t seed);

// Writes the directory atomically, streaming one tensor at a time. Weights (REFERENCE-free, a
// trained model's scale): matrices and embeddings N(0, 1/fan_in) (std 1/sqrt(fan_in)), biases
// N(0, 0.02^2), RMSNorm gains 1 + N(0, 0.02^2) with the outlier channels at kOutlierGain.
// Each tensor's values depend only on (seed, tensor name), not on --layers.
// Llama presets get the Llama-3 tokenizer.json when the data directory has it.
void synth_model(const SynthParams& p);

}  // namespace wush

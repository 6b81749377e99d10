// Hugging Face model directories: config.json + safetensors (single or sharded) + tokenizer.
#pragma once
#include <cstdint>
#include <string>
#include <vector>

#include "model/model.h"

namespace wush {

// Loads config.json and every weight (memory-mapped, dtype as stored), checks that each tensor the
// configuration implies exists with its shape (weight_layout.h), ties the embeddings when the
// file stores only lm_head.weight, and sets tokenizer_path (tokenizer.json, else tokenizer.model,
// else a llama2.c tok*.bin).
Model load_hf_model(const std::string& dir);
// Writes config.json, model.safetensors (or shards + index) and copies tokenizer files, atomically.
void save_hf_model(const Model& m, const std::string& dir, bool force);
// The same with the shard size limit given (default kDefaultMaxShardBytes, safetensors.h).
void save_hf_model(const Model& m, const std::string& dir, bool force, int64_t max_shard_bytes);

// Files copied beside the weights when the source directory has them.
const std::vector<std::string>& hf_side_files();

}  // namespace wush

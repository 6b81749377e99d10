// Hugging Face model directories: config.json + safetensors (single or sharded) + tokenizer.
#pragma once
#include <string>

#include "model/model.h"

namespace wush {

Model load_hf_model(const std::string& dir);
// Writes config.json, model.safetensors (or shards + index) and copies tokenizer files, atomically.
void save_hf_model(const Model& m, const std::string& dir, bool force);

}  // namespace wush

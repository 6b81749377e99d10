// Quantized checkpoints in the WUSH reference layout (REFERENCE.md §8, docs/FORMAT.md): save a
// QuantizedModel as a Hugging Face directory with quantization_config.quant_method = "wush", and
// load one back into the exact same simulated W4A4 model.
#pragma once
#include <string>

#include "core/atomic_file.h"
#include "model/safetensors.h"
#include "pipeline/quantize_model.h"

namespace wush {

struct CheckpointOptions {
  bool force = false;                     // replace an existing directory
  int64_t max_shard_bytes = int64_t(2) << 30;
  bool always_index = false;              // write shards + index even when one file would do
};

void save_quantized(const QuantizedModel& qm, const std::string& dir, const CheckpointOptions& opt = {});
bool is_quantized_checkpoint(const std::string& dir);  // config.json has quant_method "wush"
QuantizedModel load_quantized(const std::string& dir);

// Exact group scales [R, C/G] -> the stored scale tensor of §8: F8_E8M0 / F8_E4M3 raw bytes, or BF16.
SafeTensor encode_scale_tensor(const at::Tensor& scales, Format f);
// generation_config.json and the tokenizer files beside base.path (or base.tokenizer_path) -> out.
void copy_side_files(const Model& base, AtomicDir& out);

}  // namespace wush

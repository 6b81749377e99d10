// Exports of a wush checkpoint for engines without per-block transforms (REFERENCE.md §8, last
// item; docs/FORMAT.md "Exports"): vLLM's compressed-tensors (nvfp4-pack-quantized,
// mxfp4-pack-quantized, optionally one shared Hadamard as transform_config) and llama.cpp's GGUF
// (MXFP4 blocks, type 39). What an engine cannot represent is refused with the reason
// (export_refusal), never approximated.
#pragma once
#include <string>
#include <vector>

#include "pipeline/quantize_model.h"

namespace wush {

enum class ExportTarget { CompressedTensors, Gguf };
ExportTarget parse_export_target(const std::string& s);  // "compressed-tensors" | "gguf"

// "" when qm can be exported to the target exactly; otherwise one line naming what the engine
// cannot represent (format, global scale, per-block or unshared transform, padding, ...).
std::string export_refusal(const QuantizedModel& qm, ExportTarget t);

struct ExportOptions {
  bool force = false;  // replace an existing destination
};

// Both check export_refusal first (wush::Error with its reason) and write atomically. Returns
// notes for the user (e.g. "llama.cpp runs the activations in high precision").
// DST: a Hugging Face directory.
std::vector<std::string> export_compressed_tensors(const QuantizedModel& qm, const std::string& dst,
                                                   const ExportOptions& o = {});
// DST: one .gguf file.
std::vector<std::string> export_gguf(const QuantizedModel& qm, const std::string& dst, const ExportOptions& o = {});

// The dequantized transformed weights W~ [R, Cp] fp32 (as wush computes with them) and the block
// transforms T [nb, G, G] fp32 of every quantized linear, as "<p>.weight" / "<p>.transform" in one
// safetensors file: what scripts/interop-check compares an independent decode of §8 with.
void dump_dequantized(const QuantizedModel& qm, const std::string& dst, const ExportOptions& o = {});

// llama.cpp's row order of q_proj / k_proj (its converter's permute: the two RoPE halves of each
// head interleaved): new row h*D + 2i + s = old row h*D + s*D/2 + i, D = head_dim. An index
// tensor [n_heads * D] of old rows.
at::Tensor gguf_rope_row_order(int64_t n_heads, int64_t head_dim);

}  // namespace wush

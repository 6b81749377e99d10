// A small self-describing tensor container in the safetensors layout: an 8-byte little-endian
// header length, a JSON header {"name": {"dtype", "shape", "data_offsets"}, "__metadata__": {..}},
// then the raw little-endian tensor bytes. Used for calibration statistics (calib_stats.h) and
// fitted transforms (transforms/transform.h); any safetensors reader can open these files.
// Only the dtypes wush stores here are supported: F64, F32, BF16, I64. The header is written and
// validated by model/safetensors.h (safetensors_header, parse_safetensors_header).
#pragma once
#include <ATen/ATen.h>

#include <map>
#include <string>

namespace wush::tensor_file {

struct Contents {
  std::map<std::string, at::Tensor> tensors;      // CPU, contiguous
  std::map<std::string, std::string> metadata;    // the "__metadata__" object (string values)
};

// Serializes to bytes (tensors are copied to the CPU).
std::string encode(const Contents& c);
// Parses and validates bytes (header bounds, offsets inside the data, sizes matching shapes and
// dtypes, tensors tiling the data area); `what` names the source in error messages.
Contents decode(const std::string& bytes, const std::string& what);

// encode + write_file_atomic; read_file + decode.
void save(const std::string& path, const Contents& c);
Contents load(const std::string& path);

}  // namespace wush::tensor_file

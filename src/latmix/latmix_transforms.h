// The set of LATMiX transforms of one model (REFERENCE.md §5) and its file format.
//   t1: one affine map of the residual stream (n = hidden_size), shared by every layer;
//   t2[l]: one affine map of head_dim per layer, acting on every KV head's slice of v_proj's
//          output (so every query head sharing a KV head sees the same map, GQA-consistent) and,
//          inverted, on every head's column block of o_proj.
// A fixed block Hadamard (normalized Sylvester, `group`) runs online before down_proj; it has no
// parameters and is recorded here only by its block size.
// File: safetensors (quant/tensor_file.h), tensors "t1.<field>", "t2.<layer>.<field>"
// (AffineTransform::save_into), metadata {"latmix.param", "latmix.format", "latmix.group",
// "latmix.layers", "latmix.info" (JSON of the training run)}.
// Inside a quantized checkpoint (docs/FORMAT.md) the same tensors carry the prefix "latmix." and
// the metadata is the JSON header() in quantization_config.latmix.
#pragma once
#include <ATen/ATen.h>

#include <map>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "formats/format.h"
#include "latmix/affine.h"

namespace wush::latmix {

struct LatmixTransforms {
  Param kind = Param::LU;
  AffineTransform t1;
  std::vector<AffineTransform> t2;
  Format format = Format::MXFP4;  // the activation format it was trained for
  int64_t group = 32;             // MX group = init block = down_proj Hadamard block
  nlohmann::json info = nlohmann::json::object();

  std::vector<at::Tensor> parameters() const;
  void set_requires_grad(bool on);
  LatmixTransforms to(at::Device d, at::ScalarType s) const;
  LatmixTransforms detached() const;
  // sum over t1 and every t2 of (sum log|s|)^2 (the volume regularizer without lambda).
  at::Tensor volume_penalty() const;

  // Serialization: fp32 tensors "<prefix>t1.<field>", "<prefix>t2.<layer>.<field>", and the header
  // {"param", "format", "group", "layers", "info"}; `what` names the source in errors.
  void save_into(std::map<std::string, at::Tensor>& out, const std::string& prefix) const;
  nlohmann::json header() const;
  static LatmixTransforms load_from(const nlohmann::json& header, const std::map<std::string, at::Tensor>& in,
                                    const std::string& prefix, const std::string& what);
};

void save_latmix(const std::string& path, const LatmixTransforms& t);
LatmixTransforms load_latmix(const std::string& path);

}  // namespace wush::latmix

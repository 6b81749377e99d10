// A loaded model: its configuration and its weights under Hugging Face names
// ("model.embed_tokens.weight", "model.layers.3.self_attn.q_proj.weight", "model.norm.weight",
// "lm_head.weight" (absent when tied), "model.layers.3.mlp.down_proj.weight", ...).
// MODEL on the command line is a llama2.c .bin or a Hugging Face directory.
#pragma once
#include <ATen/ATen.h>

#include <map>
#include <string>

#include "model/config.h"

namespace wush {

struct Model {
  ModelConfig config;
  std::map<std::string, at::Tensor> weights;  // CPU tensors as stored (fp32/bf16/fp16)
  std::string path;                           // where it was loaded from
  std::string tokenizer_path;                 // best tokenizer file found beside it ("" if none)

  const at::Tensor& weight(const std::string& name) const;  // wush::Error if missing
  bool has(const std::string& name) const { return weights.count(name) > 0; }
};

// The seven quantized linears of a transformer block, in REFERENCE §4 order.
inline const char* const kLinearNames[7] = {"self_attn.q_proj", "self_attn.k_proj", "self_attn.v_proj",
                                            "self_attn.o_proj", "mlp.gate_proj", "mlp.up_proj",
                                            "mlp.down_proj"};
inline const char* const kLinearShort[7] = {"q", "k", "v", "o", "gate", "up", "down"};

// "model.layers.{layer}.{kLinearNames[i]}"
std::string linear_prefix(int64_t layer, int i);

Model load_model(const std::string& path);

}  // namespace wush

// Model configuration: what the forward pass needs, read from a Hugging Face config.json
// (LlamaForCausalLM, MistralForCausalLM, Qwen2ForCausalLM, Qwen3ForCausalLM) or a llama2.c header.
#pragma once
#include <nlohmann/json.hpp>

#include <cstdint>
#include <string>

namespace wush {

struct RopeScaling {
  std::string type;                  // "" (none), "llama3", "linear"
  double factor = 1.0;
  double low_freq_factor = 1.0;      // llama3
  double high_freq_factor = 4.0;     // llama3
  int64_t original_max_position = 8192;
};

struct ModelConfig {
  std::string architecture = "LlamaForCausalLM";
  std::string model_type = "llama";
  int64_t hidden_size = 0;
  int64_t intermediate_size = 0;
  int64_t num_layers = 0;
  int64_t num_heads = 0;
  int64_t num_kv_heads = 0;
  int64_t head_dim = 0;              // hidden_size / num_heads unless given
  int64_t vocab_size = 0;
  int64_t max_position = 2048;       // max_position_embeddings (llama2.c: seq_len)
  double rope_theta = 10000.0;
  RopeScaling rope_scaling;
  double rms_norm_eps = 1e-5;
  bool tie_word_embeddings = false;
  bool attention_bias = false;       // Qwen2: q/k/v biases
  bool qk_norm = false;              // Qwen3: q_norm, k_norm (RMSNorm over head_dim)
  int64_t bos_token_id = 1;
  int64_t eos_token_id = 2;
  std::string dtype = "float32";     // weights' dtype on disk: float32, bfloat16, float16
  nlohmann::json raw;                // the original config.json (kept verbatim for export)
};

// Parse config.json text; `source` names the file in errors. Reads both key generations
// (rope_theta/torch_dtype and rope_parameters/dtype). Unsupported architecture -> wush::Error.
ModelConfig parse_config(const nlohmann::json& j, const std::string& source);
nlohmann::json config_to_json(const ModelConfig& c);  // a config.json transformers can read

}  // namespace wush

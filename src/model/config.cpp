// config.json of Hugging Face causal LMs -> ModelConfig, and back. Two key generations exist:
// transformers 4 (`rope_theta`, `rope_scaling`, `torch_dtype`) and transformers 5
// (`rope_parameters` {rope_theta, rope_type, ...}, `dtype`); both are read, and config_to_json
// writes the generation the source used (transformers 4 keys for a config built from scratch).
#include "model/config.h"

#include <limits>
#include <type_traits>

#include "core/error.h"

namespace wush {

namespace {

struct ArchInfo {
  const char* architecture;
  const char* model_type;
  bool qkv_bias;  // q/k/v projections always carry biases (Qwen2)
  bool qk_norm;   // RMSNorm of q and k over head_dim before RoPE (Qwen3)
};
// One row per supported architecture.
const ArchInfo kArchs[] = {
    {"LlamaForCausalLM", "llama", false, false},
    {"MistralForCausalLM", "mistral", false, false},
    {"Qwen2ForCausalLM", "qwen2", true, false},
    {"Qwen3ForCausalLM", "qwen3", false, true},
};

const ArchInfo& find_arch(const std::string& name, const std::string& source) {
  std::string valid;
  for (const ArchInfo& a : kArchs) {
    if (name == a.architecture) return a;
    valid += (valid.empty() ? "" : ", ") + std::string(a.architecture);
  }
  WUSH_FAIL("%s: unsupported architecture '%s' (supported: %s)", source.c_str(), name.c_str(), valid.c_str());
}

// Reads j[key] if present and not null.
template <typename T>
bool get_opt(const nlohmann::json& j, const char* key, T* out, const std::string& source) {
  if (!j.contains(key) || j[key].is_null()) return false;
  if constexpr (std::is_integral_v<T> && !std::is_same_v<T, bool>) {
    // Integers only: nlohmann's get<int> of a float is a plain cast, undefined beyond the type's
    // range (fuzz_config found "num_hidden_layers": 5e30); 8.0 or 1e9 as JSON floats are refused too.
    const auto& v = j[key];
    const bool fits = v.is_number_integer() &&
                      (!v.is_number_unsigned() || v.get<uint64_t>() <= uint64_t(std::numeric_limits<T>::max()));
    WUSH_CHECK(fits || !v.is_number(), "%s: \"%s\" must be an integer in range (got %s)", source.c_str(), key,
               v.dump().c_str());
  }
  try {
    *out = j[key].get<T>();
  } catch (const nlohmann::json::exception&) {
    WUSH_FAIL("%s: \"%s\" has the wrong type (%s)", source.c_str(), key, j[key].dump().c_str());
  }
  return true;
}

template <typename T>
T get_req(const nlohmann::json& j, const char* key, const std::string& source) {
  T v{};
  WUSH_CHECK(get_opt(j, key, &v, source), "%s: missing \"%s\"", source.c_str(), key);
  return v;
}

// bos/eos: an integer, a list of integers (the first is taken) or null (-1).
int64_t token_id(const nlohmann::json& j, const char* key, int64_t dflt, const std::string& source) {
  if (!j.contains(key)) return dflt;
  const auto& v = j[key];
  if (v.is_null()) return -1;
  if (v.is_number_integer()) return v.get<int64_t>();
  WUSH_CHECK(v.is_array() && !v.empty() && v[0].is_number_integer(),
             "%s: \"%s\" must be an integer or a list of integers (got %s)", source.c_str(), key, v.dump().c_str());
  return v[0].get<int64_t>();
}

// The rope scaling object: rope_scaling (transformers 4) or rope_parameters (transformers 5).
RopeScaling parse_rope_scaling(const nlohmann::json& r, const std::string& source) {
  RopeScaling s;
  std::string type;
  if (!get_opt(r, "rope_type", &type, source)) get_opt(r, "type", &type, source);
  if (type.empty() || type == "default") return s;
  WUSH_CHECK(type == "llama3" || type == "linear",
             "%s: unsupported rope scaling type '%s' (supported: default, linear, llama3)", source.c_str(),
             type.c_str());
  s.type = type;
  s.factor = get_req<double>(r, "factor", source);
  WUSH_CHECK(s.factor > 0, "%s: rope scaling factor %g must be positive", source.c_str(), s.factor);
  if (type == "llama3") {
    s.low_freq_factor = get_req<double>(r, "low_freq_factor", source);
    s.high_freq_factor = get_req<double>(r, "high_freq_factor", source);
    s.original_max_position = get_req<int64_t>(r, "original_max_position_embeddings", source);
    WUSH_CHECK(s.high_freq_factor > s.low_freq_factor, "%s: llama3 rope needs high_freq_factor > low_freq_factor",
               source.c_str());
  }
  return s;
}

nlohmann::json rope_scaling_json(const RopeScaling& s) {
  if (s.type.empty()) return nullptr;
  nlohmann::json r = {{"rope_type", s.type}, {"factor", s.factor}};
  if (s.type == "llama3") {
    r["low_freq_factor"] = s.low_freq_factor;
    r["high_freq_factor"] = s.high_freq_factor;
    r["original_max_position_embeddings"] = s.original_max_position;
  }
  return r;
}

}  // namespace

ModelConfig parse_config(const nlohmann::json& j, const std::string& source) {
  const char* src = source.c_str();
  WUSH_CHECK(j.is_object(), "%s: config is not a JSON object", src);
  ModelConfig c;
  c.raw = j;
  WUSH_CHECK(j.contains("architectures") && j["architectures"].is_array() && j["architectures"].size() == 1 &&
                 j["architectures"][0].is_string(),
             "%s: \"architectures\" must be a list of one name", src);
  const ArchInfo& arch = find_arch(j["architectures"][0].get<std::string>(), source);
  c.architecture = arch.architecture;
  c.model_type = arch.model_type;
  get_opt(j, "model_type", &c.model_type, source);

  c.hidden_size = get_req<int64_t>(j, "hidden_size", source);
  c.intermediate_size = get_req<int64_t>(j, "intermediate_size", source);
  c.num_layers = get_req<int64_t>(j, "num_hidden_layers", source);
  c.num_heads = get_req<int64_t>(j, "num_attention_heads", source);
  c.vocab_size = get_req<int64_t>(j, "vocab_size", source);
  c.num_kv_heads = c.num_heads;
  get_opt(j, "num_key_value_heads", &c.num_kv_heads, source);
  WUSH_CHECK(c.hidden_size > 0 && c.intermediate_size > 0 && c.num_layers > 0 && c.num_heads > 0 &&
                 c.num_kv_heads > 0 && c.vocab_size > 0,
             "%s: sizes must be positive", src);
  WUSH_CHECK(c.num_heads % c.num_kv_heads == 0, "%s: num_attention_heads %lld is not a multiple of num_key_value_heads %lld",
             src, (long long)c.num_heads, (long long)c.num_kv_heads);
  if (!get_opt(j, "head_dim", &c.head_dim, source)) {
    WUSH_CHECK(c.hidden_size % c.num_heads == 0, "%s: hidden_size %lld is not a multiple of num_attention_heads %lld",
               src, (long long)c.hidden_size, (long long)c.num_heads);
    c.head_dim = c.hidden_size / c.num_heads;
  }
  WUSH_CHECK(c.head_dim > 0 && c.head_dim % 2 == 0, "%s: head_dim %lld must be positive and even (RoPE)", src,
             (long long)c.head_dim);
  get_opt(j, "max_position_embeddings", &c.max_position, source);
  get_opt(j, "rms_norm_eps", &c.rms_norm_eps, source);
  get_opt(j, "tie_word_embeddings", &c.tie_word_embeddings, source);

  // RoPE: transformers 5 puts theta and scaling into rope_parameters.
  if (j.contains("rope_parameters") && j["rope_parameters"].is_object()) {
    const auto& rp = j["rope_parameters"];
    get_opt(rp, "rope_theta", &c.rope_theta, source);
    c.rope_scaling = parse_rope_scaling(rp, source);
  } else {
    get_opt(j, "rope_theta", &c.rope_theta, source);
    if (j.contains("rope_scaling") && !j["rope_scaling"].is_null()) {
      WUSH_CHECK(j["rope_scaling"].is_object(), "%s: \"rope_scaling\" is not an object", src);
      c.rope_scaling = parse_rope_scaling(j["rope_scaling"], source);
    }
  }
  WUSH_CHECK(c.rope_theta > 0, "%s: rope_theta %g must be positive", src, c.rope_theta);

  // What the forward pass implements: SiLU MLP without biases, full causal attention, biases only
  // on Qwen2's q/k/v.
  std::string act = "silu";
  get_opt(j, "hidden_act", &act, source);
  WUSH_CHECK(act == "silu", "%s: unsupported hidden_act '%s' (supported: silu)", src, act.c_str());
  bool flag = false;
  WUSH_CHECK(!get_opt(j, "mlp_bias", &flag, source) || !flag, "%s: mlp_bias=true is not supported", src);
  flag = false;
  get_opt(j, "attention_bias", &flag, source);
  WUSH_CHECK(!flag || arch.qkv_bias, "%s: attention_bias=true is not supported for %s (o_proj bias)", src,
             arch.architecture);
  flag = false;
  WUSH_CHECK(!get_opt(j, "use_sliding_window", &flag, source) || !flag,
             "%s: use_sliding_window=true is not supported", src);
  c.attention_bias = arch.qkv_bias;
  c.qk_norm = arch.qk_norm;

  c.bos_token_id = token_id(j, "bos_token_id", c.bos_token_id, source);
  c.eos_token_id = token_id(j, "eos_token_id", c.eos_token_id, source);

  std::string dtype = "float32";
  if (!get_opt(j, "dtype", &dtype, source)) get_opt(j, "torch_dtype", &dtype, source);
  WUSH_CHECK(dtype == "float32" || dtype == "bfloat16" || dtype == "float16",
             "%s: unsupported dtype '%s' (supported: float32, bfloat16, float16)", src, dtype.c_str());
  c.dtype = dtype;
  return c;
}

nlohmann::json config_to_json(const ModelConfig& c) {
  nlohmann::json j = c.raw.is_object() ? c.raw : nlohmann::json::object();
  // transformers 5 key generation if the source used it.
  const bool v5 = j.contains("rope_parameters") || (j.contains("dtype") && !j.contains("torch_dtype"));
  j["architectures"] = {c.architecture};
  j["model_type"] = c.model_type;
  j["hidden_size"] = c.hidden_size;
  j["intermediate_size"] = c.intermediate_size;
  j["num_hidden_layers"] = c.num_layers;
  j["num_attention_heads"] = c.num_heads;
  j["num_key_value_heads"] = c.num_kv_heads;
  j["head_dim"] = c.head_dim;
  j["vocab_size"] = c.vocab_size;
  j["max_position_embeddings"] = c.max_position;
  j["rms_norm_eps"] = c.rms_norm_eps;
  j["tie_word_embeddings"] = c.tie_word_embeddings;
  j["hidden_act"] = "silu";
  if (c.model_type == "llama") j["mlp_bias"] = false;
  // Qwen2 has biases without a key; every other architecture says attention_bias=false.
  if (c.architecture != "Qwen2ForCausalLM") j["attention_bias"] = false;
  // A list of eos ids is kept when its first entry is still the configured one.
  auto set_token = [&](const char* key, int64_t id) {
    if (j.contains(key) && j[key].is_array() && !j[key].empty() && j[key][0] == id) return;
    j[key] = id < 0 ? nlohmann::json(nullptr) : nlohmann::json(id);
  };
  set_token("bos_token_id", c.bos_token_id);
  set_token("eos_token_id", c.eos_token_id);
  if (v5) {
    nlohmann::json rp = c.rope_scaling.type.empty() ? nlohmann::json{{"rope_type", "default"}}
                                                    : rope_scaling_json(c.rope_scaling);
    rp["rope_theta"] = c.rope_theta;
    j["rope_parameters"] = rp;
    j.erase("rope_theta");
    j.erase("rope_scaling");
    j["dtype"] = c.dtype;
    j.erase("torch_dtype");
  } else {
    j["rope_theta"] = c.rope_theta;
    j["rope_scaling"] = rope_scaling_json(c.rope_scaling);
    j["torch_dtype"] = c.dtype;
  }
  return j;
}

}  // namespace wush

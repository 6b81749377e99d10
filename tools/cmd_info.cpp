// wush info: what a model is (architecture, shapes, parameters, dtype, tokenizer), optionally
// tensor by tensor. MODEL is a Hugging Face directory or a llama2.c .bin (load_model dispatches).
#include <set>

#include "cli.h"
#include "core/atomic_file.h"
#include "pipeline/checkpoint.h"
#include "core/runtime.h"
#include "model/model.h"
#include "model/weight_layout.h"

namespace {

struct InfoParams {
  std::string model, json;
  bool tensors = false;
};

std::string shape_str(at::IntArrayRef s) {
  std::string r = "[";
  for (size_t i = 0; i < s.size(); ++i) r += (i ? ", " : "") + std::to_string(s[i]);
  return r + "]";
}

// 15.7M, 8.03B
std::string human_count(int64_t n) {
  char buf[32];
  if (n >= 1000000000) std::snprintf(buf, sizeof buf, "%.2fB", double(n) / 1e9);
  else std::snprintf(buf, sizeof buf, "%.1fM", double(n) / 1e6);
  return buf;
}

std::string group_digits(int64_t n) {
  std::string s = std::to_string(n), r;
  for (size_t i = 0; i < s.size(); ++i) {
    if (i > 0 && (s.size() - i) % 3 == 0) r += ',';
    r += s[i];
  }
  return r;
}

nlohmann::json model_info(const wush::Model& m, bool with_tensors) {
  const wush::ModelConfig& c = m.config;
  // Tensors sharing storage (tied lm_head stored beside the embedding) count once.
  std::set<const void*> seen;
  int64_t params = 0, bytes = 0;
  nlohmann::json tensors = nlohmann::json::array();
  for (const auto& [name, t] : m.weights) {
    if (seen.insert(t.data_ptr()).second) {
      params += t.numel();
      bytes += t.numel() * int64_t(t.element_size());
    }
    if (with_tensors)
      tensors.push_back({{"name", name}, {"dtype", std::string(c10::toString(t.scalar_type()))}, {"shape", t.sizes().vec()}});
  }
  nlohmann::json j = {{"path", m.path},
                      {"architecture", c.architecture},
                      {"model_type", c.model_type},
                      {"layers", c.num_layers},
                      {"hidden_size", c.hidden_size},
                      {"intermediate_size", c.intermediate_size},
                      {"heads", c.num_heads},
                      {"kv_heads", c.num_kv_heads},
                      {"head_dim", c.head_dim},
                      {"vocab_size", c.vocab_size},
                      {"max_position", c.max_position},
                      {"rope_theta", c.rope_theta},
                      {"rope_scaling", c.rope_scaling.type.empty() ? "none" : c.rope_scaling.type},
                      {"rms_norm_eps", c.rms_norm_eps},
                      {"tie_word_embeddings", c.tie_word_embeddings},
                      {"attention_bias", c.attention_bias},
                      {"qk_norm", c.qk_norm},
                      {"bos_token_id", c.bos_token_id},
                      {"eos_token_id", c.eos_token_id},
                      {"dtype", c.dtype},
                      {"parameters", params},
                      {"expected_parameters", wush::parameter_count(c)},
                      {"bytes", bytes},
                      {"num_tensors", m.weights.size()},
                      {"tokenizer", m.tokenizer_path}};
  if (with_tensors) j["tensors"] = tensors;
  return j;
}

}  // namespace

static wush::cli::Register reg(
    "info", "describe a model: architecture, shapes, parameters, dtype, tokenizer", [](CLI::App& app) -> wush::cli::Action {
      auto p = std::make_shared<InfoParams>();
      app.add_option("model", p->model, "Hugging Face directory or llama2.c .bin")->required();
      app.add_option("--json", p->json, "also write the description as JSON here ('-' = stdout)");
      app.add_flag("--tensors", p->tensors, "list every tensor (name, dtype, shape)");
      return [p] {
        const std::string path = wush::resolve_data_path(p->model);
        nlohmann::json quant;
        wush::Model m;
        if (wush::is_quantized_checkpoint(path)) {  // a wush checkpoint: its base tensors + the recipe
          wush::QuantizedModel qm = wush::load_quantized(path);
          m = qm.base;
          quant = nlohmann::json::parse(wush::read_file(path + "/config.json"))["quantization_config"];
          quant["quantized_linears"] = qm.linears->size();
        } else {
          m = wush::load_model(path);
        }
        nlohmann::json j = model_info(m, p->tensors);
        if (!quant.is_null()) j["quantization"] = quant;
        if (p->json == "-") {
          wush::cli::write_json("-", j);
          return 0;
        }
        const wush::ModelConfig& c = m.config;
        std::printf("model:        %s\n", m.path.c_str());
        std::printf("architecture: %s (%s)\n", c.architecture.c_str(), c.model_type.c_str());
        std::printf("shape:        %lld layers, hidden %lld, intermediate %lld, heads %lld, kv heads %lld, head_dim %lld, vocab %lld\n",
                    (long long)c.num_layers, (long long)c.hidden_size, (long long)c.intermediate_size,
                    (long long)c.num_heads, (long long)c.num_kv_heads, (long long)c.head_dim, (long long)c.vocab_size);
        std::printf("attention:    rope theta %g, scaling %s, rms_norm_eps %g, q/k/v bias %s, qk norm %s\n", c.rope_theta,
                    j["rope_scaling"].get<std::string>().c_str(), c.rms_norm_eps, c.attention_bias ? "yes" : "no",
                    c.qk_norm ? "yes" : "no");
        std::printf("embeddings:   %s\n", c.tie_word_embeddings ? "tied" : "separate lm_head");
        std::printf("parameters:   %s (%s), %lld tensors, %s bytes, %s\n", group_digits(j["parameters"]).c_str(),
                    human_count(j["parameters"]).c_str(), (long long)m.weights.size(),
                    group_digits(j["bytes"]).c_str(), c.dtype.c_str());
        std::printf("tokens:       bos %lld, eos %lld, tokenizer %s\n", (long long)c.bos_token_id,
                    (long long)c.eos_token_id, m.tokenizer_path.empty() ? "(none)" : m.tokenizer_path.c_str());
        if (!quant.is_null())
          std::printf("quantized:    %s (%s), %zu linears W%sA%s, group %d; calibration %s\n",
                      quant.value("recipe", "?").c_str(), wush::parse_recipe(quant.value("recipe", "")).display_name().c_str(),
                      size_t(quant["quantized_linears"]), "4", quant.value("acts", "") == "fp" ? "16" : "4",
                      quant.value("group_size", 0), quant["calibration"].is_null() ? "none" : quant["calibration"].dump().c_str());
        if (p->tensors)
          for (const auto& [name, t] : m.weights)
            std::printf("  %-52s %-9s %s\n", name.c_str(), c10::toString(t.scalar_type()), shape_str(t.sizes()).c_str());
        if (!p->json.empty()) wush::cli::write_json(p->json, j);
        return 0;
      };
    });

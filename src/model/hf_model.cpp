// Hugging Face model directories (hf_model.h): loading with shape checks, atomic saving.
#include "model/hf_model.h"

#include <algorithm>
#include <nlohmann/json.hpp>

#include "core/atomic_file.h"
#include "core/error.h"
#include "core/paths.h"
#include "model/safetensors.h"
#include "model/weight_layout.h"


namespace wush {

const std::vector<std::string>& hf_side_files() {
  static const std::vector<std::string> f = {"tokenizer.json",     "tokenizer.model",         "tokenizer_config.json",
                                             "special_tokens_map.json", "generation_config.json", "added_tokens.json",
                                             "vocab.json",         "merges.txt"};
  return f;
}

static std::string shape_str(at::IntArrayRef s) {
  std::string r = "[";
  for (size_t i = 0; i < s.size(); ++i) r += (i ? ", " : "") + std::to_string(s[i]);
  return r + "]";
}

static std::string dtype_name(at::ScalarType t) {
  switch (t) {
    case at::kFloat: return "float32";
    case at::kBFloat16: return "bfloat16";
    case at::kHalf: return "float16";
    default: return c10::toString(t);
  }
}

// tokenizer.json, else tokenizer.model, else a llama2.c tokenizer (tok*.bin, as `wush convert` copies it).
static std::string find_tokenizer(const std::string& dir) {
  for (const char* name : {"tokenizer.json", "tokenizer.model"}) {
    std::string p = path_join(dir, name);
    if (path_exists(p)) return p;
  }
  std::vector<std::string> bins;
  for (const std::string& n : list_dir(dir)) {
    std::string p = path_join(dir, n);
    if (is_regular_file(p) && n.rfind("tok", 0) == 0 && path_extension(n) == ".bin") bins.push_back(p);
  }
  std::sort(bins.begin(), bins.end());
  return bins.empty() ? "" : bins.front();
}

Model load_hf_model(const std::string& dir) {
  const char* d = dir.c_str();
  WUSH_CHECK(is_directory(dir), "%s: not a directory (expected a Hugging Face model directory)", d);
  const std::string config_path = path_join(dir, "config.json");
  WUSH_CHECK(path_exists(config_path), "%s: no config.json", d);
  nlohmann::json j;
  try {
    j = nlohmann::json::parse(read_file(config_path));
  } catch (const nlohmann::json::exception& e) {
    WUSH_FAIL("%s: not valid JSON (%s)", config_path.c_str(), e.what());
  }
  Model m;
  m.path = dir;
  m.config = parse_config(j, config_path);

  std::map<std::string, std::string> metadata;
  std::map<std::string, SafeTensor> stored = read_safetensors(dir, &metadata);
  for (auto& [name, t] : stored) m.weights[name] = t.data;
  // safetensors' torch writer drops a tensor that shares storage with another and records
  // "dropped name": "kept name" in __metadata__ (tinystories656K keeps only lm_head.weight).
  for (const auto& [alias, target] : metadata)
    if (!m.has(alias) && m.has(target)) m.weights[alias] = m.weights[target];
  const std::string embed = "model.embed_tokens.weight", head = "lm_head.weight";
  if (m.config.tie_word_embeddings && !m.has(embed) && m.has(head)) m.weights[embed] = m.weights[head];

  std::vector<WeightSpec> expected = expected_weights(m.config);
  if (m.config.tie_word_embeddings && m.has(head)) expected.push_back({head, {m.config.vocab_size, m.config.hidden_size}});
  for (const WeightSpec& s : expected) {
    auto it = m.weights.find(s.name);
    WUSH_CHECK(it != m.weights.end(), "%s: missing tensor '%s'", d, s.name.c_str());
    const at::Tensor& t = it->second;
    WUSH_CHECK(t.sizes().vec() == s.shape, "%s: tensor '%s' has shape %s, config.json implies %s", d,
               s.name.c_str(), shape_str(t.sizes()).c_str(), shape_str(s.shape).c_str());
    at::ScalarType st = t.scalar_type();
    WUSH_CHECK(st == at::kFloat || st == at::kBFloat16 || st == at::kHalf,
               "%s: tensor '%s' has dtype %s (expected F32, BF16 or F16)", d, s.name.c_str(), c10::toString(st));
  }
  m.config.dtype = dtype_name(m.weights.at(embed).scalar_type());  // what is on disk, not what config says
  m.tokenizer_path = find_tokenizer(dir);
  return m;
}

void save_hf_model(const Model& m, const std::string& dir, bool force) {
  save_hf_model(m, dir, force, kDefaultMaxShardBytes);
}

void save_hf_model(const Model& m, const std::string& dir, bool force, int64_t max_shard_bytes) {
  // Expected tensors first, in layout order, then any extras (sorted). Tied: no lm_head.weight.
  std::vector<std::string> names;
  for (const WeightSpec& s : expected_weights(m.config)) {
    WUSH_CHECK(m.has(s.name), "%s: cannot save: model %s has no tensor '%s'", dir.c_str(), m.path.c_str(),
               s.name.c_str());
    WUSH_CHECK(m.weights.at(s.name).sizes().vec() == s.shape, "%s: cannot save: tensor '%s' has shape %s, expected %s",
               dir.c_str(), s.name.c_str(), shape_str(m.weights.at(s.name).sizes()).c_str(),
               shape_str(s.shape).c_str());
    names.push_back(s.name);
  }
  for (const auto& kv : m.weights)
    if (std::find(names.begin(), names.end(), kv.first) == names.end() &&
        !(m.config.tie_word_embeddings && kv.first == "lm_head.weight"))
      names.push_back(kv.first);
  std::vector<SafeTensorSpec> specs;
  for (const std::string& n : names) {
    SafeTensor t = SafeTensor::of(m.weights.at(n));
    specs.push_back({n, t.dtype, t.shape()});
  }

  ModelConfig c = m.config;
  c.dtype = dtype_name(m.weight("model.embed_tokens.weight").scalar_type());
  AtomicDir out(dir, force);
  write_file_atomic(out.file("config.json"), config_to_json(c).dump(2) + "\n");
  write_safetensors_dir(out.tmp_path(), specs, [&](size_t i) { return SafeTensor::of(m.weights.at(names[i])); },
                        max_shard_bytes);

  // Tokenizer and generation files of the source directory, then the tokenizer file itself if it
  // lives elsewhere (wush convert: tok512.bin), under its own name.
  std::vector<std::string> copied;
  if (!m.path.empty() && is_directory(m.path))
    for (const std::string& name : hf_side_files()) {
      std::string src = path_join(m.path, name);
      if (!path_exists(src)) continue;
      write_file_atomic(out.file(name), read_file(src));
      copied.push_back(name);
    }
  if (!m.tokenizer_path.empty()) {
    std::string name = path_filename(m.tokenizer_path);
    if (std::find(copied.begin(), copied.end(), name) == copied.end())
      write_file_atomic(out.file(name), read_file(m.tokenizer_path));
  }
  out.commit();
}

}  // namespace wush

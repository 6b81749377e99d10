// Synthetic models (synth.h).
#include "model/synth.h"

#include <ATen/CPUGeneratorImpl.h>

#include <algorithm>
#include <cmath>
#include <numeric>
#include <random>

#include "core/atomic_file.h"
#include "core/error.h"
#include "core/progress.h"
#include "core/runtime.h"
#include "model/safetensors.h"
#include "model/weight_layout.h"

namespace wush {

namespace {

struct Preset {
  const char* name;
  const char* architecture;
  int64_t hidden, intermediate, full_layers, heads, kv_heads, head_dim, vocab, max_position;
  double rope_theta, rms_norm_eps;
  bool llama3_rope;  // rope_scaling llama3, factor 8, low 1, high 4, original 8192
  int64_t bos, eos;
  bool tied;
  const char* tokenizer;  // relative to the data directory, "" if none
};

// Shapes as in ../shared/data/configs/*.config.json (checked by SynthTest.PresetsMatchConfigs).
const Preset kPresets[] = {
    {"llama-3.1-8b", "LlamaForCausalLM", 4096, 14336, 32, 32, 8, 128, 128256, 131072, 500000.0, 1e-5, true,
     128000, 128001, false, "tokenizers/llama3/tokenizer.json"},
    {"llama-3.1-70b", "LlamaForCausalLM", 8192, 28672, 80, 64, 8, 128, 128256, 131072, 500000.0, 1e-5, true,
     128000, 128001, false, "tokenizers/llama3/tokenizer.json"},
    {"qwen3-8b", "Qwen3ForCausalLM", 4096, 12288, 36, 32, 8, 128, 151936, 40960, 1000000.0, 1e-6, false, 151643,
     151645, false, ""},
    {"qwen3-14b", "Qwen3ForCausalLM", 5120, 17408, 40, 40, 8, 128, 151936, 40960, 1000000.0, 1e-6, false, 151643,
     151645, false, ""},
    // Small models for tests: GQA, dimensions multiples of 32, one per architecture family.
    {"tiny", "LlamaForCausalLM", 64, 192, 2, 4, 2, 16, 256, 512, 10000.0, 1e-5, false, 1, 2, false, ""},
    {"tiny-qwen2", "Qwen2ForCausalLM", 64, 192, 2, 4, 2, 16, 256, 512, 10000.0, 1e-6, false, 1, 2, true, ""},
    {"tiny-qwen3", "Qwen3ForCausalLM", 64, 192, 2, 4, 2, 32, 256, 512, 10000.0, 1e-6, false, 1, 2, false, ""},
};

const Preset& find_preset(const std::string& name) {
  for (const Preset& p : kPresets)
    if (name == p.name) return p;
  std::string valid;
  for (const Preset& p : kPresets) valid += (valid.empty() ? "" : ", ") + std::string(p.name);
  WUSH_FAIL("--preset: unknown preset '%s' (valid: %s)", name.c_str(), valid.c_str());
}

// FNV-1a of the tensor name, mixed with the seed (splitmix64 finaliser).
uint64_t tensor_seed(uint64_t seed, const std::string& name) {
  uint64_t h = 1469598103934665603ull;
  for (unsigned char ch : name) h = (h ^ ch) * 1099511628211ull;
  uint64_t z = h + seed * 0x9E3779B97F4A7C15ull;
  z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
  z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
  return z ^ (z >> 31);
}

// N(mean, std^2) into a tensor of `dtype`, generated in fp32 row chunks (bounded memory).
at::Tensor random_tensor(const std::vector<int64_t>& shape, double mean, double std, uint64_t seed,
                         at::ScalarType dtype) {
  at::Generator gen = at::detail::createCPUGenerator(seed);
  at::Tensor out = at::empty(shape, at::TensorOptions().dtype(dtype));
  at::Tensor flat = out.view({shape[0], -1});
  const int64_t cols = flat.size(1), chunk_rows = std::max<int64_t>(1, (int64_t(1) << 24) / std::max<int64_t>(cols, 1));
  for (int64_t r = 0; r < flat.size(0); r += chunk_rows) {
    int64_t n = std::min(chunk_rows, flat.size(0) - r);
    at::Tensor c = at::empty({n, cols}, at::kFloat);
    c.normal_(mean, std, gen);
    flat.narrow(0, r, n).copy_(c);
  }
  return out;
}

}  // namespace

std::vector<std::string> synth_presets() {
  std::vector<std::string> r;
  for (const Preset& p : kPresets) r.push_back(p.name);
  return r;
}

ModelConfig synth_config(const std::string& preset, int64_t layers) {
  const Preset& p = find_preset(preset);
  WUSH_CHECK(layers >= 1, "--layers: %lld must be at least 1", (long long)layers);
  nlohmann::json j = {{"architectures", {p.architecture}},
                      {"hidden_size", p.hidden},
                      {"intermediate_size", p.intermediate},
                      {"num_hidden_layers", layers},
                      {"num_attention_heads", p.heads},
                      {"num_key_value_heads", p.kv_heads},
                      {"head_dim", p.head_dim},
                      {"vocab_size", p.vocab},
                      {"max_position_embeddings", p.max_position},
                      {"rope_theta", p.rope_theta},
                      {"rms_norm_eps", p.rms_norm_eps},
                      {"tie_word_embeddings", p.tied},
                      {"bos_token_id", p.bos},
                      {"eos_token_id", p.eos},
                      {"torch_dtype", "bfloat16"}};
  if (p.llama3_rope)
    j["rope_scaling"] = {{"rope_type", "llama3"},      {"factor", 8.0},
                         {"low_freq_factor", 1.0},     {"high_freq_factor", 4.0},
                         {"original_max_position_embeddings", 8192}};
  ModelConfig c = parse_config(j, std::string("preset ") + p.name);
  c.raw = nlohmann::json();  // config_to_json writes every key from the fields
  return c;
}

std::vector<int64_t> synth_outlier_channels(int64_t hidden, int64_t k, uint64_t seed) {
  WUSH_CHECK(k >= 0 && k <= hidden, "--outliers: %lld must be in [0, hidden size %lld]", (long long)k,
             (long long)hidden);
  std::vector<int64_t> ch(static_cast<size_t>(hidden));
  std::iota(ch.begin(), ch.end(), 0);
  std::mt19937_64 rng(tensor_seed(seed, "outlier channels"));
  // Partial Fisher-Yates: the first k entries are a uniform k-subset.
  for (int64_t i = 0; i < k; ++i) {
    int64_t j = i + int64_t(rng() % uint64_t(hidden - i));
    std::swap(ch[size_t(i)], ch[size_t(j)]);
  }
  ch.resize(size_t(k));
  std::sort(ch.begin(), ch.end());
  return ch;
}

void synth_model(const SynthParams& p) {
  WUSH_CHECK(p.dtype == "bf16" || p.dtype == "fp32", "--dtype: '%s' is not bf16 or fp32", p.dtype.c_str());
  WUSH_CHECK(!p.out.empty(), "--out: no output directory given");
  const Preset& preset = find_preset(p.preset);
  ModelConfig c = synth_config(p.preset, p.layers);
  const at::ScalarType dtype = p.dtype == "bf16" ? at::kBFloat16 : at::kFloat;
  c.dtype = p.dtype == "bf16" ? "bfloat16" : "float32";
  const std::vector<int64_t> outliers = synth_outlier_channels(c.hidden_size, p.outliers, p.seed);

  const std::vector<WeightSpec> weights = expected_weights(c);
  std::vector<SafeTensorSpec> specs;
  for (const WeightSpec& w : weights) specs.push_back({w.name, safe_dtype_of(dtype), w.shape});
  Progress bar("synth " + p.preset, int64_t(specs.size()));
  auto source = [&](size_t i) {
    const WeightSpec& w = weights[i];
    const uint64_t s = tensor_seed(p.seed, w.name);
    at::Tensor t;
    if (w.is_norm) {
      t = random_tensor(w.shape, 1.0, 0.02, s, at::kFloat);
      if (w.shape[0] == c.hidden_size)
        for (int64_t ch : outliers) t[ch] = kOutlierGain;
      t = t.to(dtype);
    } else if (w.is_bias) {
      t = random_tensor(w.shape, 0.0, 0.02, s, dtype);
    } else {
      const int64_t fan_in = w.shape[1];  // [out, in]; embeddings: [vocab, hidden]
      t = random_tensor(w.shape, 0.0, 1.0 / std::sqrt(double(fan_in)), s, dtype);
    }
    bar.update(int64_t(i) + 1);
    return SafeTensor::of(t);
  };

  AtomicDir out(p.out, p.force);
  write_file_atomic(out.file("config.json"), config_to_json(c).dump(2) + "\n");
  nlohmann::json gen = {{"bos_token_id", c.bos_token_id}, {"eos_token_id", c.eos_token_id}};
  write_file_atomic(out.file("generation_config.json"), gen.dump(2) + "\n");
  write_safetensors_dir(out.tmp_path(), specs, source, p.max_shard_bytes > 0 ? p.max_shard_bytes : kDefaultMaxShardBytes);
  if (*preset.tokenizer) {
    std::string data = default_data_dir();
    std::string tok = data.empty() ? "" : data + "/" + preset.tokenizer;
    if (!tok.empty() && path_exists(tok)) write_file_atomic(out.file("tokenizer.json"), read_file(tok));
  }
  bar.finish();
  out.commit();
}

}  // namespace wush

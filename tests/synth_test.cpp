// Synthetic models (src/model/synth.h): preset shapes equal the real configs, the output loads,
// is reproducible from the seed, and has the documented weight statistics and outliers.
#include <gtest/gtest.h>

#include <nlohmann/json.hpp>

#include "core/atomic_file.h"
#include "core/progress.h"
#include "core/runtime.h"
#include "model/hf_model.h"
#include "model/synth.h"
#include "model/weight_layout.h"
#include "modelio_test_util.h"

using namespace wush;
using wush::test::expect_error;
using wush::test::TempDir;

namespace {
SynthParams tiny(const std::string& out, uint64_t seed = 7) {
  SynthParams p;
  p.preset = "tiny";
  p.out = out;
  p.seed = seed;
  return p;
}
}  // namespace

TEST(SynthTest, PresetsMatchConfigs) {
  std::string data = default_data_dir();
  if (data.empty()) GTEST_SKIP() << "no data directory";
  for (const auto& [preset, file] : std::vector<std::pair<std::string, std::string>>{
           {"llama-3.1-8b", "Llama-3.1-8B"}, {"llama-3.1-70b", "Llama-3.1-70B"},
           {"qwen3-8b", "Qwen3-8B"}, {"qwen3-14b", "Qwen3-14B"}}) {
    SCOPED_TRACE(preset);
    std::string path = data + "/configs/" + file + ".config.json";
    ModelConfig real = parse_config(nlohmann::json::parse(read_file(path)), path);
    ModelConfig s = synth_config(preset, real.num_layers);
    EXPECT_EQ(s.architecture, real.architecture);
    EXPECT_EQ(s.hidden_size, real.hidden_size);
    EXPECT_EQ(s.intermediate_size, real.intermediate_size);
    EXPECT_EQ(s.num_heads, real.num_heads);
    EXPECT_EQ(s.num_kv_heads, real.num_kv_heads);
    EXPECT_EQ(s.head_dim, real.head_dim);
    EXPECT_EQ(s.vocab_size, real.vocab_size);
    EXPECT_EQ(s.max_position, real.max_position);
    EXPECT_EQ(s.rope_theta, real.rope_theta);
    EXPECT_EQ(s.rope_scaling.type, real.rope_scaling.type);
    EXPECT_EQ(s.rope_scaling.factor, real.rope_scaling.factor);
    EXPECT_EQ(s.rope_scaling.original_max_position, real.rope_scaling.original_max_position);
    EXPECT_EQ(s.rms_norm_eps, real.rms_norm_eps);
    EXPECT_EQ(s.tie_word_embeddings, real.tie_word_embeddings);
    EXPECT_EQ(s.qk_norm, real.qk_norm);
    if (real.raw.contains("bos_token_id")) {  // the 70B file is reconstructed without token ids
      EXPECT_EQ(s.bos_token_id, real.bos_token_id);
      EXPECT_EQ(s.eos_token_id, real.eos_token_id);
    }
    EXPECT_EQ(parameter_count(s), parameter_count(real));
  }
}

TEST(SynthTest, TinyLoadsAndIsReproducible) {
  set_progress_enabled(false);
  TempDir tmp("synth_tiny");
  synth_model(tiny(tmp / "a"));
  Model m = load_hf_model(tmp / "a");
  EXPECT_EQ(m.config.architecture, "LlamaForCausalLM");
  EXPECT_EQ(m.config.num_layers, 2);
  EXPECT_EQ(m.config.hidden_size, 64);
  EXPECT_EQ(m.config.num_kv_heads, 2);
  EXPECT_EQ(m.config.dtype, "bfloat16");
  EXPECT_EQ(m.weight("model.layers.1.self_attn.k_proj.weight").sizes(), at::IntArrayRef({32, 64}));
  int64_t total = 0;
  for (const auto& kv : m.weights) total += kv.second.numel();
  // 256*64*2 (embed, lm_head) + 2 * (64*64*2 + 32*64*2 + 3*64*192 + 2*64) + 64
  EXPECT_EQ(total, 32768 + 2 * (8192 + 4096 + 36864 + 128) + 64);
  EXPECT_EQ(total, parameter_count(m.config));

  // Same seed: the same bytes; another seed: different ones.
  synth_model(tiny(tmp / "b"));
  synth_model(tiny(tmp / "c", 8));
  EXPECT_EQ(read_file(tmp / "a/model.safetensors"), read_file(tmp / "b/model.safetensors"));
  EXPECT_NE(read_file(tmp / "a/model.safetensors"), read_file(tmp / "c/model.safetensors"));
  // A tensor's values depend on its name only: layer 1 is the same in a 3-layer model.
  SynthParams three = tiny(tmp / "d");
  three.layers = 3;
  synth_model(three);
  Model m3 = load_hf_model(tmp / "d");
  EXPECT_EQ(m3.config.num_layers, 3);
  EXPECT_TRUE(at::equal(m3.weight("model.layers.1.mlp.up_proj.weight"), m.weight("model.layers.1.mlp.up_proj.weight")));
  expect_error([&] { synth_model(tiny(tmp / "a")); }, {tmp / "a", "already exists"});
}

// Matrices N(0, 1/fan_in), norm gains ~1 with K outlier channels at kOutlierGain in every
// hidden-size norm, the same channels in each layer.
TEST(SynthTest, WeightStatisticsAndOutliers) {
  set_progress_enabled(false);
  TempDir tmp("synth_stats");
  SynthParams p = tiny(tmp / "o", 3);
  p.dtype = "fp32";
  p.outliers = 3;
  synth_model(p);
  Model m = load_hf_model(p.out);
  EXPECT_EQ(m.config.dtype, "float32");
  // std of n samples is within 4 standard errors (sigma / sqrt(2n)) of sigma.
  for (const auto& [name, fan_in] : std::vector<std::pair<std::string, double>>{
           {"model.layers.0.self_attn.q_proj.weight", 64}, {"model.layers.1.mlp.down_proj.weight", 192},
           {"model.embed_tokens.weight", 64}}) {
    at::Tensor w = m.weight(name).to(at::kDouble);
    double sigma = 1.0 / std::sqrt(fan_in), n = double(w.numel());
    EXPECT_NEAR(w.std().item<double>(), sigma, 4 * sigma / std::sqrt(2 * n)) << name;
    EXPECT_NEAR(w.mean().item<double>(), 0.0, 4 * sigma / std::sqrt(n)) << name;
  }
  std::vector<int64_t> ch = synth_outlier_channels(64, 3, 3);
  ASSERT_EQ(ch.size(), 3u);
  EXPECT_LT(ch.back(), 64);
  for (const char* norm : {"model.layers.0.input_layernorm.weight", "model.layers.1.post_attention_layernorm.weight",
                           "model.norm.weight"}) {
    at::Tensor g = m.weight(norm);
    at::Tensor is_outlier = g > 10;
    EXPECT_EQ(is_outlier.sum().item<int64_t>(), 3) << norm;
    for (int64_t c : ch) EXPECT_EQ(g[c].item<float>(), float(kOutlierGain)) << norm;
    at::Tensor rest = g.masked_select(is_outlier.logical_not());
    EXPECT_NEAR(rest.mean().item<float>(), 1.0f, 0.02f) << norm;
    EXPECT_LT((rest - 1).abs().max().item<float>(), 0.15f) << norm;
  }
  // Without --outliers every gain is near 1.
  synth_model(tiny(tmp / "plain", 3));
  EXPECT_LT(load_hf_model(tmp / "plain").weight("model.norm.weight").to(at::kFloat).max().item<float>(), 1.2f);
}

TEST(SynthTest, QwenFamiliesAndShards) {
  set_progress_enabled(false);
  TempDir tmp("synth_qwen");
  SynthParams q2 = tiny(tmp / "q2");
  q2.preset = "tiny-qwen2";
  synth_model(q2);
  Model m2 = load_hf_model(q2.out);
  EXPECT_TRUE(m2.config.attention_bias);
  EXPECT_TRUE(m2.config.tie_word_embeddings);
  EXPECT_EQ(m2.weight("model.layers.0.self_attn.k_proj.bias").sizes(), at::IntArrayRef({32}));
  EXPECT_FALSE(m2.has("lm_head.weight"));
  SynthParams q3 = tiny(tmp / "q3");
  q3.preset = "tiny-qwen3";
  q3.max_shard_bytes = 50'000;
  synth_model(q3);
  EXPECT_TRUE(path_exists(q3.out + "/model.safetensors.index.json"));
  Model m3 = load_hf_model(q3.out);
  EXPECT_TRUE(m3.config.qk_norm);
  EXPECT_EQ(m3.weight("model.layers.1.self_attn.q_norm.weight").sizes(), at::IntArrayRef({32}));
  EXPECT_EQ(m3.weight("model.layers.1.self_attn.q_proj.weight").sizes(), at::IntArrayRef({128, 64}));  // 4 x 32 > 64
}

TEST(SynthTest, Errors) {
  TempDir tmp("synth_err");
  SynthParams p = tiny(tmp / "x");
  p.preset = "llama-9";
  expect_error([&] { synth_model(p); }, {"--preset", "unknown preset 'llama-9'", "qwen3-8b"});
  p = tiny(tmp / "x");
  p.dtype = "fp8";
  expect_error([&] { synth_model(p); }, {"--dtype", "'fp8'"});
  p = tiny(tmp / "x");
  p.outliers = 65;
  expect_error([&] { synth_model(p); }, {"--outliers", "65"});
  p = tiny(tmp / "x");
  p.layers = 0;
  expect_error([&] { synth_model(p); }, {"--layers"});
  EXPECT_FALSE(path_exists(tmp / "x"));
}

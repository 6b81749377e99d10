// Hugging Face directories: config.json parsing (both key generations, four real configs), loading
// the two real models of ../shared/data (values checked against the raw file bytes), saving and
// reloading, and every error a broken directory gives.
#include <gtest/gtest.h>

#include <nlohmann/json.hpp>

#include "core/atomic_file.h"
#include "core/runtime.h"
#include "core/paths.h"
#include "model/hf_model.h"
#include "model/safetensors.h"
#include "model/weight_layout.h"
#include "modelio_test_util.h"

using namespace wush;
using wush::test::expect_error;
using wush::test::TempDir;

namespace {

std::string data_path(const std::string& rel) {
  std::string d = default_data_dir();
  return d.empty() ? "" : d + "/" + rel;
}

#define REQUIRE_DATA(p)                                                 \
  if ((p).empty() || !path_exists(p)) GTEST_SKIP() << "no data: " << (p)

nlohmann::json load_json(const std::string& path) { return nlohmann::json::parse(read_file(path)); }

// Element `flat` of tensor `name`, read from the file's bytes with a hand-parsed header
// (independent of SafetensorsFile): returns its `size` raw bytes.
std::string raw_element(const std::string& file, const std::string& name, int64_t flat, int size) {
  std::string bytes = read_file(file);
  uint64_t n = 0;
  std::memcpy(&n, bytes.data(), 8);
  auto h = nlohmann::json::parse(bytes.substr(8, n));
  uint64_t begin = h[name]["data_offsets"][0].get<uint64_t>();
  return bytes.substr(8 + n + begin + uint64_t(flat) * uint64_t(size), uint64_t(size));
}

float raw_f32(const std::string& file, const std::string& name, int64_t flat) {
  std::string b = raw_element(file, name, flat, 4);
  float f;
  std::memcpy(&f, b.data(), 4);
  return f;
}

float raw_bf16(const std::string& file, const std::string& name, int64_t flat) {
  std::string b = raw_element(file, name, flat, 2);
  return wush::test::bf16_bytes_to_float(reinterpret_cast<const unsigned char*>(b.data()));
}

}  // namespace

// ---- config.json --------------------------------------------------------------------------------

TEST(HfConfigTest, Llama31_8B) {
  std::string p = data_path("configs/Llama-3.1-8B.config.json");
  REQUIRE_DATA(p);
  ModelConfig c = parse_config(load_json(p), p);
  EXPECT_EQ(c.architecture, "LlamaForCausalLM");
  EXPECT_EQ(c.hidden_size, 4096);
  EXPECT_EQ(c.intermediate_size, 14336);
  EXPECT_EQ(c.num_layers, 32);
  EXPECT_EQ(c.num_heads, 32);
  EXPECT_EQ(c.num_kv_heads, 8);
  EXPECT_EQ(c.head_dim, 128);  // derived: 4096 / 32
  EXPECT_EQ(c.vocab_size, 128256);
  EXPECT_EQ(c.max_position, 131072);
  EXPECT_EQ(c.rope_theta, 500000.0);
  EXPECT_EQ(c.rope_scaling.type, "llama3");
  EXPECT_EQ(c.rope_scaling.factor, 8.0);
  EXPECT_EQ(c.rope_scaling.low_freq_factor, 1.0);
  EXPECT_EQ(c.rope_scaling.high_freq_factor, 4.0);
  EXPECT_EQ(c.rope_scaling.original_max_position, 8192);
  EXPECT_EQ(c.rms_norm_eps, 1e-5);
  EXPECT_FALSE(c.tie_word_embeddings);
  EXPECT_FALSE(c.attention_bias);
  EXPECT_FALSE(c.qk_norm);
  EXPECT_EQ(c.bos_token_id, 128000);
  EXPECT_EQ(c.eos_token_id, 128001);
  EXPECT_EQ(c.dtype, "bfloat16");
  // Published parameter count (the index's total_size 16,060,522,496 bytes / 2).
  EXPECT_EQ(parameter_count(c), 8030261248LL);
}

TEST(HfConfigTest, Llama31_70BAndQwen3) {
  std::string p70 = data_path("configs/Llama-3.1-70B.config.json");
  REQUIRE_DATA(p70);
  ModelConfig l70 = parse_config(load_json(p70), p70);
  EXPECT_EQ(l70.num_layers, 80);
  EXPECT_EQ(l70.num_kv_heads, 8);
  EXPECT_EQ(l70.rope_scaling.type, "llama3");
  EXPECT_EQ(parameter_count(l70), 70553706496LL);  // published: 70.6B

  std::string p8 = data_path("configs/Qwen3-8B.config.json"), p14 = data_path("configs/Qwen3-14B.config.json");
  ModelConfig q8 = parse_config(load_json(p8), p8), q14 = parse_config(load_json(p14), p14);
  for (const ModelConfig* q : {&q8, &q14}) {
    EXPECT_EQ(q->architecture, "Qwen3ForCausalLM");
    EXPECT_TRUE(q->qk_norm);
    EXPECT_FALSE(q->attention_bias);
    EXPECT_EQ(q->head_dim, 128);
    EXPECT_EQ(q->rope_theta, 1e6);
    EXPECT_EQ(q->rope_scaling.type, "");  // "rope_scaling": null
    EXPECT_EQ(q->rms_norm_eps, 1e-6);
    EXPECT_EQ(q->bos_token_id, 151643);
    EXPECT_EQ(q->eos_token_id, 151645);
  }
  EXPECT_EQ(q8.num_layers, 36);
  EXPECT_EQ(q14.hidden_size, 5120);
  EXPECT_EQ(q14.num_heads * q14.head_dim, 5120);
  // Qwen3-14B: head_dim is given explicitly; 40 heads x 128.
  EXPECT_EQ(parameter_count(q8), 8190735360LL);    // published: 8.2B
  EXPECT_EQ(parameter_count(q14), 14768307200LL);  // published: 14.8B
}

// transformers 5 keys (rope_parameters, dtype) as gutenberg-llama-16M has them.
TEST(HfConfigTest, Transformers5Keys) {
  std::string p = data_path("models/gutenberg-llama-16M/config.json");
  REQUIRE_DATA(p);
  ModelConfig c = parse_config(load_json(p), p);
  EXPECT_EQ(c.rope_theta, 10000.0);
  EXPECT_EQ(c.rope_scaling.type, "");
  EXPECT_EQ(c.dtype, "bfloat16");
  EXPECT_EQ(c.head_dim, 64);
  EXPECT_TRUE(c.tie_word_embeddings);
  EXPECT_EQ(c.rms_norm_eps, 1e-6);

  nlohmann::json j = {{"architectures", {"LlamaForCausalLM"}}, {"hidden_size", 64}, {"intermediate_size", 128},
                      {"num_hidden_layers", 1}, {"num_attention_heads", 4}, {"vocab_size", 10}, {"dtype", "float16"},
                      {"eos_token_id", {7, 8}}, {"bos_token_id", nullptr},
                      {"rope_parameters", {{"rope_type", "llama3"}, {"rope_theta", 5e5}, {"factor", 32.0},
                                           {"low_freq_factor", 1.0}, {"high_freq_factor", 4.0},
                                           {"original_max_position_embeddings", 8192}}}};
  ModelConfig d = parse_config(j, "x/config.json");
  EXPECT_EQ(d.rope_theta, 5e5);
  EXPECT_EQ(d.rope_scaling.type, "llama3");
  EXPECT_EQ(d.rope_scaling.factor, 32.0);
  EXPECT_EQ(d.dtype, "float16");
  EXPECT_EQ(d.num_kv_heads, 4);   // defaults to num_attention_heads
  EXPECT_EQ(d.eos_token_id, 7);   // first of the list
  EXPECT_EQ(d.bos_token_id, -1);  // null
  nlohmann::json back = config_to_json(d);
  EXPECT_EQ(back["eos_token_id"], nlohmann::json({7, 8}));  // list kept
  EXPECT_FALSE(back.contains("rope_theta"));                // same key generation as the source
  EXPECT_EQ(back["rope_parameters"]["rope_theta"], 5e5);
  EXPECT_EQ(back["dtype"], "float16");
}

TEST(HfConfigTest, ArchitecturesAndRoundTrip) {
  nlohmann::json base = {{"hidden_size", 64}, {"intermediate_size", 128}, {"num_hidden_layers", 2},
                         {"num_attention_heads", 4}, {"num_key_value_heads", 2}, {"vocab_size", 32}};
  auto with_arch = [&](const char* a) {
    nlohmann::json j = base;
    j["architectures"] = {a};
    return j;
  };
  ModelConfig mis = parse_config(with_arch("MistralForCausalLM"), "m");
  EXPECT_EQ(mis.model_type, "mistral");
  ModelConfig q2 = parse_config(with_arch("Qwen2ForCausalLM"), "q2");
  EXPECT_TRUE(q2.attention_bias);  // Qwen2 always has q/k/v biases, no key for it
  EXPECT_FALSE(q2.qk_norm);
  // Round trip of every kind: config_to_json -> parse_config gives the same fields.
  std::vector<nlohmann::json> all = {with_arch("LlamaForCausalLM"), with_arch("MistralForCausalLM"),
                                     with_arch("Qwen2ForCausalLM"), with_arch("Qwen3ForCausalLM")};
  for (const char* f : {"configs/Llama-3.1-8B.config.json", "configs/Qwen3-14B.config.json",
                        "models/gutenberg-llama-16M/config.json", "models/tinystories656K/config.json"})
    if (path_exists(data_path(f))) all.push_back(load_json(data_path(f)));
  for (const nlohmann::json& j : all) {
    ModelConfig a = parse_config(j, "a");
    ModelConfig b = parse_config(config_to_json(a), "b");
    SCOPED_TRACE(j.dump());
    EXPECT_EQ(b.architecture, a.architecture);
    EXPECT_EQ(b.hidden_size, a.hidden_size);
    EXPECT_EQ(b.num_kv_heads, a.num_kv_heads);
    EXPECT_EQ(b.head_dim, a.head_dim);
    EXPECT_EQ(b.rope_theta, a.rope_theta);
    EXPECT_EQ(b.rope_scaling.type, a.rope_scaling.type);
    EXPECT_EQ(b.rope_scaling.factor, a.rope_scaling.factor);
    EXPECT_EQ(b.tie_word_embeddings, a.tie_word_embeddings);
    EXPECT_EQ(b.attention_bias, a.attention_bias);
    EXPECT_EQ(b.qk_norm, a.qk_norm);
    EXPECT_EQ(b.eos_token_id, a.eos_token_id);
    EXPECT_EQ(b.dtype, a.dtype);
  }
  // A config built from scratch (llama2.c conversion) writes transformers 4 keys.
  ModelConfig scratch = parse_config(with_arch("LlamaForCausalLM"), "s");
  scratch.raw = nlohmann::json();
  nlohmann::json out = config_to_json(scratch);
  EXPECT_EQ(out["model_type"], "llama");
  EXPECT_EQ(out["rope_theta"], 10000.0);
  EXPECT_EQ(out["torch_dtype"], "float32");
  EXPECT_TRUE(out["rope_scaling"].is_null());
}

TEST(HfConfigTest, Errors) {
  nlohmann::json j = {{"architectures", {"GPT2LMHeadModel"}}, {"hidden_size", 64}};
  expect_error([&] { parse_config(j, "dir/config.json"); },
               {"dir/config.json", "unsupported architecture 'GPT2LMHeadModel'", "LlamaForCausalLM"});
  j = {{"architectures", {"LlamaForCausalLM"}}, {"hidden_size", 64}};
  expect_error([&] { parse_config(j, "c.json"); }, {"c.json", "missing \"intermediate_size\""});
  j = {{"architectures", {"LlamaForCausalLM"}}, {"hidden_size", 64}, {"intermediate_size", 128},
       {"num_hidden_layers", 2}, {"num_attention_heads", 4}, {"num_key_value_heads", 3}, {"vocab_size", 32}};
  expect_error([&] { parse_config(j, "c.json"); }, {"c.json", "not a multiple of num_key_value_heads 3"});
  j["num_key_value_heads"] = 2;
  j["rope_scaling"] = {{"rope_type", "yarn"}, {"factor", 4.0}};
  expect_error([&] { parse_config(j, "c.json"); }, {"c.json", "unsupported rope scaling type 'yarn'"});
  j.erase("rope_scaling");
  j["attention_bias"] = true;
  expect_error([&] { parse_config(j, "c.json"); }, {"c.json", "attention_bias=true is not supported"});
  j["attention_bias"] = false;
  j["hidden_size"] = "64";
  expect_error([&] { parse_config(j, "c.json"); }, {"c.json", "\"hidden_size\" has the wrong type"});
}

// ---- loading real models -------------------------------------------------------------------------

TEST(HfModelTest, LoadsGutenbergSharded) {
  std::string dir = data_path("models/gutenberg-llama-16M");
  REQUIRE_DATA(dir);
  Model m = load_hf_model(dir);
  EXPECT_EQ(m.config.num_layers, 8);
  EXPECT_EQ(m.config.num_kv_heads, 2);
  EXPECT_EQ(m.config.dtype, "bfloat16");
  EXPECT_FALSE(m.has("lm_head.weight"));  // tied, not stored
  EXPECT_EQ(m.weights.size(), 2u + 8u * 9u);
  int64_t total = 0;
  for (const auto& [name, t] : m.weights) {
    EXPECT_EQ(t.scalar_type(), at::kBFloat16) << name;
    total += t.numel();
  }
  // data/README.md: 15.7M parameters; the index records the exact count.
  auto index = load_json(dir + "/model.safetensors.index.json");
  EXPECT_EQ(total, index["metadata"]["total_parameters"].get<int64_t>());
  EXPECT_EQ(total, 15735168);
  EXPECT_EQ(parameter_count(m.config), 15735168);
  EXPECT_EQ(m.weight("model.layers.0.self_attn.k_proj.weight").sizes(), at::IntArrayRef({128, 384}));
  EXPECT_EQ(m.weight("model.layers.3.mlp.down_proj.weight").sizes(), at::IntArrayRef({384, 1024}));
  EXPECT_EQ(m.tokenizer_path, dir + "/tokenizer.json");
  // Values against the raw bytes of each shard.
  for (const auto& [name, flat] : std::vector<std::pair<std::string, int64_t>>{
           {"model.embed_tokens.weight", 5 * 384 + 7},
           {"model.layers.1.input_layernorm.weight", 100},
           {"model.layers.7.mlp.down_proj.weight", 383 * 1024 + 1023}}) {
    std::string shard = dir + "/" + index["weight_map"][name].get<std::string>();
    float expect = raw_bf16(shard, name, flat);
    EXPECT_EQ(m.weight(name).flatten()[flat].item<float>(), expect) << name;
    EXPECT_NE(expect, 0.0f) << name;
  }
}

TEST(HfModelTest, LoadsTinyStoriesWithStoredTiedHead) {
  std::string dir = data_path("models/tinystories656K");
  REQUIRE_DATA(dir);
  Model m = load_hf_model(dir);
  EXPECT_TRUE(m.config.tie_word_embeddings);
  EXPECT_EQ(m.config.dtype, "float32");
  // The file stores only lm_head.weight (safetensors dropped the shared embedding): both names
  // refer to it, and it counts once.
  ASSERT_TRUE(m.has("lm_head.weight"));
  EXPECT_EQ(m.weight("model.embed_tokens.weight").data_ptr(), m.weight("lm_head.weight").data_ptr());
  EXPECT_EQ(parameter_count(m.config), 656000);  // "656K"
  int64_t stored = 0;
  for (const auto& [name, t] : m.weights)
    if (name != "lm_head.weight") stored += t.numel();
  EXPECT_EQ(stored, 656000);
  EXPECT_EQ(m.weight("model.layers.1.self_attn.k_proj.weight").sizes(), at::IntArrayRef({64, 128}));
  std::string file = dir + "/model.safetensors";
  EXPECT_EQ(m.weight("model.embed_tokens.weight")[3][9].item<float>(), raw_f32(file, "lm_head.weight", 3 * 128 + 9));
  EXPECT_EQ(m.weight("model.layers.0.mlp.up_proj.weight")[200][50].item<float>(),
            raw_f32(file, "model.layers.0.mlp.up_proj.weight", 200 * 128 + 50));
  EXPECT_EQ(m.tokenizer_path, dir + "/tokenizer.json");
  // load_model dispatches a directory here too.
  EXPECT_EQ(load_model(dir).weights.size(), m.weights.size());
}

TEST(HfModelTest, SaveAndReloadSharded) {
  std::string src = data_path("models/tinystories656K");
  REQUIRE_DATA(src);
  TempDir tmp("hf_save");
  Model m = load_hf_model(src);
  std::string out = tmp / "copy";
  // 600 kB shards: embed (1,048,576 B) alone; layer 0 up to up_proj (590,848 B); layer 0 down_proj +
  // layer 1 up to gate_proj (590,848 B); the rest (393,728 B).
  save_hf_model(m, out, false, 600'000);
  EXPECT_TRUE(path_exists(out + "/model.safetensors.index.json"));
  EXPECT_TRUE(path_exists(out + "/model-00004-of-00004.safetensors"));
  for (const char* f : {"tokenizer.json", "tokenizer_config.json", "special_tokens_map.json", "generation_config.json"})
    EXPECT_EQ(read_file(out + "/" + f), read_file(src + "/" + f)) << f;
  Model r = load_hf_model(out);
  EXPECT_FALSE(r.has("lm_head.weight"));  // tied: not written
  EXPECT_EQ(r.weights.size(), m.weights.size() - 1);
  for (const auto& [name, t] : r.weights) EXPECT_TRUE(at::equal(t, m.weight(name))) << name;
  EXPECT_EQ(r.config.max_position, m.config.max_position);
  EXPECT_EQ(r.config.rms_norm_eps, m.config.rms_norm_eps);
  EXPECT_EQ(r.tokenizer_path, out + "/tokenizer.json");
  // No --force: refused; with force: replaced (a single file this time).
  expect_error([&] { save_hf_model(m, out, false); }, {out, "already exists"});
  save_hf_model(r, out, true);
  EXPECT_TRUE(path_exists(out + "/model.safetensors"));
  EXPECT_FALSE(path_exists(out + "/model.safetensors.index.json"));
  EXPECT_EQ(load_hf_model(out).weights.size(), r.weights.size());
}

TEST(HfModelTest, BrokenDirectories) {
  std::string src = data_path("models/tinystories656K");
  REQUIRE_DATA(src);
  TempDir tmp("hf_broken");
  Model m = load_hf_model(src);
  auto config_text = read_file(src + "/config.json");
  // Weights without one tensor.
  std::string dir = tmp / "missing";
  wush::make_dirs(dir);
  write_file_atomic(dir + "/config.json", config_text);
  std::vector<std::pair<std::string, SafeTensor>> ts;
  for (const auto& [name, t] : m.weights)
    if (name != "model.layers.1.mlp.up_proj.weight" && name != "lm_head.weight") ts.push_back({name, SafeTensor::of(t)});
  write_safetensors(dir + "/model.safetensors", ts);
  expect_error([&] { load_hf_model(dir); }, {dir, "missing tensor 'model.layers.1.mlp.up_proj.weight'"});
  // A tensor of the wrong shape.
  ts.push_back({"model.layers.1.mlp.up_proj.weight", SafeTensor::of(at::zeros({384, 64}))});
  write_safetensors(dir + "/model.safetensors", ts);
  expect_error([&] { load_hf_model(dir); },
               {dir, "'model.layers.1.mlp.up_proj.weight' has shape [384, 64], config.json implies [384, 128]"});
  // Unsupported architecture, broken config, no weights, not a directory.
  auto j = nlohmann::json::parse(config_text);
  j["architectures"] = {"FalconForCausalLM"};
  write_file_atomic(dir + "/config.json", j.dump());
  expect_error([&] { load_hf_model(dir); }, {dir + "/config.json", "unsupported architecture 'FalconForCausalLM'"});
  write_file_atomic(dir + "/config.json", "{\"architectures\": [");
  expect_error([&] { load_hf_model(dir); }, {dir + "/config.json", "not valid JSON"});
  std::string empty = tmp / "empty";
  wush::make_dirs(empty);
  expect_error([&] { load_hf_model(empty); }, {empty, "no config.json"});
  write_file_atomic(empty + "/config.json", config_text);
  expect_error([&] { load_hf_model(empty); }, {empty, "no model.safetensors"});
  // A sharded model whose index names a shard that is gone.
  std::string sharded = tmp / "sharded";
  save_hf_model(m, sharded, false, 600'000);
  wush::remove_file(sharded + "/model-00002-of-00004.safetensors");
  expect_error([&] { load_hf_model(sharded); }, {"model.safetensors.index.json", "shard 'model-00002-of-00004.safetensors'", "does not exist"});
}

// What `wush convert` does after load_llama2c: a model whose source is a file, with a tokenizer
// file elsewhere, is saved with that tokenizer copied as is and found again on load.
TEST(HfModelTest, SavesForeignTokenizerFile) {
  std::string src = data_path("models/tinystories656K"), tok = data_path("models/tok512.bin");
  REQUIRE_DATA(tok);
  TempDir tmp("hf_foreign_tok");
  Model m = load_hf_model(src);
  m.path = tmp / "model.bin";  // not a directory: no side files to copy
  m.tokenizer_path = tok;
  save_hf_model(m, tmp / "out", false);
  EXPECT_FALSE(path_exists(tmp / "out/tokenizer.json"));
  EXPECT_EQ(read_file(tmp / "out/tok512.bin"), read_file(tok));
  EXPECT_EQ(load_hf_model(tmp / "out").tokenizer_path, tmp / "out/tok512.bin");
  nlohmann::json cfg = load_json(tmp / "out/config.json");
  EXPECT_EQ(cfg["architectures"][0], "LlamaForCausalLM");
  EXPECT_EQ(cfg["torch_dtype"], "float32");
  EXPECT_EQ(cfg["num_key_value_heads"], 4);
}

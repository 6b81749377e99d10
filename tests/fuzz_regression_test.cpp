// Regression tests for the fuzzers' findings (docs/RELIABILITY.md §1): each input that crashed a
// fuzz target, minimized and written inline, now gives a wush::Error naming the file and the field.
#include <gtest/gtest.h>

#include <nlohmann/json.hpp>

#include "core/atomic_file.h"
#include "core/paths.h"
#include "core/error.h"
#include "model/config.h"
#include "pipeline/checkpoint.h"
#include "runtime_test_util.h"


namespace {

nlohmann::json llama_config() {
  return nlohmann::json::parse(R"({"architectures": ["LlamaForCausalLM"], "model_type": "llama",
    "hidden_size": 64, "intermediate_size": 172, "num_hidden_layers": 5, "num_attention_heads": 8,
    "num_key_value_heads": 4, "vocab_size": 512, "max_position_embeddings": 512, "rms_norm_eps": 1e-5,
    "rope_theta": 10000.0, "tie_word_embeddings": true})");
}

}  // namespace

// fuzz_config: "num_hidden_layers": 5e30 reached nlohmann's float -> int64 cast (UBSan:
// "5e+30 is outside the range of representable values of type 'long'").
TEST(FuzzRegression, ConfigIntegerFieldsRefuseFloatsAndOutOfRange) {
  ASSERT_EQ(wush::parse_config(llama_config(), "config.json").num_layers, 5);
  for (const char* bad : {"5e30", "8.0", "-1e300", "18446744073709551615"}) {
    nlohmann::json j = llama_config();
    j["num_hidden_layers"] = nlohmann::json::parse(bad);
    std::string e = wush::testing::error_message([&] { wush::parse_config(j, "config.json"); });
    EXPECT_NE(e.find("config.json: \"num_hidden_layers\" must be an integer in range"), std::string::npos)
        << bad << ": " << e;
  }
}

// load_quantized on a config whose quantization_config is not an object, or whose group_size is a
// float, zero or not a power of two: one wush::Error each (before: nlohmann exceptions, a float
// cast, a division by zero).
TEST(FuzzRegression, CheckpointQuantizationConfigIsValidated) {
  const std::string dir = wush::path_join(wush::temp_dir(), "wush_fuzzreg_" + std::to_string(::getpid()));
  ASSERT_TRUE(wush::make_dirs(dir));
  const std::pair<const char*, const char*> cases[] = {
      {"[1, 2]", "quantization_config is not an object"},
      {R"({"quant_method": "wush", "recipe": "hadamard:mxfp4:rtn", "group_size": 1e30})", "group_size must be an integer"},
      {R"({"quant_method": "wush", "recipe": "hadamard:mxfp4:rtn", "group_size": 0})", "group_size 0 is not a power of two"},
      {R"({"quant_method": "wush", "recipe": "hadamard:mxfp4:rtn", "group_size": 24})", "group_size 24 is not a power of two"},
  };
  for (const auto& [qc, want] : cases) {
    nlohmann::json j = llama_config();
    j["quantization_config"] = nlohmann::json::parse(qc);
    wush::write_file_atomic(wush::path_join(dir, "config.json"), j.dump());
    std::string e = wush::testing::error_message([&] { wush::load_quantized(dir); });
    EXPECT_NE(e.find(want), std::string::npos) << qc << ": " << e;
    EXPECT_NE(e.find("config.json"), std::string::npos) << e;
    EXPECT_NO_THROW(wush::is_quantized_checkpoint(dir));
  }
  wush::remove_tree(dir);
}

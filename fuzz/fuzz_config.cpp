// Fuzz target: a Hugging Face config.json as parse_config() reads it (architectures, sizes,
// RoPE parameters and scaling), and the round trip through config_to_json().
#include <nlohmann/json.hpp>

#include "fuzz_util.h"
#include "model/config.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  auto j = nlohmann::json::parse(data, data + size, nullptr, false);
  if (j.is_discarded()) return 0;
  wush_fuzz::expect_clean([&] {
    wush::ModelConfig c = wush::parse_config(j, "fuzz config.json");
    wush::parse_config(wush::config_to_json(c), "fuzz config.json (round trip)");
  });
  return 0;
}

// Fuzz target: a sharded safetensors set read through its index. Input parts:
// model.safetensors.index.json, model-00001-of-00002.safetensors, model-00002-of-00002.safetensors.
#include "fuzz_util.h"
#include "model/safetensors.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  wush_fuzz::reset_scratch();
  auto parts = wush_fuzz::split_parts(data, size, 3);
  const char* names[] = {"model.safetensors.index.json", "model-00001-of-00002.safetensors",
                         "model-00002-of-00002.safetensors"};
  for (size_t i = 0; i < parts.size(); ++i) wush_fuzz::put_file(names[i], parts[i]);
  wush_fuzz::expect_clean([&] {
    std::map<std::string, std::string> meta;
    for (const auto& [name, t] : wush::read_safetensors(wush_fuzz::scratch_dir() + "/" + names[0], &meta))
      (void)t.data.sum();
  });
  return 0;
}

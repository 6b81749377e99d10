// Fuzz target: one .safetensors file (header JSON, offsets, dtypes, shapes), opened and every
// tensor read back.
#include "fuzz_util.h"
#include "model/safetensors.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  wush_fuzz::reset_scratch();
  std::string path = wush_fuzz::put_file("model.safetensors", std::string(reinterpret_cast<const char*>(data), size));
  wush_fuzz::expect_clean([&] {
    wush::SafetensorsFile f(path);
    for (const auto& [name, t] : f.get_all()) (void)t.data.sum();
  });
  return 0;
}

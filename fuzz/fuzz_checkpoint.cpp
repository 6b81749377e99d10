// Fuzz target: a wush quantized checkpoint directory (docs/FORMAT.md) loaded by load_quantized().
// Input parts: config.json, model.safetensors.
#include "fuzz_util.h"
#include "pipeline/checkpoint.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  wush_fuzz::reset_scratch();
  auto parts = wush_fuzz::split_parts(data, size, 2);
  wush_fuzz::put_file("config.json", parts[0]);
  if (parts.size() > 1) wush_fuzz::put_file("model.safetensors", parts[1]);
  wush_fuzz::expect_clean([&] { wush::load_quantized(wush_fuzz::scratch_dir()); });
  return 0;
}

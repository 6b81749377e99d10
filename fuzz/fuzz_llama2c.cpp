// Fuzz target: a llama2.c checkpoint (.bin: 7 x int32 header, fp32 tensors).
#include "fuzz_util.h"
#include "model/llama2c.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  wush_fuzz::reset_scratch();
  std::string path = wush_fuzz::put_file("model.bin", std::string(reinterpret_cast<const char*>(data), size));
  wush_fuzz::expect_clean([&] { wush::load_llama2c(path); });
  return 0;
}

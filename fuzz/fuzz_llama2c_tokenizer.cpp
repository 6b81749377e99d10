// Fuzz target: a llama2.c tokenizer (tok512.bin), loaded and used once (encode, decode, pieces).
#include "fuzz_util.h"
#include "model/tokenizer.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  wush_fuzz::reset_scratch();
  std::string path = wush_fuzz::put_file("tok512.bin", std::string(reinterpret_cast<const char*>(data), size));
  wush_fuzz::expect_clean([&] {
    auto tok = wush::load_llama2c_tokenizer(path);
    auto ids = tok->encode("Once upon a time, \xc3\xa9t\xc3\xa9 <0x0A> 123", true);
    tok->decode(ids);
    for (int32_t i = 0; i < tok->vocab_size() && i < 64; ++i) tok->piece(i);
  });
  return 0;
}

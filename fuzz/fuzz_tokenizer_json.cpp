// Fuzz target: a Hugging Face tokenizer.json (model, normalizer, pre-tokenizer, added tokens),
// loaded and used once (encode, decode, pieces).
#include "fuzz_util.h"
#include "model/tokenizer_loaders.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  std::string text(reinterpret_cast<const char*>(data), size);
  wush_fuzz::expect_clean([&] {
    auto tok = wush::parse_hf_tokenizer(text, "fuzz tokenizer.json", "");
    auto ids = tok->encode("Once upon a time, \xc3\xa9t\xc3\xa9  123\n\tend", true);
    tok->decode(ids);
    for (int32_t i = 0; i < tok->vocab_size() && i < 64; ++i) tok->piece(i);
  });
  return 0;
}

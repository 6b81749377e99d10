#include "model/tokenizer.h"

#include "core/error.h"

namespace wush {
// Placeholder until the tokenizer factory lands: only llama2.c tokenizers.
std::unique_ptr<Tokenizer> load_tokenizer(const std::string& path) { return load_llama2c_tokenizer(path); }
}  // namespace wush

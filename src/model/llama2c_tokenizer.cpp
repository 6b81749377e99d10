#include "core/error.h"
#include "model/tokenizer.h"

namespace wush {
std::unique_ptr<Tokenizer> load_llama2c_tokenizer(const std::string& path) {
  WUSH_FAIL("%s: llama2.c tokenizer not implemented yet", path.c_str());
}
}  // namespace wush

#include "core/error.h"
#include "model/tokenizer_loaders.h"
namespace wush {
std::unique_ptr<Tokenizer> load_hf_tokenizer(const std::string& path) { WUSH_FAIL("todo"); }
std::unique_ptr<Tokenizer> parse_hf_tokenizer(const std::string& json_text, const std::string& origin,
                                              const std::string& dir) { WUSH_FAIL("todo"); }
}

#include "model/llama2c.h"

#include "core/error.h"

namespace wush {
Model load_llama2c(const std::string& path) { WUSH_FAIL("%s: llama2.c loading not implemented yet", path.c_str()); }
}  // namespace wush

#include "model/hf_model.h"

#include "core/error.h"

namespace wush {
Model load_hf_model(const std::string& dir) { WUSH_FAIL("%s: Hugging Face loading not implemented yet", dir.c_str()); }
void save_hf_model(const Model&, const std::string& dir, bool) { WUSH_FAIL("%s: saving not implemented yet", dir.c_str()); }
}  // namespace wush

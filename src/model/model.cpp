#include "model/model.h"

#include "core/atomic_file.h"
#include "core/error.h"
#include "model/hf_model.h"
#include "model/llama2c.h"

namespace wush {

const at::Tensor& Model::weight(const std::string& name) const {
  auto it = weights.find(name);
  WUSH_CHECK(it != weights.end(), "%s: missing tensor '%s'", path.c_str(), name.c_str());
  return it->second;
}

std::string linear_prefix(int64_t layer, int i) {
  return "model.layers." + std::to_string(layer) + "." + kLinearNames[i];
}

Model load_model(const std::string& path) {
  WUSH_CHECK(path_exists(path), "%s: no such model (expected a llama2.c .bin or a Hugging Face directory)",
             path.c_str());
  if (is_directory(path)) return load_hf_model(path);
  return load_llama2c(path);
}

}  // namespace wush

#include "transforms/transform_registry.h"

#include "core/error.h"
#include "transforms/hadamard_transform.h"
#include "transforms/identity_transform.h"
#include "transforms/random_transform.h"
#include "transforms/smoothquant_transform.h"
#include "transforms/wush_local_transform.h"
#include "transforms/wush_search_transform.h"
#include "transforms/wush_transform.h"

namespace wush {

template <class T, bool... Args>
static std::unique_ptr<Transform> make() {
  return std::make_unique<T>(Args...);
}

const std::vector<TransformInfo>& all_transforms() {
  static const std::vector<TransformInfo> table = {
      {"identity", "no transform (T_j = I)", make<IdentityTransform>},
      {"hadamard", "normalized Sylvester Hadamard H_G/sqrt(G), every block", make<HadamardTransform>},
      {"random", "seeded Haar-random orthogonal block per block", make<RandomTransform>},
      {"smoothquant", "diagonal SmoothQuant scaling, a = 0.5", make<SmoothQuantTransform>},
      {"wus", "wush with the Hadamard factor replaced by I", make<WushTransform, false>},
      {"wush", "WUSH, earlier release: Schur-complement blocks of chol(H), SVD",
       make<WushTransform, true>},
      {"wush-local", "WUSH, paper's form: per-block Grams, eigh", make<WushLocalTransform>},
      {"wush-search", "wush-local with eigenvector signs searched per block (RTN loss)",
       make<WushSearchTransform>},
  };
  return table;
}

std::vector<std::string> transform_names() {
  std::vector<std::string> out;
  for (const auto& t : all_transforms()) out.push_back(t.name);
  return out;
}

std::unique_ptr<Transform> make_transform(const std::string& name) {
  std::string valid;
  for (const auto& t : all_transforms()) {
    if (name == t.name) return t.make();
    valid += (valid.empty() ? "" : ", ") + std::string(t.name);
  }
  WUSH_FAIL("unknown transform '%s' (valid: %s)", name.c_str(), valid.c_str());
}

}  // namespace wush

// The transforms by name (REFERENCE.md §2): one row per transform, iterated by CLI help, the
// recipe parser and tests (STYLE.md §1, §3).
#pragma once
#include <memory>
#include <string>
#include <vector>

#include "transforms/transform.h"

namespace wush {

struct TransformInfo {
  const char* name;
  const char* help;  // one line
  std::unique_ptr<Transform> (*make)();
};

const std::vector<TransformInfo>& all_transforms();
std::vector<std::string> transform_names();
// Unknown name -> wush::Error listing the valid names.
std::unique_ptr<Transform> make_transform(const std::string& name);

}  // namespace wush

// identity: T_j = I (REFERENCE.md §2), the no-transform baseline; data-free.
#pragma once
#include "transforms/transform.h"

namespace wush {

class IdentityTransform : public Transform {
 public:
  std::string name() const override { return "identity"; }

 protected:
  at::Tensor fit_blocks(const FitInput& in, int64_t nb) override;
};

}  // namespace wush

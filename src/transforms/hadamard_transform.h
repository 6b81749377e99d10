// hadamard: T_j = H_G / sqrt(G) (Sylvester, scipy order), the same for every block
// (REFERENCE.md §2); data-free. G must be a power of two.
#pragma once
#include "transforms/transform.h"

namespace wush {

class HadamardTransform : public Transform {
 public:
  std::string name() const override { return "hadamard"; }

 protected:
  at::Tensor fit_blocks(const FitInput& in, int64_t nb) override;
};

}  // namespace wush

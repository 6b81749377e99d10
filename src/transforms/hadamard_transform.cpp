#include "transforms/hadamard_transform.h"

#include "transforms/hadamard.h"

namespace wush {

at::Tensor HadamardTransform::fit_blocks(const FitInput& in, int64_t nb) {
  return hadamard_matrix(in.group).expand({nb, in.group, in.group}).clone();
}

}  // namespace wush

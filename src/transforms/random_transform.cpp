#include "transforms/random_transform.h"

#include <ATen/CPUGeneratorImpl.h>

namespace wush {

at::Tensor haar_orthogonal(int64_t nb, int64_t G, uint64_t seed) {
  at::Generator gen = at::make_generator<at::CPUGeneratorImpl>(seed);
  at::Tensor A = at::randn({nb, G, G}, gen, at::TensorOptions().dtype(at::kDouble));
  auto [Q, R] = at::linalg_qr(A);
  at::Tensor d = R.diagonal(0, -2, -1);
  // Q diag(sign(diag R)) (a zero diagonal has probability 0; treated as +1)
  return Q * at::where(d < 0, -at::ones_like(d), at::ones_like(d)).unsqueeze(-2);
}

at::Tensor RandomTransform::fit_blocks(const FitInput& in, int64_t nb) {
  return haar_orthogonal(nb, in.group, in.seed);
}

}  // namespace wush

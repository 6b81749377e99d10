// random: a Haar-distributed random orthogonal T_j per block (REFERENCE.md §2, §9): QR of a
// standard Gaussian G x G matrix, Q's columns multiplied by sign(diag R) (without it Q is not
// Haar). Seeded: FitInput::seed drives one CPU generator for all blocks in order; the seed is
// saved with the transform.
#pragma once
#include "transforms/transform.h"

namespace wush {

// [nb, G, G] fp64 Haar orthogonal matrices from `seed` (CPU).
at::Tensor haar_orthogonal(int64_t nb, int64_t G, uint64_t seed);

class RandomTransform : public Transform {
 public:
  std::string name() const override { return "random"; }

 protected:
  at::Tensor fit_blocks(const FitInput& in, int64_t nb) override;
};

}  // namespace wush

// wush-local (REFERENCE.md §2, the paper's form as the current reference release computes it):
// per block, Gw = W_j^T W_j / R and Gx = H_jj, both damped, then wush_local_block(), batched over
// all blocks. Works for any R (damping makes a rank-deficient Gw positive definite).
// Padding (C % G != 0): H via pad_second_moment(); the padded diagonal entries of Gw are set to
// 1% of the mean real diagonal of the layer's Gw (the same rule), so damping-off fits exist.
#pragma once
#include "transforms/transform.h"

namespace wush {

// The blocks' weight Grams W_j^T W_j / R [nb, G, G] of a padded FitInput, with the padded
// diagonal rule above (shared with wush-search).
at::Tensor wush_local_weight_grams(const FitInput& in, int64_t nb);

class WushLocalTransform : public Transform {
 public:
  std::string name() const override { return "wush-local"; }
  bool needs_H() const override { return true; }
  bool needs_W() const override { return true; }

 protected:
  at::Tensor fit_blocks(const FitInput& in, int64_t nb) override;
};

}  // namespace wush

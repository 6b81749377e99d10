// smoothquant (REFERENCE.md §2, extra baseline): T = diag(s)^{-1} with
// s_c = max|x_c|^a / max_r |W_rc|^(1-a), a = 0.5; x~ = x / s, W~ = W diag(s).
// A channel whose activation or weight absmax is zero (and every padded channel) gets s_c = 1.
#pragma once
#include "transforms/transform.h"

namespace wush {

class SmoothQuantTransform : public Transform {
 public:
  static constexpr double kAlpha = 0.5;
  std::string name() const override { return "smoothquant"; }
  bool needs_W() const override { return true; }
  bool needs_absmax() const override { return true; }

 protected:
  at::Tensor fit_blocks(const FitInput& in, int64_t nb) override;
};

}  // namespace wush

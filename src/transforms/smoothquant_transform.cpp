#include "transforms/smoothquant_transform.h"

namespace wush {

at::Tensor SmoothQuantTransform::fit_blocks(const FitInput& in, int64_t nb) {
  const at::Tensor ax = in.x_absmax;                // [Cp]
  const at::Tensor aw = in.W.abs().amax(0);         // [Cp]
  at::Tensor s = ax.pow(kAlpha) / aw.pow(1.0 - kAlpha);
  s = at::where((ax > 0) & (aw > 0), s, at::ones_like(s));
  return at::diag_embed((1.0 / s).reshape({nb, in.group}));
}

}  // namespace wush

#include "transforms/wush_local_transform.h"

#include "transforms/block_linalg.h"
#include "transforms/wush_block.h"

namespace wush {

at::Tensor wush_local_weight_grams(const FitInput& in, int64_t nb) {
  const int64_t G = in.group, R = in.W.size(0), C = in.channels;
  const at::Tensor Wt = column_blocks_t(in.W, G);                   // W_j^T [nb, G, R]
  at::Tensor Gw = at::matmul(Wt, Wt.transpose(-2, -1)) / double(R);  // [nb, G, G]
  if (C < nb * G) {
    const double mean_diag = in.W.narrow(1, 0, C).pow(2).sum(0).mean().item<double>() / R;
    fill_padded_diagonal(Gw, C, mean_diag > 0 ? kDampFraction * mean_diag : 1.0);
  }
  return Gw;
}

at::Tensor WushLocalTransform::fit_blocks(const FitInput& in, int64_t nb) {
  const at::Tensor Gw = wush_local_weight_grams(in, nb);
  WushBlockOptions opt;
  opt.damp = in.damp;
  opt.round_bf16 = false;  // Transform::fit rounds
  return wush_local_block(Gw, diagonal_blocks(in.H, in.group), opt, in.layer);
}

}  // namespace wush

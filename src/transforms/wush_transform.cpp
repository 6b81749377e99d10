#include "transforms/wush_transform.h"

#include "transforms/block_linalg.h"
#include "transforms/wush_block.h"

namespace wush {

at::Tensor WushTransform::fit_blocks(const FitInput& in, int64_t nb) {
  const int64_t G = in.group;
  const at::Tensor U = damped_upper_cholesky(in.H, in.damp, in.layer);  // Hs = U^T U
  const at::Tensor Ujj = diagonal_blocks(U, G);                          // [nb, G, G]
  const at::Tensor Y = at::matmul(Ujj, column_blocks_t(in.W, G));        // U_jj W_j^T [nb, G, R]
  WushBlockOptions opt;
  opt.hadamard = hadamard_;
  opt.damp = in.damp;
  opt.round_bf16 = false;  // Transform::fit rounds
  return wush_block(Ujj, Y, opt, in.layer);
}

}  // namespace wush

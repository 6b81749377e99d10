// Initial LATMiX transforms (REFERENCE.md §5): block-diagonal, block = the MX group G (head_dim
// for t2 when it is smaller), each block represented exactly in the parameterization
// (AffineTransform::from_matrix: the pivoted LU of the block for lu, QR + real matrix log for qr),
// then small Gaussian noise on the off-block parameters (strictly lower/upper entries of L and U
// for lu; of G and R for qr), so that training can leave the block structure. Shifts start at 0.
//   hadamard:   a random Hadamard block, H_b / sqrt(b) diag(random signs) (paper's choice for lu);
//               blocks whose size is not a power of two get a Haar orthogonal block.
//   orthogonal: a Haar random orthogonal block (paper's choice for qr).
//   wush:       (ours) the wush-local block of REFERENCE §2 from calibration statistics:
//               t1 block j: Gx = the second moment of the gain-free normalized stream h / rms(h)
//               over every layer's two norms, Gw = mean over every consumer (q, k, v, gate, up of
//               every layer) of W'^T W' / R with W' = W diag(g) (the folded weights);
//               t2 of layer l: Gx = the per-head second moment of the attention output, Gw = the
//               mean over heads of W_o,h^T W_o,h / H. No bf16 rounding.
#pragma once
#include <ATen/ATen.h>

#include <string>

#include "latmix/latmix_transforms.h"
#include "model/model.h"

namespace wush::latmix {

enum class Init { Hadamard, Orthogonal, Wush };
Init parse_init(const std::string& s);  // "hadamard" | "orthogonal" | "wush"
std::string init_name(Init i);

struct InitOptions {
  Param param = Param::LU;
  Init init = Init::Hadamard;
  int64_t group = 32;
  double noise = 1e-3;   // std of the off-block parameter noise
  uint64_t seed = 0;
};

// fp64 CPU transforms (the trainer converts them). calib: int64 [n, L] windows, used by wush
// only (the first `wush_windows` of them).
LatmixTransforms init_latmix(const Model& m, const InitOptions& opt, const at::Tensor& calib = {},
                             int64_t wush_windows = 16);

// The block-diagonal [n, n] target of one transform, blocks of `block` (the last may be smaller).
at::Tensor random_block_diagonal(int64_t n, int64_t block, Init init, at::Generator& gen);

}  // namespace wush::latmix

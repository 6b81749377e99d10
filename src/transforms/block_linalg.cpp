#include "transforms/block_linalg.h"

#include <cmath>

#include "core/error.h"

namespace wush {

at::Tensor damp(const at::Tensor& M, double fraction) {
  at::Tensor lam = fraction * M.diagonal(0, -2, -1).mean(-1, /*keepdim=*/true);  // [..., 1]
  at::Tensor out = M.clone();
  out.diagonal(0, -2, -1).add_(lam);
  return out;
}

at::Tensor diagonal_blocks(const at::Tensor& M, int64_t G) {
  const int64_t n = M.size(0);
  WUSH_ASSERT(M.dim() == 2 && M.size(1) == n && n % G == 0);
  const int64_t nb = n / G;
  // view [nb, G, nb, G]; diagonal over dims (0, 2) -> [G, G, nb]
  return M.reshape({nb, G, nb, G}).diagonal(0, 0, 2).permute({2, 0, 1}).contiguous();
}

at::Tensor column_blocks_t(const at::Tensor& W, int64_t G) {
  WUSH_ASSERT(W.dim() == 2 && W.size(1) % G == 0);
  const int64_t nb = W.size(1) / G;
  return W.reshape({W.size(0), nb, G}).permute({1, 2, 0});  // a view: bmm/solve take strides
}

at::Tensor pad_last(const at::Tensor& x, int64_t Cp) {
  const int64_t C = x.size(-1);
  WUSH_ASSERT(Cp >= C);
  if (Cp == C) return x;
  std::vector<int64_t> shape = x.sizes().vec();
  shape.back() = Cp - C;
  return at::cat({x, at::zeros(shape, x.options())}, -1);
}

at::Tensor pad_second_moment(const at::Tensor& M, int64_t Cp) {
  const int64_t C = M.size(0);
  if (Cp == C) return M;
  at::Tensor out = at::zeros({Cp, Cp}, M.options());
  out.narrow(0, 0, C).narrow(1, 0, C).copy_(M);
  const double lam = kDampFraction * M.diagonal().mean().item<double>();
  out.diagonal().narrow(0, C, Cp - C).fill_(lam > 0 ? lam : 1.0);
  return out;
}

void fill_padded_diagonal(at::Tensor& blocks, int64_t C, double value) {
  const int64_t G = blocks.size(-1);
  for (int64_t c = C; c < blocks.size(0) * G; ++c) blocks[c / G][c % G][c % G].fill_(value);
}

at::Tensor canonical_signs(const at::Tensor& V) {
  at::Tensor idx = V.abs().argmax(-2, /*keepdim=*/true);  // [..., 1, k]
  at::Tensor lead = V.gather(-2, idx);                     // [..., 1, k]
  return V * at::where(lead < 0, -at::ones_like(lead), at::ones_like(lead));
}

at::Tensor round_to_bf16(const at::Tensor& x) { return x.to(at::kBFloat16).to(x.scalar_type()); }

void check_finite(const at::Tensor& t, const std::string& what, const char* tensor) {
  // fast path: a sum propagates NaN and Inf (one pass, no bool temporary); only a sum that is
  // not finite (or overflows) is checked element by element
  if (std::isfinite(t.sum().item<double>())) return;
  WUSH_CHECK(at::isfinite(t).all().item<bool>(), "%s: %s contains NaN or Inf", what.c_str(),
             tensor);
}

}  // namespace wush

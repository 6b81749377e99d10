#include "transforms/hadamard.h"

#include <cmath>

#include "core/error.h"

namespace wush {

bool is_power_of_two(int64_t n) { return n > 0 && (n & (n - 1)) == 0; }

at::Tensor hadamard_matrix(int64_t G) {
  WUSH_CHECK(is_power_of_two(G),
             "Hadamard block size %lld must be a power of two (Sylvester construction)",
             (long long)G);
  at::Tensor h = at::empty({G, G}, at::kDouble);
  auto a = h.accessor<double, 2>();
  const double v = 1.0 / std::sqrt(double(G));
  for (int64_t i = 0; i < G; ++i)
    for (int64_t k = 0; k < G; ++k) a[i][k] = (__builtin_popcountll(uint64_t(i & k)) & 1) ? -v : v;
  return h;
}

}  // namespace wush

// The normalized Sylvester Hadamard matrix (REFERENCE.md §2, "hadamard"): H_G / sqrt(G) in the
// order of scipy.linalg.hadamard (H_1 = [1], H_2n = [[H_n, H_n], [H_n, -H_n]]), i.e.
// entry (i, k) = (-1)^popcount(i & k) / sqrt(G).
#pragma once
#include <ATen/ATen.h>

namespace wush {

bool is_power_of_two(int64_t n);

// fp64 [G, G], orthonormal and symmetric. G must be a power of two (wush::Error otherwise).
at::Tensor hadamard_matrix(int64_t G);

}  // namespace wush

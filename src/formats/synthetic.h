// Seeded synthetic data for format studies and tests (wush quant-error, tests/formats_*):
// the same seed gives the same tensor on every machine (own generators, no std:: distributions).
#pragma once
#include <ATen/ATen.h>

#include <cstdint>
#include <string>
#include <vector>

namespace wush {

enum class Dist { Gaussian, Laplace, StudentT3, Outliers };

// N(0,1); Laplace(0, 1/sqrt(2)) (unit variance); Student-t with 3 degrees of freedom; and N(0,1)
// with 1% of the elements multiplied by 20 (activation-like outliers).
at::Tensor synthetic(Dist d, int64_t rows, int64_t cols, uint64_t seed);

const std::vector<std::pair<Dist, std::string>>& all_dists();  // name: gaussian, laplace, ...
Dist parse_dist(const std::string& name);                      // unknown -> error naming the valid ones

}  // namespace wush

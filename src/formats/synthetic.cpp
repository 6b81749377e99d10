// Seeded synthetic data (synthetic.h): splitmix64 -> uniform doubles -> Box-Muller / inverse CDF.
#include "formats/synthetic.h"

#include <cmath>
#include <sstream>

#include "core/error.h"

namespace wush {
namespace {

struct Rng {
  uint64_t s;
  uint64_t next() {  // splitmix64 (Steele, Lea, Flood 2014)
    uint64_t z = (s += 0x9E3779B97F4A7C15ull);
    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
    return z ^ (z >> 31);
  }
  double uniform() { return (double(next() >> 11) + 0.5) * 0x1.0p-53; }  // in (0, 1)
  double normal() {  // Box-Muller, one value per call
    return std::sqrt(-2.0 * std::log(uniform())) * std::cos(2.0 * M_PI * uniform());
  }
};

}  // namespace

at::Tensor synthetic(Dist d, int64_t rows, int64_t cols, uint64_t seed) {
  WUSH_CHECK(rows >= 0 && cols >= 0, "synthetic: rows %lld and cols %lld must be >= 0",
             (long long)rows, (long long)cols);
  at::Tensor t = at::empty({rows, cols}, at::kFloat);
  float* p = t.data_ptr<float>();
  Rng r{seed * 0x2545F4914F6CDD1Dull + 1};
  for (int64_t i = 0; i < rows * cols; ++i) {
    double v = 0;
    switch (d) {
      case Dist::Gaussian: v = r.normal(); break;
      case Dist::Laplace: {
        const double u = r.uniform() - 0.5;  // inverse CDF, scale b = 1/sqrt(2)
        v = -std::copysign(std::log(1.0 - 2.0 * std::fabs(u)), u) / std::sqrt(2.0);
        break;
      }
      case Dist::StudentT3: {
        const double z = r.normal(), a = r.normal(), b = r.normal(), c = r.normal();
        v = z / std::sqrt((a * a + b * b + c * c) / 3.0);
        break;
      }
      case Dist::Outliers: v = r.normal() * (r.uniform() < 0.01 ? 20.0 : 1.0); break;
    }
    p[i] = float(v);
  }
  return t;
}

const std::vector<std::pair<Dist, std::string>>& all_dists() {
  static const std::vector<std::pair<Dist, std::string>> v = {{Dist::Gaussian, "gaussian"},
                                                              {Dist::Laplace, "laplace"},
                                                              {Dist::StudentT3, "student-t"},
                                                              {Dist::Outliers, "outliers"}};
  return v;
}

Dist parse_dist(const std::string& name) {
  std::ostringstream valid;
  for (auto& [d, n] : all_dists()) {
    if (n == name) return d;
    valid << (valid.tellp() > 0 ? ", " : "") << n;
  }
  WUSH_FAIL("unknown distribution '%s' (valid: %s)", name.c_str(), valid.str().c_str());
}

}  // namespace wush

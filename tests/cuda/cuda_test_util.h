// Helpers of the CUDA tests: device detection (tests skip without a GPU), device buffers,
// random activations of several distributions, transforms, and an independent decoder of the
// formats (REFERENCE.md §1) for float64 emulation.
#pragma once
#include <cuda_runtime_api.h>
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <cstring>
#include <random>
#include <vector>

#include "cuda/wush_cuda.h"

namespace wush {
namespace cuda {
namespace test {

inline bool has_device() {
  int n = 0;
  return cudaGetDeviceCount(&n) == cudaSuccess && n > 0;
}

#define WUSH_REQUIRE_DEVICE() \
  if (!::wush::cuda::test::has_device()) GTEST_SKIP() << "no CUDA device"

#define WUSH_CUDA_OK(call)                                                                       \
  do {                                                                                         \
    cudaError_t e_ = (call);                                                                   \
    ASSERT_EQ(e_, cudaSuccess) << #call << ": " << cudaGetErrorString(e_) << " | "             \
                               << ::wush::cuda::last_error_message();                          \
  } while (0)

template <class T>
struct DevBuf {
  T* p = nullptr;
  size_t n = 0;
  explicit DevBuf(size_t count) : n(count) {
    if (cudaMalloc(reinterpret_cast<void**>(&p), std::max<size_t>(1, n) * sizeof(T)) != cudaSuccess) p = nullptr;
  }
  ~DevBuf() { cudaFree(p); }
  DevBuf(const DevBuf&) = delete;
  DevBuf& operator=(const DevBuf&) = delete;
  void upload(const std::vector<T>& h) { cudaMemcpy(p, h.data(), n * sizeof(T), cudaMemcpyHostToDevice); }
  std::vector<T> download() const {
    std::vector<T> h(n);
    cudaMemcpy(h.data(), p, n * sizeof(T), cudaMemcpyDeviceToHost);
    return h;
  }
  void fill_bytes(int byte) { cudaMemset(p, byte, n * sizeof(T)); }
};

inline uint16_t f2bf(float f) {  // RNE, finite
  uint32_t u;
  std::memcpy(&u, &f, 4);
  u += 0x7FFFu + ((u >> 16) & 1u);
  return uint16_t(u >> 16);
}
inline float bf2f(uint16_t b) {
  uint32_t u = uint32_t(b) << 16;
  float f;
  std::memcpy(&f, &u, 4);
  return f;
}

enum class Dist { Gaussian, HeavyTailed, Outliers };

// bf16 activations [M, K]. HeavyTailed: Student-t(2)-like with groups of zeros; Outliers:
// Gaussian with ~1% of entries scaled by up to 1e3.
inline std::vector<uint16_t> random_x(int64_t M, int64_t K, Dist d, uint32_t seed) {
  std::mt19937 rng(seed);
  std::normal_distribution<float> nd(0.f, 1.f);
  std::uniform_real_distribution<float> ud(1e-4f, 1.f);
  std::vector<uint16_t> x(size_t(M * K));
  for (size_t i = 0; i < x.size(); ++i) {
    float v = nd(rng);
    if (d == Dist::HeavyTailed) v = v / std::sqrt(ud(rng)) * 0.5f;
    if (d == Dist::Outliers && ud(rng) < 0.01f) v *= 1000.f * ud(rng);
    x[i] = f2bf(v);
  }
  if (d == Dist::HeavyTailed)  // whole zero groups (and zero chunks when K allows)
    for (int64_t m = 0; m < M; m += 3)
      for (int64_t k = 0; k < std::min<int64_t>(K, 64); ++k) x[size_t(m * K + k)] = 0;
  return x;
}

// Matrices [n, G, G] with bf16-representable entries (the reference rounds T_j to bf16, §2):
// random (Gaussian / sqrt(G)) or the normalized Sylvester Hadamard (n must be 1).
inline std::vector<float> random_T(int64_t n, int G, uint32_t seed) {
  std::mt19937 rng(seed);
  std::normal_distribution<float> nd(0.f, 1.f / std::sqrt(float(G)));
  std::vector<float> T(size_t(n * G * G));
  for (float& t : T) t = bf2f(f2bf(nd(rng)));
  return T;
}
// Matrices [n, G, G] with arbitrary fp32 entries (24 significant bits: the 3-term split path).
inline std::vector<float> random_T_fp32(int64_t n, int G, uint32_t seed) {
  std::mt19937 rng(seed);
  std::normal_distribution<float> nd(0.f, 1.f / std::sqrt(float(G)));
  std::vector<float> T(size_t(n * G * G));
  for (float& t : T) t = nd(rng);
  return T;
}
inline std::vector<float> hadamard_T(int G) {
  std::vector<float> T(size_t(G * G));
  for (int i = 0; i < G; ++i)
    for (int k = 0; k < G; ++k) T[size_t(i * G + k)] = bf2f(f2bf((__builtin_popcount(i & k) & 1 ? -1.f : 1.f) / std::sqrt(float(G))));
  return T;
}

// ---- independent decoding (REFERENCE.md §1) for float64 emulation -----------------------------
inline double e2m1_value(uint8_t c) {
  static const double mag[8] = {0, 0.5, 1, 1.5, 2, 3, 4, 6};
  return (c & 8) ? -mag[c & 7] : mag[c & 7];
}
inline double e4m3_value(uint8_t b) {
  const int e = (b >> 3) & 15, m = b & 7;
  const double a = e == 0 ? std::ldexp(double(m), -9) : std::ldexp(1.0 + m / 8.0, e - 7);
  return (b & 0x80) ? -a : a;
}
// Dequantized value of element k of a row (codes packed, scales per group), in float64.
inline double dequant(const QuantConfig& cfg, const uint8_t* codes, const uint8_t* scales, int64_t k) {
  const uint8_t c = (codes[k / 2] >> (4 * (k & 1))) & 15;
  const int G = group_size(cfg.format);
  const uint8_t s = scales[k / G];
  switch (cfg.format) {
    case QFormat::MXFP4: return e2m1_value(c) * std::ldexp(1.0, s - 127) / 3.0;
    case QFormat::MXFP4_OCP: return e2m1_value(c) * std::ldexp(1.0, s - 127);
    case QFormat::MXINT4: return double(int(c & 7) - int(c & 8)) * std::ldexp(1.0, s - 127);
    case QFormat::NVFP4: return e2m1_value(c) * e4m3_value(s) / cfg.nvfp4_global;
  }
  return 0;
}

inline const std::vector<QFormat>& all_qformats() {
  static const std::vector<QFormat> f = {QFormat::MXFP4, QFormat::MXFP4_OCP, QFormat::NVFP4, QFormat::MXINT4};
  return f;
}

}  // namespace test
}  // namespace cuda
}  // namespace wush

// Device-side random fills (and the Hadamard matrix) shared by the CUDA benchmarks (src/cuda/kernel_bench.cu, `wush bench
// kernels`; bench/cuda/w4a4_bench.cu, the stand-alone program): a counter-based hash turned into
// N(0, 1) by Box-Muller, so that a buffer's contents depend only on (index, seed).
#pragma once
#include <cuda_bf16.h>
#include <cuda_runtime.h>

#include <cmath>
#include <cstddef>
#include <cstdint>
#include <vector>

namespace wush {
namespace cuda {
namespace bench_fill {
namespace {

__device__ __forceinline__ float hash_gauss(uint64_t i, uint32_t seed) {
  auto h = [](uint64_t x) {
    x ^= x >> 33; x *= 0xff51afd7ed558ccdULL; x ^= x >> 33; x *= 0xc4ceb9fe1a85ec53ULL; x ^= x >> 33;
    return x;
  };
  const uint64_t a = h(i * 2 + (uint64_t(seed) << 40)), b = h(i * 2 + 1 + (uint64_t(seed) << 40));
  const float u1 = (float(a >> 40) + 1.0f) / 16777217.0f, u2 = float(b >> 40) / 16777216.0f;
  return sqrtf(-2.0f * logf(u1)) * cospif(2.0f * u2);
}

__global__ void fill_bf16(__nv_bfloat16* p, size_t n, uint32_t seed, float scale) {
  for (size_t i = size_t(blockIdx.x) * blockDim.x + threadIdx.x; i < n; i += size_t(gridDim.x) * blockDim.x)
    p[i] = __float2bfloat16_rn(hash_gauss(i, seed) * scale);
}

// Transform matrices hold bf16 values (REFERENCE §2), stored as fp32.
__global__ void fill_T(float* p, size_t n, uint32_t seed, float scale) {
  for (size_t i = size_t(blockIdx.x) * blockDim.x + threadIdx.x; i < n; i += size_t(gridDim.x) * blockDim.x)
    p[i] = __bfloat162float(__float2bfloat16_rn(hash_gauss(i, seed) * scale));
}

// The normalised Walsh-Hadamard matrix of order 32 (the shared transform), rounded to bf16 values
// as every transform is (REFERENCE §2), row-major on the host.
inline std::vector<float> hadamard32() {
  std::vector<float> H(32 * 32);
  for (int i = 0; i < 32; ++i)
    for (int k = 0; k < 32; ++k)
      H[i * 32 + k] = __bfloat162float(__float2bfloat16_rn((__builtin_popcount(i & k) & 1 ? -1.f : 1.f) / std::sqrt(32.f)));
  return H;
}

}  // namespace
}  // namespace bench_fill
}  // namespace cuda
}  // namespace wush

// Row fold (wush_cuda.h, fold_rows_cuda): the VEC128 chunk operand -> the row-wise operand of
// cuBLASLt's OUTER_VEC_32F GEMM. REFERENCE.md §7's exact-span rule, applied to whole rows: an
// element q * 2^(E_g - E_chunk) becomes q * 2^(E_g - E_row), exact in E4M3 while E_row - E_g <=
// exact_span. Memory-bound: one CTA per row, 16-byte loads and stores; same operation order as
// fold_rows_ref (fused_quantize_ref.cpp).
#include <cuda_runtime.h>

#include "cuda/internal.h"
#include "cuda/quant_codec.cuh"

namespace wush {
namespace cuda {
namespace {

constexpr int kThreads = 256;

__global__ void __launch_bounds__(kThreads) fold_rows_kernel(const uint8_t* __restrict__ in,
                                                             const float* __restrict__ chunk, int64_t Mp,
                                                             int64_t K, uint8_t* __restrict__ out,
                                                             float* __restrict__ row_scales,
                                                             unsigned long long* inexact_rows) {
  extern __shared__ float factor[];  // [nch]: 2^(E_chunk - E_row)
  __shared__ float warp_max[kThreads / 32];
  const int64_t r = blockIdx.x;
  const int nch = int((K + detail::kChunk - 1) / detail::kChunk);
  float m = 0.0f;
  for (int c = threadIdx.x; c < nch; c += kThreads) m = fmaxf(m, chunk[c * Mp + r]);
  for (int o = 16; o > 0; o >>= 1) m = fmaxf(m, __shfl_xor_sync(0xffffffffu, m, o));
  if ((threadIdx.x & 31) == 0) warp_max[threadIdx.x >> 5] = m;
  __syncthreads();
  float row = warp_max[0];
  for (int w = 1; w < kThreads / 32; ++w) row = fmaxf(row, warp_max[w]);
  for (int c = threadIdx.x; c < nch; c += kThreads) factor[c] = row > 0.0f ? chunk[c * Mp + r] / row : 0.0f;
  if (threadIdx.x == 0) row_scales[r] = row;
  __syncthreads();
  bool inexact = false;
  const uint4* src = reinterpret_cast<const uint4*>(in + r * K);
  uint4* dst = reinterpret_cast<uint4*>(out + r * K);
  for (int64_t v = threadIdx.x; v < K / 16; v += kThreads) {
    const float f = factor[(v * 16) / detail::kChunk];
    uint4 w = src[v];
    uint32_t* word = reinterpret_cast<uint32_t*>(&w);
#pragma unroll
    for (int j = 0; j < 4; ++j) {
      uint32_t o = 0;
#pragma unroll
      for (int b = 0; b < 4; ++b) {
        const float x = dev::e4m3_decode((word[j] >> (8 * b)) & 0xFFu) * f;
        const uint32_t e = dev::e4m3_encode_sat(x);
        inexact |= dev::e4m3_decode(e) != x;
        o |= e << (8 * b);
      }
      word[j] = o;
    }
    dst[v] = w;
  }
  if (__syncthreads_or(inexact) && threadIdx.x == 0 && inexact_rows) atomicAdd(inexact_rows, 1ull);
}

}  // namespace

cudaError_t fold_rows_cuda(const uint8_t* operand, const float* chunk_scales, int64_t M, int64_t K, uint8_t* out,
                           float* row_scales, unsigned long long* inexact_rows, cudaStream_t stream) {
  const char* fn = "fold_rows_cuda";
  if (M <= 0 || K <= 0 || K % 16 != 0)
    return detail::fail(cudaErrorInvalidValue, "%s: M = %lld, K = %lld: need M > 0 and K a positive multiple of 16", fn,
                        (long long)M, (long long)K);
  if (!operand || !chunk_scales || !out || !row_scales)
    return detail::fail(cudaErrorInvalidValue, "%s: operand, chunk_scales, out and row_scales must be non-null", fn);
  if (!detail::aligned16(operand) || !detail::aligned16(out))
    return detail::fail(cudaErrorInvalidValue, "%s: operand and out must be 16-byte aligned", fn);
  if (K > (int64_t(1) << 20))
    return detail::fail(cudaErrorInvalidValue, "%s: K = %lld above 2^20 (chunk factors live in shared memory)", fn, (long long)K);
  const int64_t Mp = operand_rows(M);
  const size_t smem = size_t(detail::ceil_div(K, detail::kChunk)) * sizeof(float);
  fold_rows_kernel<<<unsigned(Mp), kThreads, smem, stream>>>(operand, chunk_scales, Mp, K, out, row_scales, inexact_rows);
  return detail::check_cuda(cudaGetLastError(), fn);
}

}  // namespace cuda
}  // namespace wush

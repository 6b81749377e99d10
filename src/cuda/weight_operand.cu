// Offline weight preparation (REFERENCE.md §7): quantized weight codes + scales -> the GEMM
// operand of the format (FP8 E4M3 + one fp32 scale per 128 of K for MX formats; bf16 q*s for
// NVFP4). One thread per (row, 128-chunk); the same device codec as the fused quantizer, so the
// operand equals the one it writes for activations.
#include "cuda/internal.h"
#include "cuda/quant_codec.cuh"

namespace wush {
namespace cuda {
namespace {

using detail::kChunk;
constexpr int kThreads = 256;

template <QFormat F>
__global__ void __launch_bounds__(kThreads)
    weight_operand_kernel(const uint8_t* codes, const uint8_t* scales, int64_t N, int64_t K,
                          void* operand, float* chunk_scales, unsigned long long* counters) {
  constexpr int G = F == QFormat::NVFP4 ? 16 : 32;
  constexpr int GPC = kChunk / G;
  const int64_t n = int64_t(blockIdx.x) * kThreads + threadIdx.x;
  const int64_t Np = operand_rows(N);
  if (n >= Np) return;
  const int64_t c = blockIdx.y, k0 = c * kChunk;
  const int ng = int((K - k0 < kChunk ? K - k0 : kChunk) / G);
  if (n >= N) {  // padding row of the operand: zeros
    dev::zero_chunk_row<F == QFormat::NVFP4 ? 2 : 1>(operand, chunk_scales, n, Np, K, c, ng * G);
    return;
  }
  const uint8_t* src = codes + (n * K + k0) / 2;
  const uint8_t* sc = scales + n * (K / G) + k0 / G;

  dev::GroupCodes<G> gc[GPC];
  int E[GPC];
#pragma unroll
  for (int g = 0; g < GPC; ++g) {
    if (g >= ng) break;
    if constexpr (G == 32) {
      const uint4 v = *reinterpret_cast<const uint4*>(src + g * 16);
      gc[g].w[0] = v.x; gc[g].w[1] = v.y; gc[g].w[2] = v.z; gc[g].w[3] = v.w;
    } else {
      const uint2 v = *reinterpret_cast<const uint2*>(src + g * 8);
      gc[g].w[0] = v.x; gc[g].w[1] = v.y;
    }
    E[g] = int(sc[g]) - 127;
    if constexpr (F == QFormat::NVFP4) {
      if (operand)
        dev::store_bf16_group<G>(gc[g], dev::e4m3_decode(sc[g]),
                                 static_cast<__nv_bfloat16*>(operand) + n * K + k0 + g * G);
    }
  }
  if constexpr (F != QFormat::NVFP4) {
    int emax = -127, emin = 1000;
#pragma unroll
    for (int g = 0; g < GPC; ++g) {
      if (g >= ng) break;
      emax = max(emax, E[g]);
      if (gc[g].nonzero()) emin = min(emin, E[g]);
    }
    if (operand) {
#pragma unroll
      for (int g = 0; g < GPC; ++g) {
        if (g >= ng) break;
        dev::store_fp8_group<F, G>(gc[g], emax - E[g], static_cast<uint8_t*>(operand) + n * K + k0 + g * G);
      }
    }
    if (chunk_scales) chunk_scales[c * Np + n] = dev::pow2i(emax);
    if (counters) dev::count_warp(emin != 1000 && emax - emin > (F == QFormat::MXINT4 ? 9 : 8),
                                  counters + kSpanExceeded);
  }
}

}  // namespace

cudaError_t prepare_weight_operand_cuda(const uint8_t* codes, const uint8_t* scales, int64_t N,
                                        int64_t K, const QuantConfig& cfg, void* operand,
                                        float* chunk_scales, unsigned long long* counters,
                                        cudaStream_t stream) {
  const char* fn = "prepare_weight_operand_cuda";
  if (cudaError_t e = detail::check_shape(fn, N, K, cfg)) return e;
  if (!codes || !scales || !detail::aligned16(codes))
    return detail::fail(cudaErrorInvalidValue, "%s: codes (16-byte aligned) and scales are required", fn);
  if (operand && !detail::aligned16(operand))
    return detail::fail(cudaErrorInvalidValue, "%s: operand must be 16-byte aligned", fn);
  if (chunk_scales && cfg.format == QFormat::NVFP4)
    return detail::fail(cudaErrorInvalidValue, "%s: nvfp4 has no chunk scales (its operand is bf16)", fn);
  if (N == 0) return cudaSuccess;
  const dim3 grid(unsigned(detail::ceil_div(operand_rows(N), kThreads)), unsigned(detail::ceil_div(K, kChunk)));
  switch (cfg.format) {
    case QFormat::MXFP4:
      weight_operand_kernel<QFormat::MXFP4><<<grid, kThreads, 0, stream>>>(codes, scales, N, K, operand, chunk_scales, counters);
      break;
    case QFormat::MXFP4_OCP:
      weight_operand_kernel<QFormat::MXFP4_OCP><<<grid, kThreads, 0, stream>>>(codes, scales, N, K, operand, chunk_scales, counters);
      break;
    case QFormat::NVFP4:
      weight_operand_kernel<QFormat::NVFP4><<<grid, kThreads, 0, stream>>>(codes, scales, N, K, operand, chunk_scales, counters);
      break;
    case QFormat::MXINT4:
      weight_operand_kernel<QFormat::MXINT4><<<grid, kThreads, 0, stream>>>(codes, scales, N, K, operand, chunk_scales, counters);
      break;
  }
  return detail::check_cuda(cudaGetLastError(), fn);
}

}  // namespace cuda
}  // namespace wush

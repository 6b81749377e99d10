// Fused block transform + quantize (REFERENCE.md §2 x~_j = T_j x_j, §1 formats, §7 operand):
// one read of the bf16 activations, one write of each requested output.
//
// Work split: a thread owns one token and one 128-wide chunk of K (4 groups of 32 or 8 of 16);
// the 32 lanes of a warp take 32 tokens of the same chunk, so every read of T from shared
// memory is a warp-uniform broadcast. A CTA loads the chunk's matrices once (transposed, so that
// column k of T_j is contiguous) and walks several token tiles. The transform is G fp32 fmas
// per output in k order (bit-identical to the reference); the chunk's FP8 operand needs E_max
// over its groups, so the group codes stay in registers until the chunk is done.
#include <algorithm>

#include "cuda/internal.h"
#include "cuda/quant_codec.cuh"

namespace wush {
namespace cuda {
namespace {

using detail::kChunk;
constexpr int kThreads = 256;

template <QFormat F>
struct FormatTraitsDev {
  static constexpr int G = F == QFormat::NVFP4 ? 16 : 32;
};

struct KernelArgs {
  const __nv_bfloat16* x;
  int64_t M, K;
  const float* T;
  int64_t t_block_stride;  // matrices between consecutive blocks: 1 per block, 0 shared
  float g;                 // NVFP4 global scale
  QuantizeOutputs out;
  int tiles_per_cta;
};

template <QFormat F, bool kTransform>
__global__ void __launch_bounds__(kThreads) fused_quantize_kernel(const KernelArgs a) {
  constexpr int G = FormatTraitsDev<F>::G;
  constexpr int GPC = kChunk / G;  // groups per chunk
  extern __shared__ float Ts[];    // [GPC][k][i]: T_j transposed

  const int64_t c = blockIdx.y;
  const int64_t k0 = c * kChunk;
  const int ng = int((a.K - k0 < kChunk ? a.K - k0 : kChunk) / G);
  const int64_t nbk = a.K / G;

  if constexpr (kTransform) {
    const int nmat = a.t_block_stride == 0 ? 1 : ng;
    for (int idx = threadIdx.x; idx < nmat * G * G; idx += kThreads) {  // consecutive i: no bank conflicts
      const int g = idx / (G * G), r = idx % (G * G), k = r / G, i = r % G;
      const float* Tj = a.T + ((k0 / G + g) * a.t_block_stride) * G * G;
      Ts[g * G * G + k * G + i] = Tj[i * G + k];
    }
    __syncthreads();
  }

  const bool want_operand = a.out.operand != nullptr;
  const int64_t Mp = operand_rows(a.M);
  for (int tile = 0; tile < a.tiles_per_cta; ++tile) {
    const int64_t tok = (int64_t(blockIdx.x) * a.tiles_per_cta + tile) * kThreads + threadIdx.x;
    if (tok >= Mp) break;
    if (tok >= a.M) {  // padding row of the operand: zeros
      dev::zero_chunk_row<F == QFormat::NVFP4 ? 2 : 1>(a.out.operand, a.out.chunk_scales, tok, Mp, a.K, c, ng * G);
      continue;
    }
    const __nv_bfloat16* xr = a.x + tok * a.K + k0;

    dev::GroupCodes<G> stash[GPC];
    int E[GPC];
    unsigned nonfinite = 0, overflow = 0;  // groups, as the reference counts them
#pragma unroll
    for (int g = 0; g < GPC; ++g) {
      if (g >= ng) break;
      // ---- load x_j (G bf16 = G/8 16-byte loads) and transform
      float y[G];
      {
        float xv[G];
#pragma unroll
        for (int v = 0; v < G / 8; ++v) {
          const uint4 raw = *reinterpret_cast<const uint4*>(xr + g * G + v * 8);
          const uint32_t w[4] = {raw.x, raw.y, raw.z, raw.w};
#pragma unroll
          for (int u = 0; u < 4; ++u) {
            xv[v * 8 + 2 * u] = __uint_as_float(w[u] << 16);
            xv[v * 8 + 2 * u + 1] = __uint_as_float(w[u] & 0xFFFF0000u);
          }
        }
        if constexpr (kTransform) {
          const float* Tg = Ts + (a.t_block_stride == 0 ? 0 : g) * G * G;
#pragma unroll
          for (int i = 0; i < G; ++i) y[i] = 0.0f;
#pragma unroll
          for (int k = 0; k < G; ++k) {
            const float xk = xv[k];
#pragma unroll
            for (int i = 0; i < G; i += 4) {
              const float4 t4 = *reinterpret_cast<const float4*>(Tg + k * G + i);
              y[i] = __fmaf_rn(t4.x, xk, y[i]);
              y[i + 1] = __fmaf_rn(t4.y, xk, y[i + 1]);
              y[i + 2] = __fmaf_rn(t4.z, xk, y[i + 2]);
              y[i + 3] = __fmaf_rn(t4.w, xk, y[i + 3]);
            }
          }
        } else {
#pragma unroll
          for (int i = 0; i < G; ++i) y[i] = xv[i];
        }
      }
      // ---- group scale (§1)
      uint32_t abits = 0;
#pragma unroll
      for (int i = 0; i < G; ++i) abits = max(abits, __float_as_uint(y[i]) & 0x7FFFFFFFu);
      nonfinite += abits >= 0x7F800000u;
      const float amax = __uint_as_float(abits);
      uint32_t scode;
      float s = 0.0f;  // NVFP4 decoded scale
      dev::GroupCodes<G>& gc = stash[g];
#pragma unroll
      for (int w = 0; w < G / 8; ++w) gc.w[w] = 0;
      if constexpr (F == QFormat::NVFP4) {
        const float t = (a.g * amax) / 6.0f;
        overflow += t > 448.0f;
        scode = dev::e4m3_encode_sat(t);
        s = dev::e4m3_decode(scode);
        if (s != 0.0f) {
#pragma unroll
          for (int i = 0; i < G; ++i) gc.w[i >> 3] |= dev::e2m1_encode((y[i] * a.g) / s) << (4 * (i & 7));
        }
      } else {
        E[g] = dev::e8m0_exponent(abits, F == QFormat::MXFP4 ? 0 : -2);
        scode = uint32_t(E[g] + 127);
        const float mul = F == QFormat::MXFP4 ? 3.0f * dev::pow2i(-E[g]) : dev::pow2i(-E[g]);
#pragma unroll
        for (int i = 0; i < G; ++i) {
          const float v = y[i] * mul;
          uint32_t code;
          if constexpr (F == QFormat::MXINT4) {
            code = uint32_t(max(-8, min(7, __float2int_rn(v)))) & 15u;
          } else {
            code = dev::e2m1_encode(v);
          }
          gc.w[i >> 3] |= code << (4 * (i & 7));
        }
      }
      // ---- stores of this group
      if (a.out.codes) {
        uint8_t* dst = a.out.codes + (tok * a.K + k0 + g * G) / 2;
        if constexpr (G == 32) *reinterpret_cast<uint4*>(dst) = make_uint4(gc.w[0], gc.w[1], gc.w[2], gc.w[3]);
        else *reinterpret_cast<uint2*>(dst) = make_uint2(gc.w[0], gc.w[1]);
      }
      if (a.out.scales) a.out.scales[tok * nbk + k0 / G + g] = uint8_t(scode);
      if constexpr (F == QFormat::NVFP4) {
        if (want_operand)
          dev::store_bf16_group<G>(gc, s, static_cast<__nv_bfloat16*>(a.out.operand) + tok * a.K + k0 + g * G);
      }
    }
    // ---- chunk operand (MX formats, §7) and counters
    bool span_exceeded = false;
    if constexpr (F != QFormat::NVFP4) {
      int emax = -127, emin = 1000;
#pragma unroll
      for (int g = 0; g < GPC; ++g) {
        if (g >= ng) break;
        emax = max(emax, E[g]);
        if (stash[g].nonzero()) emin = min(emin, E[g]);
      }
      span_exceeded = emin != 1000 && emax - emin > (F == QFormat::MXINT4 ? 9 : 8);
      if (want_operand) {
        uint8_t* dst = static_cast<uint8_t*>(a.out.operand) + tok * a.K + k0;
#pragma unroll
        for (int g = 0; g < GPC; ++g) {
          if (g >= ng) break;
          dev::store_fp8_group<F, G>(stash[g], emax - E[g], dst + g * G);
        }
      }
      if (a.out.chunk_scales) a.out.chunk_scales[c * Mp + tok] = dev::pow2i(emax);
    }
    if (a.out.counters) {
      if (F != QFormat::NVFP4) dev::count_warp(span_exceeded, a.out.counters + kSpanExceeded);
      if (F == QFormat::NVFP4) dev::count_warp(overflow, a.out.counters + kScaleOverflow);
      dev::count_warp(nonfinite, a.out.counters + kNonFinite);
    }
  }
}

template <QFormat F, bool kTransform>
cudaError_t launch(const KernelArgs& args, dim3 grid, cudaStream_t stream) {
  constexpr int G = FormatTraitsDev<F>::G;
  const size_t smem = kTransform ? size_t(kChunk / G) * G * G * sizeof(float) : 0;
  fused_quantize_kernel<F, kTransform><<<grid, kThreads, smem, stream>>>(args);
  return cudaGetLastError();
}

template <QFormat F>
cudaError_t launch_format(bool transform, const KernelArgs& args, dim3 grid, cudaStream_t s) {
  return transform ? launch<F, true>(args, grid, s) : launch<F, false>(args, grid, s);
}

}  // namespace

cudaError_t fused_transform_quantize_cuda(const __nv_bfloat16* x, int64_t M, int64_t K,
                                          const TransformSpec& t, const QuantConfig& cfg,
                                          const QuantizeOutputs& out, cudaStream_t stream) {
  const char* fn = "fused_transform_quantize_cuda";
  if (cudaError_t e = detail::check_shape(fn, M, K, cfg)) return e;
  const int G = group_size(cfg.format);
  if (t.T && t.num_blocks != 1 && t.num_blocks != K / G)
    return detail::fail(cudaErrorInvalidValue,
                        "%s: T has %lld matrices; expected 1 (shared) or K/G = %lld (per block)", fn,
                        (long long)t.num_blocks, (long long)(K / G));
  if (!x || !detail::aligned16(x)) return detail::fail(cudaErrorInvalidValue, "%s: x must be a 16-byte aligned device pointer", fn);
  if ((out.codes && !detail::aligned16(out.codes)) || (out.operand && !detail::aligned16(out.operand)))
    return detail::fail(cudaErrorInvalidValue, "%s: codes and operand must be 16-byte aligned", fn);
  if (out.chunk_scales && cfg.format == QFormat::NVFP4)
    return detail::fail(cudaErrorInvalidValue, "%s: nvfp4 has no chunk scales (its operand is bf16)", fn);
  if (M == 0) return cudaSuccess;

  int dev = 0, sms = 132;
  cudaGetDevice(&dev);
  cudaDeviceGetAttribute(&sms, cudaDevAttrMultiProcessorCount, dev);
  const int64_t nchunks = detail::ceil_div(K, detail::kChunk);
  const int64_t tiles = detail::ceil_div(operand_rows(M), kThreads);
  // About 4 CTAs per SM (2 resident); beyond that, each CTA walks several token tiles, which
  // amortizes its load of the chunk's matrices.
  const int64_t want_ctas = int64_t(sms) * 4;
  int64_t tpc = std::max<int64_t>(1, (tiles * nchunks) / want_ctas);
  tpc = std::min<int64_t>(tpc, tiles);
  if (nchunks > 65535) return detail::fail(cudaErrorInvalidValue, "%s: K = %lld too large", fn, (long long)K);
  KernelArgs args{x, M, K, t.T, t.num_blocks == 1 ? 0 : 1, cfg.nvfp4_global, out, int(tpc)};
  const dim3 grid(unsigned(detail::ceil_div(tiles, tpc)), unsigned(nchunks));
  const bool tr = t.T != nullptr;
  cudaError_t e = cudaSuccess;
  switch (cfg.format) {
    case QFormat::MXFP4: e = launch_format<QFormat::MXFP4>(tr, args, grid, stream); break;
    case QFormat::MXFP4_OCP: e = launch_format<QFormat::MXFP4_OCP>(tr, args, grid, stream); break;
    case QFormat::NVFP4: e = launch_format<QFormat::NVFP4>(tr, args, grid, stream); break;
    case QFormat::MXINT4: e = launch_format<QFormat::MXINT4>(tr, args, grid, stream); break;
  }
  return detail::check_cuda(e, fn);
}

}  // namespace cuda
}  // namespace wush

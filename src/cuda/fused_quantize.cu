// Fused block transform + quantize, chunk operand (REFERENCE.md §2 x~_j = T_j x_j, §1 formats,
// §7 operand): one read of the bf16 activations, one write of each requested output.
//
// Work split (v3, docs/results/gpu8.md): a CTA of 8 warps owns one 128-wide chunk c of K and up to
// 32 tiles of 16 rows; each warp walks its tiles. Nothing but the transform's B fragments goes
// through shared memory (converted once per CTA, then one barrier): a warp loads its tile's
// 16 x 128 bf16 straight into registers, transforms each group on the tensor cores
// (quant_tile.cuh: the lane keeps the elements it loaded), and quantizes from registers.
// MX formats take two passes over the chunk's groups (the transform is recomputed, it costs a few
// MMAs): pass A finds every group's E_g and the row's chunk E_max, pass B encodes with
// f = 2^(E_g - E_max) and writes. NVFP4 needs no chunk maximum: one pass.
#include <algorithm>

#include "cuda/internal.h"
#include "cuda/quant_tile.cuh"

namespace wush {
namespace cuda {
namespace {

using detail::kChunk;
constexpr int kWarps = 8;
constexpr int kThreads = kWarps * 32;
constexpr int kTilesPerCta = 32;  // 16-row tiles per CTA: 4 per warp

struct KernelArgs {
  const __nv_bfloat16* x;
  int64_t M, K;
  const float* T;
  bool shared_T;  // one matrix for every block (Hadamard)
  float g;        // NVFP4 global scale
  QuantizeOutputs out;
};

// Per-thread counts over all tiles; one atomic per warp at the end.
struct Counts {
  unsigned span = 0, overflow = 0, nonfinite = 0;
};

template <QFormat F, int kTerms, bool kCodes>
__global__ void __launch_bounds__(kThreads, kTerms == 3 ? 2 : 3) chunk_quantize_kernel(const KernelArgs a) {
  using S = tile::Shape<F>;
  constexpr int G = S::G, P = S::P, W = S::W, GPC = S::GPC, WB = S::WB, WB4 = S::WB4;
  constexpr int kT = kTerms > 0 ? kTerms : 1;
  constexpr bool kMX = F != QFormat::NVFP4;
  extern __shared__ uint4 Bs[];  // [kTerms][GPC][WB4][32 lanes]
  const int lane = threadIdx.x & 31, warp = threadIdx.x >> 5, q = lane & 3;
  const int64_t M = a.M, K = a.K, Mp = operand_rows(M), nbk = K / G;
  const int c = blockIdx.x;
  const int64_t k0 = int64_t(c) * kChunk;
  const int ng = int((K - k0 < kChunk ? K - k0 : kChunk) / G);  // groups of this chunk (warp-uniform)
  const int64_t ntiles = (Mp + 15) / 16, t0 = int64_t(blockIdx.y) * kTilesPerCta;
  const int64_t t1 = ntiles < t0 + kTilesPerCta ? ntiles : t0 + kTilesPerCta;

  if constexpr (kTerms > 0) {
    uint32_t* bw = reinterpret_cast<uint32_t*>(Bs);
    for (int idx = threadIdx.x; idx < kTerms * GPC * WB * 32; idx += kThreads) {
      const int e = idx & 3, L = (idx >> 2) & 31, rest = idx >> 7;  // idx = ((tgv) * 32 + L) * 4 + e
      const int v = rest % WB4, g = (rest / WB4) % GPC, t = rest / (WB4 * GPC);
      bw[idx] = g < ng ? tile::b_word<F, kT>(a.T + (a.shared_T ? 0 : k0 / G + g) * G * G, L, 4 * v + e, t) : 0u;
    }
    __syncthreads();
  }
  // The group's transformed values of rows r (ya) and r + 8 (yb).
  auto compute = [&](const tile::Words<W>& x, int g, float (&ya)[P], float (&yb)[P]) {
    if constexpr (kTerms == 0) {
      tile::unpack<W>(x.a, ya);
      tile::unpack<W>(x.b, yb);
    } else {
      uint32_t B[kT][WB];
#pragma unroll
      for (int t = 0; t < kT; ++t)
#pragma unroll
        for (int v = 0; v < WB4; ++v) {
          const uint4 u = Bs[((t * GPC + g) * WB4 + v) * 32 + lane];
          B[t][4 * v] = u.x, B[t][4 * v + 1] = u.y, B[t][4 * v + 2] = u.z, B[t][4 * v + 3] = u.w;
        }
      tile::transform<F, kT>(x, B, ya, yb);
    }
  };
  Counts cnt;
  uint8_t* const op8 = static_cast<uint8_t*>(a.out.operand);

  for (int64_t tt = t0 + warp; tt < t1; tt += kWarps) {
    const int64_t rows[2] = {tt * 16 + (lane >> 2), tt * 16 + (lane >> 2) + 8};
    tile::Words<W> x[GPC];
#pragma unroll
    for (int g = 0; g < GPC; ++g) {
      const int64_t col = k0 + g * G + P * q;
      tile::load_words<W>(a.x + rows[0] * K + col, g < ng && rows[0] < M, x[g].a);
      tile::load_words<W>(a.x + rows[1] * K + col, g < ng && rows[1] < M, x[g].b);
    }
    if constexpr (kMX) {
      // ---- pass A: E_g of every group, the chunk's E_max and smallest nonzero E per row
      int E[2][GPC], emax[2] = {-127, -127}, emin[2] = {1000, 1000};
#pragma unroll
      for (int g = 0; g < GPC; ++g) {
        E[0][g] = E[1][g] = -127;  // past K's end: all zero, neutral for E_max
        if (g >= ng) continue;
        float y[2][P];
        compute(x[g], g, y[0], y[1]);
#pragma unroll
        for (int h = 0; h < 2; ++h) {
          const uint32_t ab = __float_as_uint(tile::group_amax<P>(y[h]));
          if (q == 0 && rows[h] < M) cnt.nonfinite += ab >= 0x7F800000u;
          E[h][g] = tile::mx_exponent<F>(ab);
          emax[h] = max(emax[h], E[h][g]);
          if (tile::mx_nonzero<F>(ab, tile::mx_mul<F>(E[h][g]))) emin[h] = min(emin[h], E[h][g]);
        }
      }
#pragma unroll
      for (int h = 0; h < 2; ++h)
        if (q == 0 && rows[h] < Mp) {
          const bool real = rows[h] < M;  // operand padding rows: zeros, chunk scale 0
          cnt.span += real && emin[h] != 1000 && emax[h] - emin[h] > (F == QFormat::MXINT4 ? 9 : 8);
          if (a.out.chunk_scales) a.out.chunk_scales[c * Mp + rows[h]] = real ? dev::pow2i(emax[h]) : 0.0f;
        }
      // ---- pass B: encode with f = 2^(E_g - E_max) (q * f exact in E4M3 within the span) and write
#pragma unroll
      for (int g = 0; g < GPC; ++g) {
        if (g >= ng) continue;
        float y[2][P];
        compute(x[g], g, y[0], y[1]);
        const int64_t col = k0 + g * G + P * q;
#pragma unroll
        for (int h = 0; h < 2; ++h) {
          const int64_t row = rows[h];
          if (row >= Mp) continue;
          if (a.out.transformed && row < M) tile::store_floats<P>(a.out.transformed + row * K + col, y[h]);
          uint32_t op[P / 4], codes;
          tile::mx_encode<F, P, kCodes>(y[h], tile::mx_mul<F>(E[h][g]), dev::pow2i(E[h][g] - emax[h]), op, codes);
          if (op8) tile::store_words<P / 4>(op8 + row * K + col, op);  // padding rows: x = 0 gives zeros
          if (row >= M) continue;
          if (kCodes) tile::store_codes<P>(a.out.codes + (row * K + col) / 2, codes);
          if (a.out.scales && q == (g & 3)) a.out.scales[row * nbk + k0 / G + g] = uint8_t(E[h][g] + 127);
        }
      }
    } else {
      // ---- NVFP4: s = E4M3(g amax / 6), one pass
#pragma unroll
      for (int g = 0; g < GPC; ++g) {
        if (g >= ng) continue;
        float y[2][P];
        compute(x[g], g, y[0], y[1]);
        const int64_t col = k0 + g * G + P * q;
#pragma unroll
        for (int h = 0; h < 2; ++h) {
          const float amax = tile::group_amax<P>(y[h]);
          const int64_t row = rows[h];
          if (row >= Mp) continue;
          const float t = __fdiv_rn(__fmul_rn(a.g, amax), 6.0f);
          const uint32_t scode = dev::e4m3_encode_sat(t);
          const float sc = dev::e4m3_decode(scode);
          const float rinv = sc != 0.0f ? __frcp_rn(sc) : 0.0f;  // 0: every q becomes +0 (codes 0)
          uint32_t op[P / 2], codes;
          tile::nv_encode<P, kCodes>(y[h], a.g, sc, rinv, op, codes);
          if (op8) tile::store_words<P / 2>(op8 + (row * K + col) * 2, op);
          if (row >= M) continue;
          if (q == 0) {
            cnt.overflow += t > 448.0f;
            cnt.nonfinite += __float_as_uint(amax) >= 0x7F800000u;
          }
          if (kCodes) tile::store_codes<P>(a.out.codes + (row * K + col) / 2, codes);
          if (a.out.scales && q == (g & 3)) a.out.scales[row * nbk + k0 / G + g] = uint8_t(scode);
          if (a.out.transformed) tile::store_floats<P>(a.out.transformed + row * K + col, y[h]);
        }
      }
    }
  }
  if (a.out.counters) {
    if (kMX) dev::count_warp(cnt.span, a.out.counters + kSpanExceeded);
    else dev::count_warp(cnt.overflow, a.out.counters + kScaleOverflow);
    dev::count_warp(cnt.nonfinite, a.out.counters + kNonFinite);
  }
}

template <QFormat F, int kTerms, bool kCodes>
cudaError_t launch(const KernelArgs& args, cudaStream_t stream) {
  using S = tile::Shape<F>;
  const size_t smem = size_t(kTerms) * S::GPC * S::WB * 32 * sizeof(uint32_t);  // <= 24 KiB
  const int64_t tiles = detail::ceil_div(operand_rows(args.M), 16);
  const dim3 grid(unsigned(detail::ceil_div(args.K, kChunk)), unsigned(detail::ceil_div(tiles, kTilesPerCta)));
  chunk_quantize_kernel<F, kTerms, kCodes><<<grid, kThreads, smem, stream>>>(args);
  return cudaGetLastError();
}

template <QFormat F, bool kCodes>
cudaError_t launch_terms(int terms, const KernelArgs& args, cudaStream_t s) {
  return terms == 0 ? launch<F, 0, kCodes>(args, s) : terms == 1 ? launch<F, 1, kCodes>(args, s) : launch<F, 3, kCodes>(args, s);
}
template <QFormat F>
cudaError_t launch_format(int terms, const KernelArgs& args, cudaStream_t s) {
  return args.out.codes ? launch_terms<F, true>(terms, args, s) : launch_terms<F, false>(terms, args, s);
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
  if ((out.codes && !detail::aligned16(out.codes)) || (out.operand && !detail::aligned16(out.operand)) ||
      (out.transformed && !detail::aligned16(out.transformed)))
    return detail::fail(cudaErrorInvalidValue, "%s: codes, operand and transformed must be 16-byte aligned", fn);
  if (out.chunk_scales && cfg.format == QFormat::NVFP4)
    return detail::fail(cudaErrorInvalidValue, "%s: nvfp4 has no chunk scales (its operand is bf16)", fn);
  if (M == 0) return cudaSuccess;
  if (detail::ceil_div(operand_rows(M), 16 * kTilesPerCta) > 65535)
    return detail::fail(cudaErrorInvalidValue, "%s: M = %lld above %d rows", fn, (long long)M, 65535 * 16 * kTilesPerCta);
  const KernelArgs args{x, M, K, t.T, t.num_blocks == 1, cfg.nvfp4_global, out};
  const int terms = detail::transform_terms(t);
  cudaError_t e = cudaSuccess;
  switch (cfg.format) {
    case QFormat::MXFP4: e = launch_format<QFormat::MXFP4>(terms, args, stream); break;
    case QFormat::MXFP4_OCP: e = launch_format<QFormat::MXFP4_OCP>(terms, args, stream); break;
    case QFormat::NVFP4: e = launch_format<QFormat::NVFP4>(terms, args, stream); break;
    case QFormat::MXINT4: e = launch_format<QFormat::MXINT4>(terms, args, stream); break;
  }
  return detail::check_cuda(e, fn);
}

}  // namespace cuda
}  // namespace wush

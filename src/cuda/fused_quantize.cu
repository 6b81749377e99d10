// Fused block transform + quantize (REFERENCE.md §2 x~_j = T_j x_j, §1 formats, §7 operand): one
// read of the bf16 activations, one write of each requested output.
//
// Work split (v3, docs/results/gpu8.md "Session 4"): a CTA of 8 warps owns one 128-wide chunk c
// of K and up to 32 tiles of 16 rows (fewer when the grid would not fill 4 CTAs per SM). Warp w owns group g = w % GPC of the chunk for all of the
// CTA's tiles (MX: 2 teams of 4 warps take alternate tiles; NVFP4: one team of 8), so the
// transform's B fragments are loaded once into registers and each tile is transformed once, on
// the tensor cores (quant_tile.cuh: the lane keeps the 2 x P elements it loaded). Nothing but the
// MX chunk exchange goes through shared memory: the team's warps publish each row's group amax
// (E is monotone in amax, so E_max = E(max amax)) and meet at one named barrier per tile
// (double-buffered slots); then every lane encodes with f = 2^(E_g - E_max) and writes. The next
// tile's x is prefetched into registers while the current one is computed. Offsets are 32-bit,
// relative to the CTA's first row.
//
// The GEMM path (v4, gpu8.md "Session 5"): an MX quantizer asked for the FP8 operand and chunk
// scales only, in a CTA of full tiles and a full chunk, streams x through a cp.async ring of
// kStages tiles in shared memory (3 tiles per warp in flight instead of 1 in registers), checks
// no bounds, and where all group amaxes of a tile lie in the normal range (every real-valued
// activation tile) encodes with clamp-free scale arithmetic and the factor folded into the
// rounding (tile::mx_encode_operand); it has half the instructions per tile of the general
// path. Every other case, and any tile with a zero, subnormal, huge or non-finite group, takes
// the general path, which writes every output (tests: both bit-identical to the reference).
#include <algorithm>

#include "cuda/internal.h"
#include "cuda/quant_tile.cuh"

namespace wush {
namespace cuda {
namespace {

using detail::kChunk;
constexpr int kWarps = 8;
constexpr int kThreads = kWarps * 32;
constexpr int kMaxTilesPerCta = 32;  // 16-row tiles per CTA (fewer when the grid would not fill the GPU)
constexpr int kStages = 4;           // the GEMM path's ring of x tiles in shared memory

struct KernelArgs {
  const __nv_bfloat16* x;
  int64_t M, K;
  const float* T;
  bool shared_T;  // one matrix for every block (Hadamard)
  float g;        // NVFP4 global scale
  QuantizeOutputs out;
  int tpc;        // 16-row tiles per CTA
};

// Per-thread counts over all tiles; one atomic per warp at the end.
struct Counts {
  unsigned span = 0, overflow = 0, nonfinite = 0;
};

__device__ __forceinline__ void team_barrier(int id, int threads) {
  asm volatile("bar.sync %0, %1;\n" ::"r"(id), "r"(threads) : "memory");
}

template <QFormat F, int kTerms, bool kCodes>
__global__ void __launch_bounds__(kThreads, kTerms == 3 ? 2 : 4) team_quantize_kernel(const KernelArgs a) {
  using S = tile::Shape<F>;
  constexpr int G = S::G, P = S::P, W = S::W, GPC = S::GPC, WB = S::WB;
  constexpr int kT = kTerms > 0 ? kTerms : 1;
  constexpr bool kMX = F != QFormat::NVFP4;
  constexpr int kTeams = kWarps / GPC;  // MX: 2 teams of 4 warps; NVFP4: 1 team of 8
  __shared__ __align__(16) float As[kTeams][2][16][GPC];  // MX: amax of each row's group, per tile slot
  // NVFP4: (s, RN(1/s), or 0 for s = 0: every q becomes +0) of every E4M3 code s, looked up
  // per group instead of a decode and a reciprocal.
  __shared__ float2 E4m3[kMX ? 1 : 128];
  if constexpr (!kMX) {
    if (threadIdx.x < 128) {
      const float sc = dev::e4m3_decode(threadIdx.x);
      E4m3[threadIdx.x] = make_float2(sc, sc != 0.0f ? __frcp_rn(sc) : 0.0f);
    }
    __syncthreads();
  }
  const int lane = threadIdx.x & 31, warp = threadIdx.x >> 5, q = lane & 3, r = lane >> 2;
  const int g = warp % GPC, team = warp / GPC;
  const int c = blockIdx.x, K = int(a.K), nbk = K / G;  // K < 2^22: checked by the launcher (nrows K < 2^31)
  const int k0 = c * kChunk;
  const int ng = (K - k0 < kChunk ? K - k0 : kChunk) / G;
  const bool active = g < ng;  // warp-uniform; an inactive MX warp still takes part in the exchange
  // Rows of this CTA: [row0, row0 + nrows); offsets below are relative to row0 (32-bit: nrows K < 2^31).
  const int64_t Mp = operand_rows(a.M), row0 = int64_t(blockIdx.y) * a.tpc * 16;
  const int nrows = int(Mp - row0 < a.tpc * 16 ? Mp - row0 : a.tpc * 16);
  const int mrows = int(a.M - row0 < nrows ? a.M - row0 : nrows);  // real (non-padding) rows
  const int col = k0 + g * G + P * q;
  const __nv_bfloat16* const xb = a.x + row0 * K;
  uint8_t* const opb = a.out.operand ? static_cast<uint8_t*>(a.out.operand) + row0 * K * (kMX ? 1 : 2) : nullptr;
  uint8_t* const codesb = a.out.codes ? a.out.codes + row0 * K / 2 : nullptr;
  uint8_t* const scalesb = a.out.scales ? a.out.scales + row0 * nbk : nullptr;
  float* const trb = a.out.transformed ? a.out.transformed + row0 * K : nullptr;
  float* const csb = a.out.chunk_scales ? a.out.chunk_scales + c * Mp + row0 : nullptr;

  uint32_t B[kT][WB];
  auto load_B = [&] {  // the transform's B fragments of group g (quant_tile.cuh)
    if (kTerms > 0 && active) {
      const float* Tm = a.T + (a.shared_T ? 0 : k0 / G + g) * G * G;
#pragma unroll
      for (int t = 0; t < kT; ++t)
#pragma unroll
        for (int w = 0; w < WB; ++w) B[t][w] = tile::b_word<F, kT>(Tm, lane, w, t);
    }
  };
  // y = T_j x_j of the lane's two rows (or x itself).
  auto compute = [&](const tile::Words<W>& x, float (&y)[2][P]) {
    if constexpr (kTerms == 0) {
      tile::unpack<W>(x.a, y[0]);
      tile::unpack<W>(x.b, y[1]);
    } else {
      tile::transform<F, kT>(x, B, y[0], y[1]);
    }
  };
  Counts cnt;

  // MX, after the team barrier, any data: the rows' chunk E_max from the 4 published group amaxes
  // (E is monotone in amax, so E_max = E(max amax); the span rule's smallest nonzero E is E of the
  // smallest amax among groups with a nonzero code), then every output the caller asked for.
  auto mx_rows = [&](int t16, int slot, float (&y)[2][P], const float (&am)[2]) {
#pragma unroll
    for (int h = 0; h < 2; ++h) {
      const int row = t16 + r + 8 * h, off = row * K + col;
      const float4 u = *reinterpret_cast<const float4*>(&As[team][slot][r + 8 * h][0]);
      const float cmax = tile::abs_max_nan(tile::abs_max_nan(u.x, u.y), tile::abs_max_nan(u.z, u.w));
      const int emax = tile::mx_exponent<F>(__float_as_uint(cmax));
      const uint32_t ab = __float_as_uint(am[h]);
      if (q == 0 && row < mrows) cnt.nonfinite += ab >= 0x7F800000u;  // inactive warps published 0
      if (g == 0 && q == 0 && row < nrows) {
        const float ua[4] = {u.x, u.y, u.z, u.w};
        float cmin = __int_as_float(0x7F800000);
#pragma unroll
        for (int j = 0; j < 4; ++j)
          if (tile::mx_nonzero<F>(__float_as_uint(ua[j]), tile::mx_exponent<F>(__float_as_uint(ua[j])))) cmin = fminf(cmin, ua[j]);
        const bool any_nz = cmin != __int_as_float(0x7F800000);
        cnt.span += row < mrows && any_nz && emax - tile::mx_exponent<F>(__float_as_uint(cmin)) > tile::kSpan<F>;
        if (csb) csb[row] = row < mrows ? dev::pow2i(emax) : 0.0f;
      }
      if (!active || row >= nrows) continue;
      if (trb && row < mrows) tile::store_floats<P>(trb + off, y[h]);
      const int E = tile::mx_exponent<F>(ab);
      uint32_t op[P / 4], codes;
      tile::mx_encode<F, P, kCodes>(y[h], tile::mx_mul<F>(E), tile::mx_factor(E - emax), op, codes);
      if (opb) tile::store_words<P / 4>(opb + off, op);
      if (row >= mrows) continue;
      if (kCodes) tile::store_codes<P>(codesb + off / 2, codes);
      if (scalesb && q == 0) scalesb[row * nbk + k0 / G + g] = uint8_t(E + 127);
    }
  };

  // The GEMM path (MX, operand and chunk scales only, a CTA of full tiles and a full chunk): no
  // bounds, pointers advanced per tile, and where every group amax of the tile has an exponent in
  // the formats' normal range (tile::mx_fast_range), the scale arithmetic without clamps and the
  // codec with the factor folded in (tile::mx_encode_operand); other tiles take mx_rows. (The
  // same ring gained NVFP4 nothing: 76% of copy bandwidth either way, gpu8.md "Session 5".)
  bool done = false;
  if constexpr (kMX && !kCodes) {
    done = opb && !scalesb && !trb && ng == GPC && mrows == a.tpc * 16;
    if (done) {
      // x arrives through a ring of kStages tiles in shared memory (cp.async, 16 bytes per lane and
      // row; a lane reads back only what it copied, so its own wait_group is the only sync): up to
      // kStages - 1 tiles per warp in flight while one is computed.
      static_assert(W == 4, "the MX formats' groups are 32 wide: 16 bytes per lane and row");
      __shared__ __align__(16) uint4 Xs[kStages][2][kWarps][32];
      constexpr uint32_t kRowBytes = kWarps * 32 * 16, kStageBytes = 2 * kRowBytes;
      const int step = kTeams * 16 * K, K8 = 8 * K, ntiles = nrows / (kTeams * 16);  // tpc is even
      const __nv_bfloat16* const xp = xb + (team * 16 + r) * K + col;
      uint8_t* opp = opb + (team * 16 + r) * K + col;
      const uint32_t xs0 = uint32_t(__cvta_generic_to_shared(&Xs[0][0][warp][lane]));
      auto fetch = [&](int i) {  // this team's tile i into stage i % kStages; one commit group (maybe empty)
        if (i < ntiles) {
          const uint32_t st = xs0 + uint32_t(i % kStages) * kStageBytes;
          tile::cp_async16(st, xp + i * step);
          tile::cp_async16(st + kRowBytes, xp + i * step + K8);
        }
        tile::cp_async_commit();
      };
#pragma unroll
      for (int i = 0; i < kStages - 1; ++i) fetch(i);
      load_B();
      for (int i = 0; i < ntiles; ++i, opp += step) {
        fetch(i + kStages - 1);
        tile::cp_async_wait<kStages - 1>();
        const uint4 va = Xs[i % kStages][0][warp][lane], vb = Xs[i % kStages][1][warp][lane];
        const tile::Words<W> x{{va.x, va.y, va.z, va.w}, {vb.x, vb.y, vb.z, vb.w}};
        const int t16 = team * 16 + i * kTeams * 16, slot = i & 1;
        float y[2][P], am[2];
        compute(x, y);
#pragma unroll
        for (int h = 0; h < 2; ++h) {
          am[h] = tile::group_amax<P>(y[h]);
          if (q == 0) As[team][slot][r + 8 * h][g] = am[h];
        }
        team_barrier(1 + team, GPC * 32);
        float cmax[2], cmin[2];
        bool normal = true;
#pragma unroll
        for (int h = 0; h < 2; ++h) {
          const float4 u = *reinterpret_cast<const float4*>(&As[team][slot][r + 8 * h][0]);
          cmax[h] = tile::abs_max_nan(tile::abs_max_nan(u.x, u.y), tile::abs_max_nan(u.z, u.w));
          cmin[h] = fminf(fminf(u.x, u.y), fminf(u.z, u.w));
          normal = normal && tile::mx_fast_range<F>(__float_as_uint(cmin[h]), __float_as_uint(cmax[h]));
        }
        if (!__all_sync(0xFFFFFFFFu, normal)) {
          mx_rows(t16, slot, y, am);
          continue;
        }
#pragma unroll
        for (int h = 0; h < 2; ++h) {
          const int emax = tile::mx_exponent_unclamped<F>(__float_as_uint(cmax[h]));
          uint32_t op[P / 4];
          tile::mx_encode_operand<F, P>(y[h], tile::mx_exponent_unclamped<F>(__float_as_uint(am[h])), emax, op);
          tile::store_words<P / 4>(opp + h * K8, op);
          if (g == 0 && q == 0) {  // every group of the tile has a nonzero code (mx_fast_range)
            cnt.span += emax - tile::mx_exponent_unclamped<F>(__float_as_uint(cmin[h])) > tile::kSpan<F>;
            if (csb) csb[t16 + r + 8 * h] = __int_as_float((emax + 127) << 23);
          }
        }
      }
    }
  }
  if (!done) {
    load_B();
    auto load = [&](int lr, tile::Words<W>& x) {  // local rows lr, lr + 8
      tile::load_words<W>(xb + lr * K + col, active && lr < mrows, x.a);
      tile::load_words<W>(xb + (lr + 8) * K + col, active && lr + 8 < mrows, x.b);
    };
    tile::Words<W> xn;
    if (team * 16 < nrows) load(team * 16 + r, xn);
    int slot = 0;
    for (int t16 = team * 16; t16 < nrows; t16 += kTeams * 16, slot ^= 1) {
      const tile::Words<W> x = xn;
      if (t16 + kTeams * 16 < nrows) load(t16 + kTeams * 16 + r, xn);
      float y[2][P];
      if (active) compute(x, y);
      if constexpr (kMX) {
        float am[2];
#pragma unroll
        for (int h = 0; h < 2; ++h) {
          am[h] = active ? tile::group_amax<P>(y[h]) : 0.0f;
          if (q == 0) As[team][slot][r + 8 * h][g] = am[h];
        }
        team_barrier(1 + team, GPC * 32);
        mx_rows(t16, slot, y, am);
      } else {
        if (!active) continue;
#pragma unroll
        for (int h = 0; h < 2; ++h) {
          const float amax = tile::group_amax<P>(y[h]);
          const int row = t16 + r + 8 * h, off = row * K + col;
          if (row >= nrows) continue;
          const float ga = __fmul_rn(a.g, amax);
          const float t = ga <= 3.40282347e38f ? dev::div6(ga) : __fdiv_rn(ga, 6.0f);  // Inf, NaN: divide
          const uint32_t scode = dev::e4m3_encode_sat(t);
          const float2 sr = E4m3[scode & 0x7Fu];  // (s, 1/s); t >= 0 or NaN (whose sign bit is masked)
          uint32_t op[P / 2], codes;
          tile::nv_encode<P, kCodes>(y[h], a.g, ga, sr.x, sr.y, op, codes);
          if (opb) tile::store_words<P / 2>(opb + size_t(off) * 2, op);
          if (row >= mrows) continue;
          if (q == 0) {
            cnt.overflow += t > 448.0f;
            cnt.nonfinite += __float_as_uint(amax) >= 0x7F800000u;
          }
          if (kCodes) tile::store_codes<P>(codesb + off / 2, codes);
          if (scalesb && q == 0) scalesb[row * nbk + k0 / G + g] = uint8_t(scode);
          if (trb) tile::store_floats<P>(trb + off, y[h]);
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
  const int64_t tiles = detail::ceil_div(operand_rows(args.M), 16);
  const dim3 grid(unsigned(detail::ceil_div(args.K, kChunk)), unsigned(detail::ceil_div(tiles, args.tpc)));
  team_quantize_kernel<F, kTerms, kCodes><<<grid, kThreads, 0, stream>>>(args);
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
  if (t.T && (reinterpret_cast<uintptr_t>(t.T) & 7u))
    return detail::fail(cudaErrorInvalidValue, "%s: T must be an 8-byte aligned device pointer", fn);
  if ((out.codes && !detail::aligned16(out.codes)) || (out.operand && !detail::aligned16(out.operand)) ||
      (out.transformed && !detail::aligned16(out.transformed)))
    return detail::fail(cudaErrorInvalidValue, "%s: codes, operand and transformed must be 16-byte aligned", fn);
  if (out.chunk_scales && cfg.format == QFormat::NVFP4)
    return detail::fail(cudaErrorInvalidValue, "%s: nvfp4 has no chunk scales (its operand is bf16)", fn);
  if (M == 0) return cudaSuccess;
  if (K >= (int64_t(1) << 22))
    return detail::fail(cudaErrorInvalidValue, "%s: K = %lld not below 2^22 (the kernel's offsets are 32-bit)", fn, (long long)K);
  if (detail::ceil_div(operand_rows(M), 16 * kMaxTilesPerCta) > 65535)
    return detail::fail(cudaErrorInvalidValue, "%s: M = %lld above %d rows", fn, (long long)M, 65535 * 16 * kMaxTilesPerCta);
  // Tiles per CTA: as many as keep >= 4 CTAs per SM busy (the kernel's occupancy), at most 32.
  static const int sms = [] {
    int dev = 0, n = 132;
    cudaGetDevice(&dev);
    cudaDeviceGetAttribute(&n, cudaDevAttrMultiProcessorCount, dev);
    return n;
  }();
  const int64_t tiles = detail::ceil_div(operand_rows(M), 16), chunks = detail::ceil_div(K, kChunk);
  const int tpc = int(std::min<int64_t>(kMaxTilesPerCta, std::max<int64_t>(2, tiles * chunks / (4 * sms))));
  const KernelArgs args{x, M, K, t.T, t.num_blocks == 1, cfg.nvfp4_global, out, (tpc + 1) / 2 * 2};
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

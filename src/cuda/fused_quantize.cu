// Fused block transform + quantize (REFERENCE.md §2 x~_j = T_j x_j, §1 formats, §7 operand):
// one read of the bf16 activations, one write of each requested output.
//
// Work split (v2, docs/results/cuda2_notes.md): a persistent CTA of 8 warps walks "items" of
// 256 tokens x one 128-wide chunk of K. Each item's bf16 tile is staged in shared memory with
// cp.async (coalesced 16-byte copies; 2 stages with a transform, 3 without: the next items load
// while this one computes).
// Warp w owns one group g of the chunk and 32 * TM of its tokens; a thread computes TM tokens x
// all G outputs of g (TM * G = 128 fp32 accumulators): per k it reads column k of T_g^T from
// shared memory as warp-uniform 16-byte broadcasts (G/4 loads serve TM * G fmas) and unpacks TM
// bf16 values. Every output is the same k-ordered fma chain as the reference (bit-identical).
// The chunk's E_max (MX formats) is exchanged through shared memory after one barrier; the
// element codecs are branch-free (round_to_spacing) and the outputs are written from registers.
#include <algorithm>
#include <atomic>

#include "cuda/internal.h"
#include "cuda/quant_codec.cuh"

namespace wush {
namespace cuda {
namespace {

using detail::kChunk;
constexpr int kWarps = 16;
constexpr int kThreads = kWarps * 32;
// cp.async stages: 2 with a transform (its raw-matrix buffer is single), 3 without (more bytes in flight).
template <bool kTransform>
constexpr int stages() { return kTransform ? 2 : 3; }
constexpr int kRowElems = kChunk + 8;  // smem row of a tile: +16 B so 8 consecutive rows hit all banks

template <QFormat F>
struct Shape {
  static constexpr int G = F == QFormat::NVFP4 ? 16 : 32;
  static constexpr int GPC = kChunk / G;      // groups per chunk: 4 | 8
  static constexpr int H = G / 2;             // outputs per thread: half a group (lane bit 4)
  static constexpr int TM = 256 / (G * 2);    // tokens per thread: 4 | 8 (TM * H = 64 accumulators)
  static constexpr int WPG = kWarps / GPC;    // warps per group: 4 | 2
  static constexpr int kRows = WPG * 16 * TM; // tokens per item: 256
  static constexpr size_t kTileBytes = size_t(kRows) * kRowElems * 2;
  static constexpr size_t kTBytes = size_t(GPC) * G * G * sizeof(float);
  static constexpr size_t smem(bool transform) {
    return (transform ? stages<true>() : stages<false>()) * kTileBytes + (transform ? 2 * kTBytes : 0) +
           size_t(kRows) * GPC * sizeof(uint16_t);
  }
};

struct KernelArgs {
  const __nv_bfloat16* x;
  int64_t M, K;
  const float* T;
  int64_t t_block_stride;  // matrices between consecutive blocks: 1 per block, 0 shared
  float g;                 // NVFP4 global scale
  QuantizeOutputs out;
};

__device__ __forceinline__ void cp_async16(void* smem_dst, const void* gmem_src) {
  const unsigned d = static_cast<unsigned>(__cvta_generic_to_shared(smem_dst));
  asm volatile("cp.async.cg.shared.global [%0], [%1], 16;\n" ::"r"(d), "l"(gmem_src) : "memory");
}
__device__ __forceinline__ void cp_async_commit() { asm volatile("cp.async.commit_group;\n" ::: "memory"); }
template <int N>  // wait until at most N committed groups are still in flight
__device__ __forceinline__ void cp_async_wait() { asm volatile("cp.async.wait_group %0;\n" ::"n"(N) : "memory"); }

__device__ __forceinline__ int64_t ceil_div_dev(int64_t a, int64_t b) { return (a + b - 1) / b; }
__device__ __forceinline__ float bf16_lo(uint32_t w) { return __uint_as_float(w << 16); }
__device__ __forceinline__ float bf16_hi(uint32_t w) { return __uint_as_float(w & 0xFFFF0000u); }
// max(a, |b|), NaN if either is NaN (max.NaN: a NaN element must reach the nonfinite counter).
__device__ __forceinline__ float abs_max_nan(float a, float b) {
  float r;
  asm("max.NaN.f32 %0, %1, %2;" : "=f"(r) : "f"(a), "f"(fabsf(b)));
  return r;
}

// Per-thread accumulation of the counters over all items; one atomic per warp at the end.
struct Counts {
  unsigned span = 0, overflow = 0, nonfinite = 0;
};

// One group's outputs from its G transformed values (§1, §7). op: the FP8 operand (4 per word,
// element i in byte i % 4) = q * f; codew: packed codes, only when kCodes.
template <QFormat F, bool kCodes, int G>
__device__ __forceinline__ void mx_group_out(const float (&ys)[G], float mul, float f, uint32_t (&op)[G / 4],
                                             uint32_t (&codew)[G / 8]) {
#pragma unroll
  for (int i = 0; i < G; i += 2) {
    float o[2];
#pragma unroll
    for (int u = 0; u < 2; ++u) {
      float v = __fmul_rn(ys[i + u], mul);
      dev::GridRound q;
      uint32_t code = 0;
      if constexpr (F == QFormat::MXINT4) {
        q = dev::int_round(fminf(fmaxf(v, -8.0f), 7.0f));
        if (kCodes) code = uint32_t(q.k) & 15u;
      } else {
        if constexpr (F == QFormat::MXFP4_OCP) v = fminf(fmaxf(v, -6.0f), 6.0f);
        const uint32_t eb = dev::e2m1_exp_bits(v);
        q = dev::e2m1_round(v, eb);
        if (kCodes) code = dev::e2m1_code(q, eb);
      }
      if (kCodes) codew[(i + u) >> 3] |= code << (4 * ((i + u) & 7));
      o[u] = __fmul_rn(q.r, f);
    }
    const uint32_t pair = __nv_cvt_float2_to_fp8x2(make_float2(o[0], o[1]), __NV_SATFINITE, __NV_E4M3);
    if (i & 2) op[i >> 2] |= pair << 16;
    else op[i >> 2] = pair & 0xFFFFu;
  }
}

// NVFP4 (§1): q = RNE_E2M1((x g) / s) with the quotient correctly rounded by Markstein's
// correction from rinv = RN(1/s) (checked against IEEE division for every E4M3 s on 2.5e8
// random fp32 x: equal wherever |q| >= 2^-60; smaller quotients round to code 0 either way).
// op: the bf16 operand q * s (exact: 2 + 4 significant bits), 2 per word.
template <bool kCodes, int G>
__device__ __forceinline__ void nv_group_out(const float (&ys)[G], float g, float sc, float rinv,
                                             uint32_t (&op)[G / 2], uint32_t (&codew)[G / 8]) {
#pragma unroll
  for (int i = 0; i < G; i += 2) {
    float o[2];
#pragma unroll
    for (int u = 0; u < 2; ++u) {
      const float xa = __fmul_rn(ys[i + u], g);
      const float q0 = __fmul_rn(xa, rinv);
      const float r = __fmaf_rn(-sc, q0, xa);
      const float v = fminf(fmaxf(__fmaf_rn(r, rinv, q0), -6.0f), 6.0f);
      const uint32_t eb = dev::e2m1_exp_bits(v);
      const dev::GridRound q = dev::e2m1_round(v, eb);
      if (kCodes) codew[(i + u) >> 3] |= dev::e2m1_code(q, eb) << (4 * ((i + u) & 7));
      o[u] = __fmul_rn(q.r, sc);
    }
    op[i >> 1] = __byte_perm(__float_as_uint(o[0]), __float_as_uint(o[1]), 0x7632);
  }
}

template <QFormat F, bool kTransform>
__global__ void __launch_bounds__(kThreads, 1) fused_quantize_kernel(const KernelArgs a) {
  using S = Shape<F>;
  constexpr int G = S::G, H = S::H, GPC = S::GPC, TM = S::TM, WPG = S::WPG, kRows = S::kRows;
  constexpr bool kMX = F != QFormat::NVFP4;
  constexpr int kStages = stages<kTransform>();
  extern __shared__ __align__(16) uint8_t smem[];
  __nv_bfloat16* xs = reinterpret_cast<__nv_bfloat16*>(smem);
  float* Traw = reinterpret_cast<float*>(smem + kStages * S::kTileBytes);  // [GPC][i][k] as in global
  float* Ts = Traw + (kTransform ? GPC * G * G : 0);                       // [GPC][k][i]
  uint16_t* Es = reinterpret_cast<uint16_t*>(Ts + (kTransform ? GPC * G * G : 0));  // [row][g]: E+128 | nz<<8

  const int tid = threadIdx.x, warp = tid >> 5, lane = tid & 31;
  const int g = warp / WPG, wq = warp % WPG, half = lane >> 4;
  const bool lead = half == 0;            // the lane of a (token, group) pair that counts and writes scales
  const int row0 = wq * 16 * TM + (lane & 15);  // this thread's rows: row0 + 16 s
  const int64_t M = a.M, K = a.K, Mp = operand_rows(M), nbk = K / G;
  const int ntiles = int(ceil_div_dev(Mp, kRows)), nchunks = int(ceil_div_dev(K, kChunk));
  const int items = ntiles * nchunks;  // < 2^31: checked by the launcher
  const int first = int(int64_t(items) * blockIdx.x / gridDim.x), last = int(int64_t(items) * (blockIdx.x + 1) / gridDim.x);
  const bool shared_T = a.t_block_stride == 0;
  const bool want_codes = a.out.codes != nullptr;
  Counts cnt;

  // Stage the tile of item (c, tt) (rows < M, columns < K) and, if asked, its raw matrices.
  // Thread: 16-byte piece tid % 16 of rows tid / 16 + 32 j.
  auto issue = [&](int c, int tt, int stage, bool with_T) {
    const int64_t r0 = int64_t(tt) * kRows, k0 = int64_t(c) * kChunk;
    const int ncols = int(K - k0 < kChunk ? K - k0 : kChunk);
    const int piece = tid & 15, prow = tid >> 4;
    if (piece * 8 < ncols) {
      const int64_t rows_left = M - r0 - prow;
      const __nv_bfloat16* src = a.x + (r0 + prow) * K + k0 + piece * 8;
      __nv_bfloat16* dst = xs + size_t(stage) * kRows * kRowElems + prow * kRowElems + piece * 8;
#pragma unroll
      for (int j = 0; j < kRows / (kThreads / 16); ++j)
        if (j * (kThreads / 16) < rows_left) cp_async16(dst + j * (kThreads / 16) * kRowElems, src + j * (kThreads / 16) * K);
    }
    if (kTransform && with_T) {
      const int nmat = shared_T ? 1 : ncols / G;
      const float* src = a.T + (shared_T ? 0 : (k0 / G) * G * G);
      for (int idx = tid; idx < nmat * G * G / 4; idx += kThreads) cp_async16(Traw + idx * 4, src + idx * 4);
    }
    cp_async_commit();
  };

  // Items first..last-1 in order; item n uses stage (n - first) % kStages; one commit group per
  // item (empty past the end). (c, tt) of the item computed now, (cn, tn) of the one prefetched.
  int c = first / ntiles, tt = first % ntiles, cn = c, tn = tt, cur_c = -1;
#pragma unroll
  for (int p = 0; p < kStages - 1; ++p) {
    if (first + p < last) issue(cn, tn, p, p == 0 || tn == 0);
    else cp_async_commit();
    if (++tn == ntiles) { tn = 0; ++cn; }
  }
  int stage = 0, nstage = kStages - 1;
  for (int item = first; item < last; ++item) {
    const int64_t r0 = int64_t(tt) * kRows, k0 = int64_t(c) * kChunk;
    const int ng = int((K - k0 < kChunk ? K - k0 : kChunk) / G);
    cp_async_wait<kStages - 2>();
    __syncthreads();  // this item's tile is visible; every thread is done with the previous item
    if (kTransform && c != cur_c && (cur_c < 0 || !shared_T)) {
      const int nmat = shared_T ? 1 : ng;
      for (int idx = tid; idx < nmat * G * G; idx += kThreads) {
        const int m = idx / (G * G), r = idx % (G * G), i = r / G, k = r % G;
        Ts[m * G * G + k * G + i] = Traw[idx];
      }
      __syncthreads();
    }
    cur_c = c;
    // The stage item - 1 used: every thread is past the barrier above. A raw-matrix load only
    // when the chunk changes (after this item's transpose).
    if (item + kStages - 1 < last) issue(cn, tn, nstage, kTransform && !shared_T && tn == 0);
    else cp_async_commit();
    if (++tn == ntiles) { tn = 0; ++cn; }

    // ---- this thread: outputs half * H .. half * H + H - 1 of group g, rows row0 + 16 s
    const bool active = g < ng && r0 + wq * 16 * TM < Mp;  // warp-uniform
    float y[TM][H];
    if (active) {
      const uint2* xw = reinterpret_cast<const uint2*>(xs + size_t(stage) * kRows * kRowElems + row0 * kRowElems + g * G);
      constexpr int kRowU2 = kRowElems / 4;  // a tile row in 8-byte words
      if constexpr (kTransform) {
        // x~[i] = sum_k T[i][k] x[k], k ascending, one fma each from +0 (the reference's order).
        // The k loop stays rolled (4 k per trip): fully unrolled, the body thrashed the
        // instruction cache (v2a).
        const float* Tg = Ts + (shared_T ? 0 : g) * G * G + half * H;
#pragma unroll
        for (int s = 0; s < TM; ++s)
#pragma unroll
          for (int i = 0; i < H; ++i) y[s][i] = 0.0f;
#pragma unroll 1
        for (int k4 = 0; k4 < G / 4; ++k4) {
          uint2 raw[TM];
#pragma unroll
          for (int s = 0; s < TM; ++s) raw[s] = xw[s * 16 * kRowU2 + k4];
#pragma unroll
          for (int kk = 0; kk < 4; ++kk) {
            float xv[TM];
#pragma unroll
            for (int s = 0; s < TM; ++s) {
              const uint32_t w = kk < 2 ? raw[s].x : raw[s].y;
              xv[s] = (kk & 1) ? bf16_hi(w) : bf16_lo(w);
            }
            const float* Tk = Tg + (k4 * 4 + kk) * G;
#pragma unroll
            for (int i = 0; i < H; i += 4) {
              const float4 t4 = *reinterpret_cast<const float4*>(Tk + i);
#pragma unroll
              for (int s = 0; s < TM; ++s) {
                y[s][i] = __fmaf_rn(t4.x, xv[s], y[s][i]);
                y[s][i + 1] = __fmaf_rn(t4.y, xv[s], y[s][i + 1]);
                y[s][i + 2] = __fmaf_rn(t4.z, xv[s], y[s][i + 2]);
                y[s][i + 3] = __fmaf_rn(t4.w, xv[s], y[s][i + 3]);
              }
            }
          }
        }
      } else {
#pragma unroll
        for (int s = 0; s < TM; ++s)
#pragma unroll
          for (int k4 = 0; k4 < H / 4; ++k4) {
            const uint2 raw = xw[s * 16 * kRowU2 + half * (H / 4) + k4];
            y[s][4 * k4] = bf16_lo(raw.x);
            y[s][4 * k4 + 1] = bf16_hi(raw.x);
            y[s][4 * k4 + 2] = bf16_lo(raw.y);
            y[s][4 * k4 + 3] = bf16_hi(raw.y);
          }
      }
    }

    // ---- group scales (§1); MX: exchange E_g through shared memory for the chunk's E_max (§7)
    int E[TM];
    float mul[TM];
    if (active) {
#pragma unroll
      for (int s = 0; s < TM; ++s) {
        const int64_t tok = r0 + row0 + 16 * s;
        float am = 0.0f;
#pragma unroll
        for (int i = 0; i < H; ++i) am = abs_max_nan(am, y[s][i]);
        am = abs_max_nan(am, __shfl_xor_sync(0xFFFFFFFFu, am, 16));  // the other half of the group
        const uint32_t abits = __float_as_uint(am);
        if (lead && tok < M) cnt.nonfinite += abits >= 0x7F800000u;
        if constexpr (kMX) {
          E[s] = dev::e8m0_exponent(abits, F == QFormat::MXFP4 ? 0 : -2);
          mul[s] = F == QFormat::MXFP4 ? 3.0f * dev::pow2i(-E[s]) : dev::pow2i(-E[s]);
          bool nz;
          if (F == QFormat::MXFP4 && abits < 0x00800000u) {
            // E = -127: mul = 3 * 2^127 overflows to inf, so every nonzero element saturates
            // to +-6 (code 7) and zeros stay 0 (NaN -> code 0), as in the reference.
#pragma unroll
            for (int i = 0; i < H; ++i) y[s][i] = y[s][i] != 0.0f ? copysignf(6.0f, y[s][i]) : 0.0f;
            mul[s] = 1.0f;
            nz = abits != 0;
          } else {
            // codes are nonzero iff the largest |v| rounds away from 0 (RNE: > 0.25 | > 0.5)
            nz = __fmul_rn(__uint_as_float(abits), mul[s]) > (F == QFormat::MXINT4 ? 0.5f : 0.25f);
          }
          if (lead) Es[(row0 + 16 * s) * GPC + g] = uint16_t((E[s] + 128) | (nz ? 0x100 : 0));
        } else {
          E[s] = int(abits);  // NVFP4: keep amax (bits) for the scale below
          mul[s] = 0.0f;
        }
      }
    } else if (kMX && lead) {  // a group past K's end: E = -127, all zero (neutral for E_max)
#pragma unroll
      for (int s = 0; s < TM; ++s) Es[(row0 + 16 * s) * GPC + g] = uint16_t(1);
    }
    if constexpr (kMX) __syncthreads();
    if (!active) {
      stage = stage + 1 == kStages ? 0 : stage + 1;
      nstage = nstage + 1 == kStages ? 0 : nstage + 1;
      if (++tt == ntiles) { tt = 0; ++c; }
      continue;
    }

    const int64_t tok0 = r0 + row0, col = k0 + g * G + half * H;
#pragma unroll
    for (int s = 0; s < TM; ++s) {
      const int64_t tok = tok0 + 16 * s;
      if (tok >= Mp) continue;
      const bool pad = tok >= M;  // operand padding row: zeros, chunk scale 0
      if constexpr (kMX) {
        int emax = -127, emin = 1000;
        const uint16_t* er = Es + (row0 + 16 * s) * GPC;
#pragma unroll
        for (int h = 0; h < GPC; ++h) {
          const int e = int(er[h] & 0xFF) - 128;
          emax = max(emax, e);
          if (er[h] & 0x100) emin = min(emin, e);
        }
        if (g == 0 && lead && !pad) cnt.span += emin != 1000 && emax - emin > (F == QFormat::MXINT4 ? 9 : 8);
        if (g == 0 && lead && a.out.chunk_scales) a.out.chunk_scales[c * Mp + tok] = pad ? 0.0f : dev::pow2i(emax);
        const float f = dev::pow2i(E[s] - emax);  // q * 2^(E_g - E_max), exact in E4M3 within the span
        uint32_t codew[H / 8] = {}, op[H / 4];
        if (want_codes) mx_group_out<F, true>(y[s], mul[s], f, op, codew);
        else mx_group_out<F, false>(y[s], mul[s], f, op, codew);
        if (a.out.operand)
          *reinterpret_cast<uint4*>(static_cast<uint8_t*>(a.out.operand) + tok * K + col) =
              pad ? make_uint4(0, 0, 0, 0) : make_uint4(op[0], op[1], op[2], op[3]);
        if (!pad && want_codes) *reinterpret_cast<uint2*>(a.out.codes + (tok * K + col) / 2) = make_uint2(codew[0], codew[1]);
        if (!pad && lead && a.out.scales) a.out.scales[tok * nbk + k0 / G + g] = uint8_t(E[s] + 127);
      } else {
        // NVFP4: s = E4M3(g amax / 6), see nv_group_out
        const float amax = __uint_as_float(uint32_t(E[s]));
        const float t = __fdiv_rn(__fmul_rn(a.g, amax), 6.0f);
        if (lead && !pad) cnt.overflow += t > 448.0f;
        const uint32_t scode = dev::e4m3_encode_sat(t);
        const float sc = dev::e4m3_decode(scode);
        const float rinv = sc != 0.0f ? __frcp_rn(sc) : 0.0f;  // 0: every q becomes +0 (codes 0)
        uint32_t codew[H / 8] = {}, op[H / 2];
        if (want_codes) nv_group_out<true>(y[s], a.g, sc, rinv, op, codew);
        else nv_group_out<false>(y[s], a.g, sc, rinv, op, codew);
        if (a.out.operand)
          *reinterpret_cast<uint4*>(static_cast<__nv_bfloat16*>(a.out.operand) + tok * K + col) =
              pad ? make_uint4(0, 0, 0, 0) : make_uint4(op[0], op[1], op[2], op[3]);
        if (!pad && want_codes) *reinterpret_cast<uint32_t*>(a.out.codes + (tok * K + col) / 2) = codew[0];
        if (!pad && lead && a.out.scales) a.out.scales[tok * nbk + k0 / G + g] = uint8_t(scode);
      }
    }
    stage = stage + 1 == kStages ? 0 : stage + 1;
    nstage = nstage + 1 == kStages ? 0 : nstage + 1;
    if (++tt == ntiles) { tt = 0; ++c; }
  }
  if (a.out.counters) {
    if (kMX) dev::count_warp(cnt.span, a.out.counters + kSpanExceeded);
    else dev::count_warp(cnt.overflow, a.out.counters + kScaleOverflow);
    dev::count_warp(cnt.nonfinite, a.out.counters + kNonFinite);
  }
}

template <QFormat F, bool kTransform>
cudaError_t launch(const KernelArgs& args, int sms, cudaStream_t stream) {
  using S = Shape<F>;
  const size_t smem = S::smem(kTransform);
  // Raise the dynamic shared-memory limit once per device (a host call per launch costs
  // microseconds, which matter at small M).
  static std::atomic<uint64_t> done{0};
  int dev = 0;
  if (cudaError_t e = cudaGetDevice(&dev)) return e;
  const uint64_t bit = uint64_t(1) << (dev & 63);
  if (!(done.load(std::memory_order_acquire) & bit)) {
    cudaError_t e = cudaFuncSetAttribute(fused_quantize_kernel<F, kTransform>,
                                         cudaFuncAttributeMaxDynamicSharedMemorySize, int(smem));
    if (e != cudaSuccess) return e;
    done.fetch_or(bit, std::memory_order_release);
  }
  const int64_t items = detail::ceil_div(operand_rows(args.M), S::kRows) * detail::ceil_div(args.K, kChunk);
  const unsigned grid = unsigned(std::min<int64_t>(items, sms));  // persistent: one CTA per SM
  fused_quantize_kernel<F, kTransform><<<grid, kThreads, smem, stream>>>(args);
  return cudaGetLastError();
}

template <QFormat F>
cudaError_t launch_format(bool transform, const KernelArgs& args, int sms, cudaStream_t s) {
  return transform ? launch<F, true>(args, sms, s) : launch<F, false>(args, sms, s);
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
  if (t.T && !detail::aligned16(t.T)) return detail::fail(cudaErrorInvalidValue, "%s: T must be 16-byte aligned", fn);
  if ((out.codes && !detail::aligned16(out.codes)) || (out.operand && !detail::aligned16(out.operand)))
    return detail::fail(cudaErrorInvalidValue, "%s: codes and operand must be 16-byte aligned", fn);
  if (out.chunk_scales && cfg.format == QFormat::NVFP4)
    return detail::fail(cudaErrorInvalidValue, "%s: nvfp4 has no chunk scales (its operand is bf16)", fn);
  if (M == 0) return cudaSuccess;

  int dev = 0, sms = 132;
  cudaGetDevice(&dev);
  cudaDeviceGetAttribute(&sms, cudaDevAttrMultiProcessorCount, dev);
  if (detail::ceil_div(operand_rows(M), 256) * detail::ceil_div(K, detail::kChunk) >= (int64_t(1) << 31))
    return detail::fail(cudaErrorInvalidValue, "%s: M = %lld, K = %lld: too many 256 x 128 tiles", fn, (long long)M,
                        (long long)K);
  KernelArgs args{x, M, K, t.T, t.num_blocks == 1 ? 0 : 1, cfg.nvfp4_global, out};
  const bool tr = t.T != nullptr;
  cudaError_t e = cudaSuccess;
  switch (cfg.format) {
    case QFormat::MXFP4: e = launch_format<QFormat::MXFP4>(tr, args, sms, stream); break;
    case QFormat::MXFP4_OCP: e = launch_format<QFormat::MXFP4_OCP>(tr, args, sms, stream); break;
    case QFormat::NVFP4: e = launch_format<QFormat::NVFP4>(tr, args, sms, stream); break;
    case QFormat::MXINT4: e = launch_format<QFormat::MXINT4>(tr, args, sms, stream); break;
  }
  return detail::check_cuda(e, fn);
}

}  // namespace cuda
}  // namespace wush

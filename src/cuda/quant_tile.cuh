// One warp's 16-row tile of the fused quantizer (v3, fused_quantize.cu): the register layout of
// the transform on tensor cores and the group codecs on that layout.
//
// Layout (REFERENCE.md §2 x~_j = T_j x_j as one mma.sync.m16n8k16 bf16 -> fp32 per 16 rows x 8
// outputs x 16 inputs): lane (r = lane / 4, q = lane % 4) of a warp owns rows r and r + 8 of the
// tile and the P = G / 4 consecutive elements P q .. P q + P - 1 of every group, before and after
// the transform. The MMA fragments allow this because the sum over k may take any order of k and
// the outputs any order of n:
//  - A: in k-step ks the lane supplies logical k = 2q + {0,1} (registers a0 a1) and 2q + 8 + {0,1}
//    (a2 a3, "+8"); they are mapped to physical inputs P q + 4 ks + {0,1} and P q + 4 ks + 2 + {0,1},
//    i.e. the lane's own words of x in order: one 16-byte (P = 8) or 8-byte (P = 4) load per row.
//  - B[k][n] = T[i(nt, n)][k] with the same k map, so the lane (n = lane / 4, q) needs
//    T[i][P q .. P q + P - 1] of one row i per n-tile: pairs packed as bf16x2.
//  - C: the lane's accumulators c0 c1 (row r) and c2 c3 (row r + 8) of n-tile nt are columns
//    2q + {0,1}; with i(nt, n) = P (n / 2) + 2 nt + n % 2 they are outputs P q + 2 nt + {0,1}:
//    the lane ends with the transformed values of exactly the elements it loaded.
// A group's amax is then a max over the lane's P values and two xor-shuffles inside the quad, and
// the lane writes P contiguous operand elements and P / 2 code bytes per row: full 32-byte
// sectors per row and warp instruction.
//
// The fp32 accumulation order inside an MMA is not specified, so the transformed values may
// differ from the host reference's k-ordered fma chain in the last bits; the codecs below are
// bit-identical to the reference's on the values they get (tests compare the codes with
// quantize_transformed_ref applied to the kernel's own transformed values, and those values with
// a float64 transform).
#pragma once
#include <cuda_bf16.h>

#include "cuda/quant_codec.cuh"

namespace wush {
namespace cuda {
namespace tile {

template <QFormat F>
struct Shape {
  static constexpr int G = F == QFormat::NVFP4 ? 16 : 32;
  static constexpr int P = G / 4;        // elements per lane, row and group
  static constexpr int W = P / 2;        // 32-bit words of bf16 pairs per lane, row and group
  static constexpr int NT = G / 8;       // n-tiles of a group
  static constexpr int KS = G / 16;      // k-steps of a group
  static constexpr int GPC = 128 / G;    // groups per 128-chunk
  static constexpr int WB = NT * W;      // B words per lane and group (per split term)
};

// Words of one group of the lane's two rows.
template <int W>
struct Words {
  uint32_t a[W], b[W];  // row r, row r + 8
};

__device__ __forceinline__ float bf16_lo(uint32_t w) { return __uint_as_float(w << 16); }
__device__ __forceinline__ float bf16_hi(uint32_t w) { return __uint_as_float(w & 0xFFFF0000u); }

// max(a, |b|), NaN if either is NaN (a NaN element must reach the nonfinite counter).
__device__ __forceinline__ float abs_max_nan(float a, float b) {
  float r;
  asm("max.NaN.f32 %0, %1, %2;" : "=f"(r) : "f"(a), "f"(fabsf(b)));
  return r;
}

// P bf16 of row `row` (zeros past M or past K's groups): 16 or 8 bytes, streamed (read once).
template <int W>
__device__ __forceinline__ void load_words(const __nv_bfloat16* p, bool valid, uint32_t (&w)[W]) {
  if constexpr (W == 4) {
    const uint4 v = valid ? __ldcs(reinterpret_cast<const uint4*>(p)) : make_uint4(0, 0, 0, 0);
    w[0] = v.x, w[1] = v.y, w[2] = v.z, w[3] = v.w;
  } else {
    const uint2 v = valid ? __ldcs(reinterpret_cast<const uint2*>(p)) : make_uint2(0, 0);
    w[0] = v.x, w[1] = v.y;
  }
}

// 16 bytes global -> shared, asynchronous, cached in L2 only (x is read once).
__device__ __forceinline__ void cp_async16(uint32_t smem, const void* gmem) {
  asm volatile("cp.async.cg.shared.global [%0], [%1], 16;\n" ::"r"(smem), "l"(gmem) : "memory");
}
__device__ __forceinline__ void cp_async_commit() { asm volatile("cp.async.commit_group;\n" ::: "memory"); }
template <int N>  // until at most N of this thread's commit groups are pending
__device__ __forceinline__ void cp_async_wait() {
  asm volatile("cp.async.wait_group %0;\n" ::"n"(N) : "memory");
}

__device__ __forceinline__ void mma_bf16(float (&d)[4], uint32_t a0, uint32_t a1, uint32_t a2, uint32_t a3,
                                         uint32_t b0, uint32_t b1) {
  asm("mma.sync.aligned.m16n8k16.row.col.f32.bf16.bf16.f32 {%0,%1,%2,%3}, {%4,%5,%6,%7}, {%8,%9}, {%0,%1,%2,%3};\n"
      : "+f"(d[0]), "+f"(d[1]), "+f"(d[2]), "+f"(d[3])
      : "r"(a0), "r"(a1), "r"(a2), "r"(a3), "r"(b0), "r"(b1));
}

// bf16 pair of T values split into kTerms bf16 terms (T = hi + mid + lo exactly for normal fp32
// values; one term when T holds bf16 values, REFERENCE §2 step 4).
template <int kTerms>
__device__ __forceinline__ uint32_t split_pair(float t0, float t1, int term) {
  float r0 = t0, r1 = t1;
  __nv_bfloat162 p = __floats2bfloat162_rn(r0, r1);
  for (int s = 0; s < term; ++s) {
    r0 -= __low2float(p);
    r1 -= __high2float(p);
    p = __floats2bfloat162_rn(r0, r1);
  }
  return *reinterpret_cast<uint32_t*>(&p);
}

// The B fragments of one group (matrix Tm = T_j, row-major G x G, fp32) for lane `lane`, word w
// of WB: n-tile nt = w / W, pair j = w % W -> T[i(nt, n)][P q + 2 j], +1 (see the layout above).
template <QFormat F, int kTerms>
__device__ __forceinline__ uint32_t b_word(const float* Tm, int lane, int w, int term) {
  using S = Shape<F>;
  const int n = lane >> 2, q = lane & 3, nt = w / S::W, j = w % S::W;
  const int i = S::P * (n >> 1) + 2 * nt + (n & 1), k = S::P * q + 2 * j;
  const float2 t = *reinterpret_cast<const float2*>(Tm + i * S::G + k);  // k even
  return split_pair<kTerms>(t.x, t.y, term);
}

// y (row r: ya, row r + 8: yb; P values each, the lane's outputs in order) = T_j x_j.
// B: the group's fragments, kTerms x WB words (term-major).
template <QFormat F, int kTerms>
__device__ __forceinline__ void transform(const Words<Shape<F>::W>& x, const uint32_t (&B)[kTerms][Shape<F>::WB],
                                          float (&ya)[Shape<F>::P], float (&yb)[Shape<F>::P]) {
  using S = Shape<F>;
  float acc[S::NT][4];
#pragma unroll
  for (int nt = 0; nt < S::NT; ++nt) acc[nt][0] = acc[nt][1] = acc[nt][2] = acc[nt][3] = 0.0f;
#pragma unroll
  for (int ks = 0; ks < S::KS; ++ks)
#pragma unroll
    for (int t = 0; t < kTerms; ++t)
#pragma unroll
      for (int nt = 0; nt < S::NT; ++nt)
        mma_bf16(acc[nt], x.a[2 * ks], x.b[2 * ks], x.a[2 * ks + 1], x.b[2 * ks + 1], B[t][nt * S::W + 2 * ks],
                 B[t][nt * S::W + 2 * ks + 1]);
#pragma unroll
  for (int nt = 0; nt < S::NT; ++nt) {
    ya[2 * nt] = acc[nt][0], ya[2 * nt + 1] = acc[nt][1];
    yb[2 * nt] = acc[nt][2], yb[2 * nt + 1] = acc[nt][3];
  }
}

// Identity: the lane's own bf16 values.
template <int W>
__device__ __forceinline__ void unpack(const uint32_t (&w)[W], float (&y)[2 * W]) {
#pragma unroll
  for (int j = 0; j < W; ++j) y[2 * j] = bf16_lo(w[j]), y[2 * j + 1] = bf16_hi(w[j]);
}

// Largest |y| of the group (NaN wins) over the quad's 4 lanes.
template <int P>
__device__ __forceinline__ float group_amax(const float (&y)[P]) {
  float am = 0.0f;
#pragma unroll
  for (int i = 0; i < P; ++i) am = abs_max_nan(am, y[i]);
  am = abs_max_nan(am, __shfl_xor_sync(0xFFFFFFFFu, am, 1));
  return abs_max_nan(am, __shfl_xor_sync(0xFFFFFFFFu, am, 2));
}

// MX group scale (§1): E from the amax bits, and the multiplier applied before rounding. MXFP4
// with E = -127 (amax subnormal or 0): 3 * 2^127 overflows, every nonzero element saturates to
// +-6 and zeros stay 0, as in the reference; mul = 0 marks that case (see mx_encode).
template <QFormat F>
__device__ __forceinline__ int mx_exponent(uint32_t abits) {
  return dev::e8m0_exponent(abits, F == QFormat::MXFP4 ? 0 : -2);
}
template <QFormat F>
__device__ __forceinline__ float mx_mul(int E) {
  // 2^-E is normal for E <= 126; E = 127 (amax >= 2^127, Inf or NaN) only for MXFP4: 3 * 2^-127.
  if (F == QFormat::MXFP4) return E == -127 ? 0.0f : (E < 127 ? 3.0f * __int_as_float((127 - E) << 23) : 3.0f * 0x1p-127f);
  return __int_as_float((127 - E) << 23);  // E in [-127, 126]
}
// 2^(E_g - E_max) for the operand, flushed to 0 below 2^-126: any |q| <= 8 times such a factor
// rounds to a zero of E4M3 (smallest subnormal 2^-9) with the same sign, as the exact factor does.
__device__ __forceinline__ float mx_factor(int d) { return __int_as_float(max(d + 127, 0) << 23); }
// Whether any code of the group is nonzero (for the span rule). Away from the clamp at E = -127,
// max |v| = amax 2^-E (x 3 for MXFP4) lies in [4, 8) ([3, 6)), so every nonzero group has a nonzero
// code; at E = -127 MXFP4 saturates (nonzero iff amax != 0) and the others compare amax 2^127
// with the rounding threshold (0.25 for E2M1, 0.5 for int4). A NaN group counts as all zero, as
// amax * mul > threshold is false for it.
template <QFormat F>
__device__ __forceinline__ bool mx_nonzero(uint32_t abits, int E) {
  if (F == QFormat::MXFP4 || E > -127) return abits != 0 && abits <= 0x7F800000u;  // a NaN amax: no
  return __fmul_rn(__uint_as_float(abits), 0x1p127f) > (F == QFormat::MXINT4 ? 0.5f : 0.25f);
}

// Elements i, i + 1 (i even) of a group's FP8 operand words: E4M3 (saturating), element i in
// byte i % 4 of word i / 4.
template <int N>
__device__ __forceinline__ void put_fp8_pair(uint32_t (&op)[N], int i, float a, float b) {
  const uint32_t pair = __nv_cvt_float2_to_fp8x2(make_float2(a, b), __NV_SATFINITE, __NV_E4M3);
  if (i & 2) op[i >> 2] |= pair << 16;
  else op[i >> 2] = pair & 0xFFFFu;
}

// Largest E_max - E_g of an exact chunk (exact_span()): 8 for E2M1 elements, 9 for int4.
template <QFormat F>
constexpr int kSpan = F == QFormat::MXINT4 ? 9 : 8;
// E = floor(log2 amax) + offset (mx_exponent without its clamp to [-127, 127]).
template <QFormat F>
constexpr int kExpOffset = F == QFormat::MXFP4 ? 0 : -2;
template <QFormat F>
__device__ __forceinline__ int mx_exponent_unclamped(uint32_t abits) {
  return int(abits >> 23) - 127 + kExpOffset<F>;
}
// Whether group amaxes between lo and hi (bits; the smallest and the largest of a tile) all have
// E in [-126, 126] unclamped, i.e. exponent fields in [1 - offset, 253 - offset] and finite: then
// no group is zero, subnormal, NaN or Inf, every group has a nonzero code, and 2^-E, 3 * 2^-E
// are normal (mx_encode_operand's preconditions). Other tiles take the general path.
template <QFormat F>
__device__ __forceinline__ bool mx_fast_range(uint32_t lo, uint32_t hi) {
  constexpr uint32_t kLo = uint32_t(1 - kExpOffset<F>) << 23;
  constexpr uint32_t kHi = (uint32_t((253 - kExpOffset<F> < 254 ? 253 - kExpOffset<F> : 254) + 1) << 23) - 1;
  return lo >= kLo && hi <= kHi;
}

// The FP8 operand of one MX group in the fast range (mx_fast_range): the reference's
// q * 2^(E_g - E_max) (mx_encode) computed in the scaled domain. With f = 2^max(E_g - E_max, -20),
// w = y * (mul * f) is RN(y * mul) * f exactly (f is a power of two; a w that underflows is
// below a quarter of the grid's spacing f / 2 and rounds to +0 either way), and rounding w to the
// E2M1 grid scaled by f (magic constant of max(|w|, f)) or to multiples of f (int4) gives q * f:
// one multiply per element less than mx_encode. A factor below 2^-20 would give
// |q f| < 2^-17, an E4M3 zero with the sign of q, as q * 2^-20 gives.
template <QFormat F, int P>
__device__ __forceinline__ void mx_encode_operand(const float (&y)[P], int Eg, int emax, uint32_t (&op)[P / 4]) {
  const int d = max(Eg - emax, -20);
  const uint32_t fbits = uint32_t(127 + d) << 23;
  const float f = __uint_as_float(fbits);
  // mul * f = 3 * 2^(d - E_g) (MXFP4) or 2^(d - E_g): normal, as -126 <= d - E_g <= 106
  const float m = __uint_as_float((F == QFormat::MXFP4 ? 0x40400000u : 0x3F800000u) + (uint32_t(d - Eg) << 23));
#pragma unroll
  for (int i = 0; i < P; i += 2) {
    float o[2];
#pragma unroll
    for (int u = 0; u < 2; ++u) {
      float w = __fmul_rn(y[i + u], m);
      if constexpr (F == QFormat::MXINT4) {
        w = fminf(fmaxf(w, -8.0f * f), 7.0f * f);
        o[u] = dev::round_to_spacing(w, __fmul_rn(f, 12582912.0f)).r;  // C = 1.5 * 2^23 f: spacing f
      } else {
        if constexpr (F == QFormat::MXFP4_OCP) w = fminf(fmaxf(w, -6.0f * f), 6.0f * f);
        o[u] = dev::e2m1_round(w, dev::e2m1_exp_bits(w, fbits)).r;
      }
    }
    put_fp8_pair(op, i, o[0], o[1]);
  }
}

// P values of one MX group -> FP8 operand words (q * f, 4 per word, element i in byte i % 4) and,
// if kCodes, packed codes (element i in nibble i). The reference's operation order
// (fused_quantize_ref.cpp). mul == 0 (MXFP4, E = -127) is the saturating case: handled per group
// (a rare branch) so that the element loop stays branch-free.
template <QFormat F, int P, bool kCodes>
__device__ __forceinline__ void mx_encode(float (&y)[P], float mul, float f, uint32_t (&op)[P / 4],
                                          uint32_t& codes) {
  if (F == QFormat::MXFP4 && mul == 0.0f) {
#pragma unroll
    for (int i = 0; i < P; ++i) y[i] = y[i] != 0.0f ? copysignf(6.0f, y[i]) : 0.0f;
    mul = 1.0f;
  }
  codes = 0;
#pragma unroll
  for (int i = 0; i < P; i += 2) {
    float o[2];
#pragma unroll
    for (int u = 0; u < 2; ++u) {
      float v = __fmul_rn(y[i + u], mul);
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
      if (kCodes) codes |= code << (4 * (i + u));
      o[u] = __fmul_rn(q.r, f);
    }
    put_fp8_pair(op, i, o[0], o[1]);
  }
}

// NVFP4 (§1): q = RNE_E2M1((y g) / s) with the quotient correctly rounded by Markstein's
// correction from rinv = RN(1/s) (checked against IEEE division for every E4M3 s on 2.5e8
// random fp32 y: equal wherever |q| >= 2^-60; smaller quotients round to code 0 either way).
// A group whose g amax overflows to Inf (finite y, large g) divides instead: Markstein's residual
// Inf - Inf would be NaN where the reference's Inf / s saturates to +-6.
// op: the bf16 operand q * s (exact: 2 + 4 significant bits), 2 per word.
template <int P, bool kCodes, bool kDivide>
__device__ __forceinline__ void nv_encode_group(const float (&y)[P], float g, float sc, float rinv, uint32_t (&op)[P / 2],
                                                uint32_t& codes) {
  codes = 0;
#pragma unroll
  for (int i = 0; i < P; i += 2) {
    float o[2];
#pragma unroll
    for (int u = 0; u < 2; ++u) {
      const float xa = __fmul_rn(y[i + u], g);
      float v;
      if constexpr (kDivide) {
        v = __fdiv_rn(xa, sc);
      } else {
        const float q0 = __fmul_rn(xa, rinv);
        const float r = __fmaf_rn(-sc, q0, xa);
        v = __fmaf_rn(r, rinv, q0);
      }
      v = fminf(fmaxf(v, -6.0f), 6.0f);
      const uint32_t eb = dev::e2m1_exp_bits(v);
      const dev::GridRound q = dev::e2m1_round(v, eb);
      if (kCodes) codes |= dev::e2m1_code(q, eb) << (4 * (i + u));
      o[u] = __fmul_rn(q.r, sc);
    }
    op[i >> 1] = __byte_perm(__float_as_uint(o[0]), __float_as_uint(o[1]), 0x7632);
  }
}
template <int P, bool kCodes>
__device__ __forceinline__ void nv_encode(const float (&y)[P], float g, float ga, float sc, float rinv,
                                          uint32_t (&op)[P / 2], uint32_t& codes) {  // ga = g amax
  if (ga > 3.40282347e38f) nv_encode_group<P, kCodes, true>(y, g, sc, rinv, op, codes);  // rare
  else nv_encode_group<P, kCodes, false>(y, g, sc, rinv, op, codes);
}

// Stores of P elements' outputs (8-byte aligned by the layout).
template <int N>  // N 32-bit words
__device__ __forceinline__ void store_words(void* p, const uint32_t (&w)[N]) {
  if constexpr (N == 2) *reinterpret_cast<uint2*>(p) = make_uint2(w[0], w[1]);
  else *reinterpret_cast<uint4*>(p) = make_uint4(w[0], w[1], w[2], w[3]);
}
template <int P>  // P/2 code bytes
__device__ __forceinline__ void store_codes(uint8_t* p, uint32_t codes) {
  if constexpr (P == 8) *reinterpret_cast<uint32_t*>(p) = codes;
  else *reinterpret_cast<uint16_t*>(p) = uint16_t(codes);
}
template <int P>
__device__ __forceinline__ void store_floats(float* p, const float (&y)[P]) {
#pragma unroll
  for (int i = 0; i < P; i += 4) *reinterpret_cast<float4*>(p + i) = make_float4(y[i], y[i + 1], y[i + 2], y[i + 3]);
}

}  // namespace tile
}  // namespace cuda
}  // namespace wush

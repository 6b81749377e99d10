// Device codecs of the formats (REFERENCE.md §1) and the FP8 chunk operand (§7), shared by the
// fused quantizer and the weight preparation. Operation order matches fused_quantize_ref.cpp.
#pragma once
#include <cuda_bf16.h>
#include <cuda_fp16.h>
#include <cuda_fp8.h>

#include <cstdint>

#include "cuda/wush_cuda.h"

namespace wush {
namespace cuda {
namespace dev {

// Exact 2^e for e >= -149 (subnormals included), 0 below; e <= 127. Branch-free: the normal part
// 2^max(e, -126) times 2^(e + 126) (in [2^-23, 1) or rounding to 0) when e is below -126.
__device__ __forceinline__ float pow2i(int e) {
  const float n = __int_as_float((max(e, -126) + 127) << 23);
  const float sub = __int_as_float((max(e + 126, -127) + 127) << 23);  // 2^(e + 126) or +0
  return e < -126 ? __fmul_rn(n, sub) : n;
}

// floor(log2 a) + offset, clamped to E8M0's exponents [-127, 127]; a >= 0 given as its bits.
// A zero or subnormal a has exponent field 0 -> -127 - ... -> clamped to -127.
__device__ __forceinline__ int e8m0_exponent(uint32_t abits, int offset) {
  const int e = int(abits >> 23) - 127 + offset;
  return max(-127, min(127, e));
}

// RNE to E2M1 magnitude with saturation at 6, sign in bit 3, zero always code 0.
// Thresholds are the midpoints of the grid {0, .5, 1, 1.5, 2, 3, 4, 6}; '>=' where the upper
// neighbour has the even mantissa, '>' where the lower one has it.
__device__ __forceinline__ uint32_t e2m1_encode(float v) {
  const float a = fabsf(v);
  const uint32_t m = (a > 0.25f) + (a >= 0.75f) + (a > 1.25f) + (a >= 1.75f) + (a > 2.5f) +
                     (a >= 3.5f) + (a > 5.0f);
  return m | ((v < 0.0f && m != 0) ? 8u : 0u);
}

// E2M1 code -> value: magnitudes 0, .5, 1, 1.5 are code/2; from code 4 on, 2^(c/2 - 1) (1 + (c&1)/2).
__device__ __forceinline__ float e2m1_decode(uint32_t c) {
  const uint32_t m = c & 7u;
  const float a = m < 4 ? 0.5f * float(m) : __int_as_float(((m >> 1) + 126u) << 23 | (m & 1u) << 22);
  return (c & 8u) ? -a : a;
}

__device__ __forceinline__ float int4_decode(uint32_t c) { return float(int(c & 7u) - int(c & 8u)); }

template <QFormat F>
__device__ __forceinline__ float decode_elem(uint32_t c) {
  if constexpr (F == QFormat::MXINT4) return int4_decode(c);
  else return e2m1_decode(c);
}

__device__ __forceinline__ uint32_t e4m3_encode_sat(float v) {
  return __nv_cvt_float_to_fp8(v, __NV_SATFINITE, __NV_E4M3);
}
// x / 6 by Markstein's correction from RN(1/6): equal to IEEE division for every float
// x >= 2^-125 (all 2^31 non-negative floats checked on the host against x / 6.0f: the only
// differences are below 2^-125, where both quotients encode to E4M3 zero and stay below 448).
// x = Inf would give NaN (Inf - Inf): the caller divides there.
__device__ __forceinline__ float div6(float x) {
  const float inv6 = 0.16666667163372040f;  // RN(1/6)
  const float q0 = __fmul_rn(x, inv6);
  return __fmaf_rn(__fmaf_rn(-6.0f, q0, x), inv6, q0);
}

__device__ __forceinline__ float e4m3_decode(uint32_t b) {
  return __half2float(__half(__nv_cvt_fp8_to_halfraw(__nv_fp8_storage_t(b), __NV_E4M3)));
}

// ---- grid rounding without compares (the fused quantizer's hot path) -----------------------
// RNE onto a grid of spacing sp by the magic-constant trick: with C = 1.5 * 2^23 * sp,
// (v + C) lies in [2^23 sp, 2^24 sp) for |v| < 2^22 sp, where fp32's ulp is exactly sp, so the
// addition rounds v to a multiple of sp, ties to the even multiple (C / sp = 3 * 2^22 is even);
// (v + C) - C is exact, and a result of zero is +0 (C - C), as the canonical code 0 decodes.
// k = bits(v + C) - bits(C) is that multiple as an integer.
struct GridRound {
  float r;  // the rounded value
  int k;    // r / sp
};
__device__ __forceinline__ GridRound round_to_spacing(float v, float C) {
  const float sum = __fadd_rn(v, C);
  return {__fsub_rn(sum, C), int(__float_as_uint(sum) - __float_as_uint(C))};
}
// E2M1 (§1, sat. at 6 by the caller: |v| <= 6): spacing 0.5 below 2, 1 in [2, 4), 2 from 4 on,
// i.e. sp = 2^(e - 1) with e the exponent of max(|v|, 1). Equals e2m1_encode/e2m1_decode
// (checked on every 97th fp32 with |v| <= 10 against the table-search reference).
// Exponent bits of max(|v|, lo) for a power of two lo given as its bits (1: the E2M1 grid itself;
// f: the grid scaled by f, mx_encode_operand).
__device__ __forceinline__ uint32_t e2m1_exp_bits(float v, uint32_t lo_bits = 0x3F800000u) {
  return max(__float_as_uint(v) & 0x7F800000u, lo_bits);
}
__device__ __forceinline__ GridRound e2m1_round(float v, uint32_t ebits) {
  // C = 1.5 * 2^23 * 2^(e-1) = 2^e * 1.5 * 2^22: a product (fma pipe) rather than an integer add
  return round_to_spacing(v, __fmul_rn(__uint_as_float(ebits), 6291456.0f));
}
// Code of a rounded E2M1 value: |k| counts spacings; offset 2e for spacing 2^(e-1); sign bit 3
// only for nonzero values.
__device__ __forceinline__ uint32_t e2m1_code(const GridRound& q, uint32_t ebits) {
  const uint32_t mag = uint32_t(abs(q.k)) + (ebits >> 22) - 254u;
  return mag | (q.k < 0 ? 8u : 0u);
}
// int4 (MXINT4): spacing 1, |v| clamped to [-8, 7] by the caller; code = two's complement nibble.
__device__ __forceinline__ GridRound int_round(float v) { return round_to_spacing(v, 12582912.0f); }  // 1.5 * 2^23

// Packs 8 consecutive codes (4 bits each) of a group into one word: element 2i in the low nibble
// of byte i (the layout of `codes`).
template <int G>
struct GroupCodes {
  uint32_t w[G / 8];
  __device__ __forceinline__ uint32_t get(int i) const { return (w[i >> 3] >> (4 * (i & 7))) & 15u; }
  __device__ __forceinline__ bool nonzero() const {
    uint32_t any = 0;
#pragma unroll
    for (int i = 0; i < G / 8; ++i) any |= w[i];
    return any != 0;  // codes are canonical: a zero element is code 0 in every format
  }
};

// The FP8 operand of one group inside its chunk: q * 2^(E_g - E_max), 16 bytes per 16 elements.
template <QFormat F, int G>
__device__ __forceinline__ void store_fp8_group(const GroupCodes<G>& gc, int d, uint8_t* dst) {
  const float f = pow2i(-d);
#pragma unroll
  for (int v = 0; v < G / 16; ++v) {
    uint32_t word[4];
#pragma unroll
    for (int w = 0; w < 4; ++w) {
      const int i = v * 16 + w * 4;
      const uint32_t lo = __nv_cvt_float2_to_fp8x2(
          make_float2(decode_elem<F>(gc.get(i)) * f, decode_elem<F>(gc.get(i + 1)) * f),
          __NV_SATFINITE, __NV_E4M3);
      const uint32_t hi = __nv_cvt_float2_to_fp8x2(
          make_float2(decode_elem<F>(gc.get(i + 2)) * f, decode_elem<F>(gc.get(i + 3)) * f),
          __NV_SATFINITE, __NV_E4M3);
      word[w] = (lo & 0xFFFFu) | (hi << 16);
    }
    *reinterpret_cast<uint4*>(dst + v * 16) = make_uint4(word[0], word[1], word[2], word[3]);
  }
}

// NVFP4's bf16 operand of one group: q * s, exact in bf16 (2 + 4 significant bits).
template <int G>
__device__ __forceinline__ void store_bf16_group(const GroupCodes<G>& gc, float s, __nv_bfloat16* dst) {
#pragma unroll
  for (int v = 0; v < G / 8; ++v) {
    uint32_t word[4];
#pragma unroll
    for (int w = 0; w < 4; ++w) {
      const int i = v * 8 + w * 2;
      __nv_bfloat162 p = __floats2bfloat162_rn(e2m1_decode(gc.get(i)) * s, e2m1_decode(gc.get(i + 1)) * s);
      word[w] = *reinterpret_cast<uint32_t*>(&p);
    }
    *reinterpret_cast<uint4*>(dst + v * 8) = make_uint4(word[0], word[1], word[2], word[3]);
  }
}

// A padding row's part of one chunk: `len` zero elements of ESZ bytes, chunk scale 0.
template <int ESZ>
__device__ __forceinline__ void zero_chunk_row(void* operand, float* chunk_scales, int64_t row, int64_t rows,
                                               int64_t K, int64_t c, int len) {
  if (operand) {
    uint4* dst = reinterpret_cast<uint4*>(static_cast<uint8_t*>(operand) + (row * K + c * 128) * ESZ);
    for (int v = 0; v < len * ESZ / 16; ++v) dst[v] = make_uint4(0, 0, 0, 0);
  }
  if (chunk_scales && ESZ == 1) chunk_scales[c * rows + row] = 0.0f;
}

// Adds the active lanes' counts to *counter with one atomic per warp.
__device__ __forceinline__ void count_warp(unsigned count, unsigned long long* counter) {
  const unsigned mask = __activemask();
  const unsigned sum = __reduce_add_sync(mask, count);
  if (sum && (threadIdx.x & 31) == unsigned(__ffs(mask) - 1)) atomicAdd(counter, (unsigned long long)sum);
}

}  // namespace dev
}  // namespace cuda
}  // namespace wush

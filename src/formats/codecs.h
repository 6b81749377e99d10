// Element and scale codecs of the microscaling formats (REFERENCE.md §1; OCP MX v1.0 §5.3-5.4):
// minifloats E2M1 / E4M3 / E5M2, the power-of-two scale E8M0, BF16 and two's-complement INT4/INT8.
// Scalar, branch-light `_ref` functions: the CPU kernels (rules.h) inline them, the tests check them
// against the spec's tables, and the CUDA kernels (src/cuda) will compile the same code (WUSH_HD).
// Every rounding here is round-to-nearest, ties to even, saturating at the largest finite value.
#pragma once
#include <cmath>
#include <cstdint>
#include <cstring>
#include <limits>

#ifdef __CUDACC__
#define WUSH_HD __host__ __device__ __forceinline__
#else
#define WUSH_HD inline
#endif

namespace wush {

// ---- bit casts ---------------------------------------------------------------------------------
template <class T> struct FloatBits;
template <> struct FloatBits<float> {
  using U = uint32_t;
  static constexpr int kMant = 23;  // stored mantissa bits
};
template <> struct FloatBits<double> {
  using U = uint64_t;
  static constexpr int kMant = 52;
};

template <class T> WUSH_HD typename FloatBits<T>::U bits_of(T x) {
  typename FloatBits<T>::U u;
  std::memcpy(&u, &x, sizeof u);
  return u;
}
template <class T> WUSH_HD T from_bits(typename FloatBits<T>::U u) {
  T x;
  std::memcpy(&x, &u, sizeof x);
  return x;
}

// 2^e as a compile-time constant (no ldexp in hot loops).
constexpr double pow2(int e) { return e == 0 ? 1.0 : e > 0 ? 2.0 * pow2(e - 1) : 0.5 * pow2(e + 1); }

// Neighbours of a finite x in T (x = 0 steps to the smallest subnormal of the needed sign).
template <class T> WUSH_HD T prev_float(T x) {
  if (x == 0) return -std::numeric_limits<T>::denorm_min();
  auto u = bits_of(x);
  return from_bits<T>(x > 0 ? u - 1 : u + 1);
}
template <class T> WUSH_HD T next_float(T x) { return -prev_float(-x); }

// ---- minifloats --------------------------------------------------------------------------------
// 1 sign bit, E exponent bits, M mantissa bits, minimum normal exponent EMIN (bias 1 - EMIN), the
// largest finite value (1 + MAXMANT / 2^M) * 2^EMAX, and which codes are Inf/NaN.
enum class Special { None, NanOnlyAllOnes, Ieee };  // E2M1 / E4M3 ("FN") / E5M2

template <int E, int M, int EMIN, int EMAX, int MAXMANT, Special SPECIAL> struct MiniFloat {
  static constexpr int kBits = 1 + E + M;
  static constexpr uint8_t kSignBit = uint8_t(1u << (E + M));
  static constexpr double kMax = (1.0 + double(MAXMANT) / (1 << M)) * pow2(EMAX);
  static constexpr double kMinNormal = pow2(EMIN);
  static constexpr double kMinSubnormal = pow2(EMIN - M);

  // Rounds a >= 0 (finite, in float or double) to the nearest value of the format, ties to even
  // mantissa, saturating at kMax. The normal range keeps M mantissa bits of the bit pattern; the
  // subnormal range is the multiples of 2^(EMIN-M), reached by adding 1.5 * 2^(P+EMIN-M) (RNE).
  template <class T> static WUSH_HD T round(T a) {
    using U = typename FloatBits<T>::U;
    constexpr int P = FloatBits<T>::kMant;
    constexpr int drop = P - M;
    U u = bits_of(a);
    u += ((U(1) << (drop - 1)) - 1) + ((u >> drop) & 1);
    u &= ~((U(1) << drop) - 1);
    const T normal = from_bits<T>(u);
    constexpr T magic = T(1.5 * pow2(P + EMIN - M));
    const T sub = (a + magic) - magic;
    const T r = a < T(kMinNormal) ? sub : normal;
    return r < T(kMax) ? r : T(kMax);
  }

  // Magnitude code of r, a value of the format (r >= 0, e.g. from round()).
  static WUSH_HD uint8_t magnitude_code(float r) {
    if (r < float(kMinNormal)) return uint8_t(r * float(pow2(M - EMIN)));  // r = k 2^(EMIN-M)
    const uint32_t u = bits_of(r);
    const int e = int(u >> 23) - 127;
    return uint8_t(((e - EMIN + 1) << M) | ((u >> (23 - M)) & ((1u << M) - 1)));
  }

  static WUSH_HD bool is_nan(uint8_t c) {
    const unsigned ef = (c >> M) & ((1u << E) - 1), m = c & ((1u << M) - 1);
    if (SPECIAL == Special::NanOnlyAllOnes) return ef == (1u << E) - 1 && m == (1u << M) - 1;
    if (SPECIAL == Special::Ieee) return ef == (1u << E) - 1 && m != 0;
    return false;
  }

  // x (finite or not) -> code: RNE, saturating; NaN -> the canonical NaN code (none for E2M1: 0).
  static WUSH_HD uint8_t encode(float x) {
    if (x != x) return SPECIAL == Special::None ? 0 : uint8_t((1u << (E + M)) - 1);
    const float r = round(std::fabs(x) > float(kMax) ? float(kMax) : std::fabs(x));
    return uint8_t(magnitude_code(r) | (std::signbit(x) ? kSignBit : 0));
  }

  static WUSH_HD float decode(uint8_t c) {
    const unsigned ef = (c >> M) & ((1u << E) - 1), m = c & ((1u << M) - 1);
    const bool neg = (c & kSignBit) != 0;
    float v;
    if (is_nan(c)) {
      v = std::numeric_limits<float>::quiet_NaN();
    } else if (SPECIAL == Special::Ieee && ef == (1u << E) - 1) {
      v = std::numeric_limits<float>::infinity();
    } else if (ef == 0) {
      v = float(m) * float(kMinSubnormal);
    } else {
      v = std::ldexp(1.0f + float(m) / float(1u << M), int(ef) - 1 + EMIN);
    }
    return neg ? -v : v;
  }
};

// OCP MX v1.0 §5.3.3: E2M1 max 6 (S.11.1), no Inf/NaN.
using E2M1 = MiniFloat<2, 1, 0, 2, 1, Special::None>;
// OCP OFP8 E4M3 ("FN"): max 448 (S.1111.110), NaN = S.1111.111, no Inf.
using E4M3 = MiniFloat<4, 3, -6, 8, 6, Special::NanOnlyAllOnes>;
// OCP OFP8 E5M2: max 57344 (S.11110.11), IEEE Inf/NaN.
using E5M2 = MiniFloat<5, 2, -14, 15, 3, Special::Ieee>;
static_assert(E2M1::kMax == 6.0 && E4M3::kMax == 448.0 && E5M2::kMax == 57344.0, "OCP maxima");

WUSH_HD uint8_t e2m1_encode_ref(float x) { return E2M1::encode(x); }
WUSH_HD float e2m1_decode_ref(uint8_t c) { return E2M1::decode(c & 0xF); }
WUSH_HD uint8_t e4m3_encode_ref(float x) { return E4M3::encode(x); }
WUSH_HD float e4m3_decode_ref(uint8_t c) { return E4M3::decode(c); }
WUSH_HD uint8_t e5m2_encode_ref(float x) { return E5M2::encode(x); }
WUSH_HD float e5m2_decode_ref(uint8_t c) { return E5M2::decode(c); }

// ---- E8M0 (OCP MX v1.0 §5.4.1): 2^(c - 127), c = 0..254; 255 = NaN ------------------------------
WUSH_HD float e8m0_decode_ref(uint8_t c) {
  if (c == 255) return std::numeric_limits<float>::quiet_NaN();
  // 2^(c-127) built from bits: c >= 1 is a normal float, c = 0 is the subnormal 2^-127.
  return c == 0 ? from_bits<float>(0x00400000u) : from_bits<float>(uint32_t(c) << 23);
}
// floor(log2 a) for finite a > 0: the exponent field of a normal double (every float is one).
WUSH_HD int floor_log2(double a) {
  const int ef = int((bits_of(a) >> 52) & 0x7FF);
  return ef != 0 ? ef - 1023 : std::ilogb(a);
}
// The E8M0 code of 2^clamp(floor(log2 amax) - offset, -127, 127); amax = 0 -> code 0 (2^-127).
WUSH_HD uint8_t e8m0_code_for(double amax, int offset) {
  if (!(amax > 0)) return 0;
  int e = floor_log2(amax) - offset;
  e = e < -127 ? -127 : e > 127 ? 127 : e;
  return uint8_t(e + 127);
}
// Code of an exact power of two in [2^-127, 2^127]; anything else -> 255 (NaN).
WUSH_HD uint8_t e8m0_encode_ref(float p) {
  const uint32_t u = bits_of(p);
  if (u == 0x00400000u) return 0;                         // 2^-127, the one subnormal scale
  const uint32_t ef = u >> 23;                            // sign bit must be 0
  return ((u & 0x7FFFFFu) == 0 && ef >= 1 && ef <= 254) ? uint8_t(ef) : uint8_t(255);
}

// ---- BF16 ---------------------------------------------------------------------------------------
WUSH_HD uint16_t bf16_encode_ref(float x) {
  uint32_t u = bits_of(x);
  if (x != x) return uint16_t((u >> 16) | 0x40);  // keep NaN a (quiet) NaN
  u += 0x7FFFu + ((u >> 16) & 1u);
  return uint16_t(u >> 16);
}
WUSH_HD float bf16_decode_ref(uint16_t c) { return from_bits<float>(uint32_t(c) << 16); }
WUSH_HD float bf16_round_ref(float x) { return bf16_decode_ref(bf16_encode_ref(x)); }
// One RNE rounding of a finite double d >= 0 to BF16 (no double rounding through float).
WUSH_HD float bf16_round_ref(double d) {
  if (d < pow2(-126)) {  // BF16 subnormals: multiples of 2^-133
    constexpr double magic = 1.5 * pow2(52 - 133);
    return float((d + magic) - magic);
  }
  uint64_t u = bits_of(d);
  u += ((uint64_t(1) << 44) - 1) + ((u >> 45) & 1);  // keep 7 of 52 mantissa bits
  u &= ~((uint64_t(1) << 45) - 1);
  return float(from_bits<double>(u));  // exact (or Inf past the BF16 range)
}

// ---- two's-complement integers -------------------------------------------------------------------
WUSH_HD uint8_t int4_encode_ref(int q) { return uint8_t(q & 0xF); }
WUSH_HD int int4_decode_ref(uint8_t c) { return int(c & 0xF) - ((c & 0x8) ? 16 : 0); }
WUSH_HD uint8_t int8_encode_ref(int q) { return uint8_t(q & 0xFF); }
WUSH_HD int int8_decode_ref(uint8_t c) { return int(int8_t(c)); }

}  // namespace wush

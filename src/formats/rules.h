// The rule of every format (REFERENCE.md §1 table): how a group's stored scale follows from its
// statistics, and how one element is quantized against that scale. Exact by construction:
// every rounding decision is taken on exact quantities (no double rounding), so fp32 and fp64
// inputs with the same values get the same codes, and a float64 re-derivation of the rule agrees
// element for element (tests/formats_rules_test.cpp).
//
// A Rule has:
//   scale(stats, g)        -> GroupScale {stored scale value, its code, overflow}
//   Elem<T>(scale, g)      -> element quantizer of one group: value(x) (= decode(code(x))),
//                             code(x), decode(code); T = float or double
//   kScaleCodes            -> > 0 when the scale is a small code (E8M0 / E4M3): the kernels keep one
//                             Elem per code instead of building one per group
//   scale_of_code(c)       -> the value of scale code c (when kScaleCodes > 0)
//   code_of_scale(v)       -> its inverse; kScaleCodes or more when v is no scale of the format
// A group whose stored scale is 0 decodes to zeros (code 0); the kernels handle it, not the rules.
#pragma once
#include <cfloat>
#include <cmath>
#include <cstdint>

#include "formats/codecs.h"

namespace wush::rules {

struct GroupStats {
  double amax = 0;   // max |x| over the group
  double sumsq = 0;  // sum of x^2 (only rules with kNeedsSumsq)
  int64_t n = 0;     // group length, padding included
};

struct GroupScale {
  float value = 0;
  int code = 0;
  bool overflow = false;
};

// Sign of f * b - num, exactly (f, num in T; b a float value; num = 0 only with f * b = 0 sign).
inline int cmp_product(float f, double b, double num) {
  const double p = double(f) * b;  // 24 x 24 bits: exact in double
  return p > num ? 1 : p < num ? -1 : 0;
}
inline int cmp_product(double f, double b, double num) {
  // Veltkamp split f = hi + lo (26 + 27 bits): hi * b and lo * b are exact (b has 24 bits).
  const double c = f * 134217729.0;  // 2^27 + 1
  const double hi = c - (c - f), lo = f - hi;
  const double d = hi * b - num;  // exact by Sterbenz' lemma: hi * b and num are within 2x
  const double e = -(lo * b);
  return d > e ? 1 : d < e ? -1 : 0;
}

// ---- E2M1 against the scale a / b: value(x) = sign(x) fl(q a / b), q = RNE_E2M1(|x| b / a) --------
// The seven decision boundaries |x| = t_k a / b (t_k the midpoints of the E2M1 grid) are turned into
// fp32/fp64 thresholds once per scale, so that "|x| > thr_k" is exactly the RNE decision: ties go to
// the even code (boundary k between codes k-1 and k: to k-1 for odd k, to k for even k).
template <class T> struct E2M1Quant {
  static constexpr double kGrid[8] = {0, 0.5, 1, 1.5, 2, 3, 4, 6};
  T thr[7];
  T val[8];

  E2M1Quant() = default;
  // a: the group scale (an E8M0 or E4M3 value, > 0); b: 3 (MXFP4 reference rule), 1 (OCP), g (NVFP4)
  E2M1Quant(double a, double b) {
    if (!(a > 0)) {  // a zero scale: everything to code 0 (the kernels never ask for it)
      for (int k = 0; k < 8; ++k) val[k] = 0;
      for (int k = 0; k < 7; ++k) thr[k] = std::numeric_limits<T>::max();
      return;
    }
    for (int k = 0; k < 8; ++k) val[k] = T((kGrid[k] * a) / b);  // one rounding of an exact quotient
    for (int k = 1; k < 8; ++k) {
      const double num = 0.5 * (kGrid[k - 1] + kGrid[k]) * a;  // boundary * b, exact
      // f = the largest T <= num / b, found from a close guess by exact comparisons
      T f = T(num / b);
      while (f > 0 && cmp_product(f, b, num) > 0) f = prev_float(f);
      while (cmp_product(next_float(f), b, num) <= 0) f = next_float(f);
      const bool exact = cmp_product(f, b, num) == 0;
      const bool tie_up = (k % 2) == 0;
      thr[k - 1] = (exact && tie_up) ? prev_float(f) : f;  // |x| >= f  <=>  |x| > prev(f)
    }
  }
  T value(T x) const {
    const T m = std::fabs(x);
    T v = 0;
    for (int k = 0; k < 7; ++k) v = m > thr[k] ? val[k + 1] : v;
    return std::copysign(v, x);
  }
  uint8_t code(T x) const {
    const T m = std::fabs(x);
    int c = 0;
    for (int k = 0; k < 7; ++k) c += m > thr[k];
    return uint8_t(c | (std::signbit(x) ? 8 : 0));
  }
  T decode(uint8_t c) const { return (c & 8) ? -val[c & 7] : val[c & 7]; }
};

// ---- integers on a power-of-two scale X: q = clamp(RNE(x / X), LO, HI), value q X (OCP MXINT) --------
template <class T, int LO, int HI, int BITS> struct PowerOfTwoIntQuant {
  T X = 0, inv = 0;  // X and 1/X are powers of two: x * inv is exact
  PowerOfTwoIntQuant() = default;
  PowerOfTwoIntQuant(float X_, float inv_) : X(X_), inv(inv_) {}
  T rounded(T x) const {
    T y = x * inv;
    y = y < T(LO) ? T(LO) : y > T(HI) ? T(HI) : y;  // clamp before rounding: same result, bounds are integers
    constexpr T magic = T(1.5 * pow2(FloatBits<T>::kMant));
    return (y + magic) - magic;  // RNE to an integer (|y| <= 128)
  }
  T value(T x) const { return rounded(x) * X; }
  uint8_t code(T x) const { return uint8_t(int(rounded(x)) & ((1 << BITS) - 1)); }
  T decode(uint8_t c) const {
    const int q = int(c) - ((c >> (BITS - 1)) & 1) * (1 << BITS);
    return T(q) * X;
  }
};

// ---- E4M3 on a power-of-two scale X (OCP MXFP8): q = E4M3(x / X), value q X ---------------------------
template <class T> struct E4M3PowerOfTwoQuant {
  T X = 0, inv = 0;
  E4M3PowerOfTwoQuant() = default;
  E4M3PowerOfTwoQuant(float X_, float inv_) : X(X_), inv(inv_) {}
  T value(T x) const { return std::copysign(E4M3::round(std::fabs(x) * inv) * X, x); }
  uint8_t code(T x) const {
    const float r = float(E4M3::round(std::fabs(x) * inv));
    return uint8_t(E4M3::magnitude_code(r) | (std::signbit(x) ? E4M3::kSignBit : 0));
  }
  T decode(uint8_t c) const { return T(e4m3_decode_ref(c)) * X; }
};

// ---- INT4 midrise (paper's INT4): q = clamp(floor(x / s), -8, 7), value (q + 1/2) s -------------------
// floor(x / s) >= k  <=>  x >= k s, and k s, (k + 1/2) s are exact (s is a BF16 value, |k| <= 8): the
// level is chosen by exact comparisons, no division. (A select between precomputed values keeps
// the loop vectorizable: GCC does not if-convert "c - 1" arms under trapping math.)
template <class T> struct MidriseInt4Quant {
  T thr[15];  // k s, k = -7..7
  T lvl[16];  // (q + 1/2) s, q = -8..7
  MidriseInt4Quant() = default;
  explicit MidriseInt4Quant(float s) {
    for (int k = -7; k <= 7; ++k) thr[k + 7] = T(k) * T(s);
    for (int q = -8; q <= 7; ++q) lvl[q + 8] = (T(q) + T(0.5)) * T(s);
  }
  T value(T x) const {
    T v = lvl[0];
    for (int k = 0; k < 15; ++k) v = x >= thr[k] ? lvl[k + 1] : v;
    return v;
  }
  uint8_t code(T x) const {
    int q = -8;
    for (int k = 0; k < 15; ++k) q += x >= thr[k];
    return int4_encode_ref(q);
  }
  T decode(uint8_t c) const { return lvl[int4_decode_ref(c) + 8]; }
};

// ---- INT8 on an FP32 scale s: q = clamp(RNE(x / s), -127, 127), value fl(q s) -------------------------
template <class T> struct Int8Quant {
  float s = 0;
  Int8Quant() = default;
  explicit Int8Quant(float s_) : s(s_) {}
  double level(T x) const {
    const double xd = double(x), sd = double(s);
    double y = xd / sd;
    y = y < -128.0 ? -128.0 : y;
    y = y > 128.0 ? 128.0 : y;
    constexpr double magic = 1.5 * pow2(52);
    double r = (y + magic) - magic;
    // y was rounded once: fix the decision with the exact half-way points (r +- 1/2) s (33 bits);
    // branch-free (& and |) so that the loop vectorizes
    const double hi = (r + 0.5) * sd, lo = (r - 0.5) * sd, half = 0.5 * r;
    const bool odd = ((half + magic) - magic) != half;
    r = ((xd > hi) | ((xd == hi) & odd)) ? r + 1.0 : r;
    r = ((xd < lo) | ((xd == lo) & odd)) ? r - 1.0 : r;
    r = r < -127.0 ? -127.0 : r;
    return r > 127.0 ? 127.0 : r;
  }
  T value(T x) const { return T(level(x) * double(s)); }
  uint8_t code(T x) const { return int8_encode_ref(int(level(x))); }
  T decode(uint8_t c) const { return T(double(int8_decode_ref(c)) * double(s)); }
};

// ---- the rules --------------------------------------------------------------------------------------
// E8M0 scales: the value of code c and 1/value (= the value of code 254 - c).
inline float e8m0_inverse(int c) { return e8m0_decode_ref(uint8_t(254 - c)); }

// MXFP4, reference rule (default): s = 2^floor(log2 amax), q = RNE_E2M1(3x/s), dequant q s / 3.
struct Mxfp4Rule {
  static constexpr int kScaleCodes = 255;
  static constexpr bool kNeedsSumsq = false;
  template <class T> using Elem = E2M1Quant<T>;
  static GroupScale scale(const GroupStats& st, float) {
    const int c = e8m0_code_for(st.amax, 0);
    return {e8m0_decode_ref(uint8_t(c)), c, false};
  }
  static float scale_of_code(int c) { return e8m0_decode_ref(uint8_t(c)); }
  static int code_of_scale(float v) { return e8m0_encode_ref(v); }
  template <class T> static Elem<T> elem(float s, float) { return Elem<T>(s, 3.0); }
};

// MXFP4, OCP rule: X = 2^(floor(log2 amax) - 2), q = clamp(RNE_E2M1(x/X), -6, 6), dequant q X.
struct Mxfp4OcpRule {
  static constexpr int kScaleCodes = 255;
  static constexpr bool kNeedsSumsq = false;
  template <class T> using Elem = E2M1Quant<T>;
  static GroupScale scale(const GroupStats& st, float) {
    const int c = e8m0_code_for(st.amax, 2);  // 2 = emax of E2M1
    return {e8m0_decode_ref(uint8_t(c)), c, false};
  }
  static float scale_of_code(int c) { return e8m0_decode_ref(uint8_t(c)); }
  static int code_of_scale(float v) { return e8m0_encode_ref(v); }
  template <class T> static Elem<T> elem(float X, float) { return Elem<T>(X, 1.0); }
};

// NVFP4: s = E4M3(g amax / 6) (saturated at 448, overflow reported), q = RNE_E2M1(x g / s), q s / g.
struct Nvfp4Rule {
  static constexpr int kScaleCodes = 127;  // non-negative finite E4M3 codes
  static constexpr bool kNeedsSumsq = false;
  template <class T> using Elem = E2M1Quant<T>;
  static GroupScale scale(const GroupStats& st, float g) {
    const double want = double(g) * st.amax / 6.0;  // g amax: exact; one rounding of the quotient
    GroupScale r;
    r.overflow = want > E4M3::kMax;
    r.value = float(E4M3::round(want));
    r.code = E4M3::magnitude_code(r.value);
    return r;
  }
  static float scale_of_code(int c) { return e4m3_decode_ref(uint8_t(c)); }
  static int code_of_scale(float v) {
    const uint8_t c = e4m3_encode_ref(v);
    return (c < kScaleCodes && e4m3_decode_ref(c) == v) ? c : kScaleCodes;
  }
  template <class T> static Elem<T> elem(float s, float g) { return Elem<T>(s, g); }
};

// MXINT4: X = 2^(floor(log2 amax) - 2), q = clamp(RNE(x/X), -8, 7), dequant q X.
struct Mxint4Rule {
  static constexpr int kScaleCodes = 255;
  static constexpr bool kNeedsSumsq = false;
  template <class T> using Elem = PowerOfTwoIntQuant<T, -8, 7, 4>;
  static GroupScale scale(const GroupStats& st, float) {
    const int c = e8m0_code_for(st.amax, 2);  // 2 fractional bits (OCP MXINT8 rule)
    return {e8m0_decode_ref(uint8_t(c)), c, false};
  }
  static float scale_of_code(int c) { return e8m0_decode_ref(uint8_t(c)); }
  static int code_of_scale(float v) { return e8m0_encode_ref(v); }
  template <class T> static Elem<T> elem(float X, float) {
    return Elem<T>(X, e8m0_inverse(e8m0_encode_ref(X)));
  }
};

// INT4 (paper): BF16 scale = bf16(2.5139 * 2 / 15 * rms(group)), midrise levels. 2.5139 is the
// MSE-optimal clipping of a 4-bit uniform quantizer for N(0,1) data, in units of the RMS.
struct Int4Rule {
  static constexpr int kScaleCodes = 0;
  static constexpr bool kNeedsSumsq = true;
  static constexpr double kClip = 2.5139 * 2.0 / 15.0;
  template <class T> using Elem = MidriseInt4Quant<T>;
  static GroupScale scale(const GroupStats& st, float) {
    const double rms = std::sqrt(st.sumsq / double(st.n));
    return {bf16_round_ref(kClip * rms), 0, false};
  }
  static float scale_of_code(int) { return 0; }
  static int code_of_scale(float) { return 0; }
  template <class T> static Elem<T> elem(float s, float) { return Elem<T>(s); }
};

// MXFP8: OCP, E4M3 elements (emax 8), X = 2^(floor(log2 amax) - 8), q = E4M3(x/X), dequant q X.
struct Mxfp8Rule {
  static constexpr int kScaleCodes = 255;
  static constexpr bool kNeedsSumsq = false;
  template <class T> using Elem = E4M3PowerOfTwoQuant<T>;
  static GroupScale scale(const GroupStats& st, float) {
    const int c = e8m0_code_for(st.amax, 8);
    return {e8m0_decode_ref(uint8_t(c)), c, false};
  }
  static float scale_of_code(int c) { return e8m0_decode_ref(uint8_t(c)); }
  static int code_of_scale(float v) { return e8m0_encode_ref(v); }
  template <class T> static Elem<T> elem(float X, float) {
    return Elem<T>(X, e8m0_inverse(e8m0_encode_ref(X)));
  }
};

// INT8: per-row symmetric absmax, FP32 scale s = fl(amax / 127), q = RNE(x / s).
struct Int8Rule {
  static constexpr int kScaleCodes = 0;
  static constexpr bool kNeedsSumsq = false;
  template <class T> using Elem = Int8Quant<T>;
  static GroupScale scale(const GroupStats& st, float) { return {float(st.amax / 127.0), 0, false}; }
  static float scale_of_code(int) { return 0; }
  static int code_of_scale(float) { return 0; }
  template <class T> static Elem<T> elem(float s, float) { return Elem<T>(s); }
};

}  // namespace wush::rules

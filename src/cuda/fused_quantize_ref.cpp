// Scalar host references of the CUDA kernels (STYLE.md §4): fused_transform_quantize_ref,
// quantize_transformed_ref, prepare_weight_operand_ref and fold_rows_ref. They follow REFERENCE.md
// §1 literally and in the kernels' operation order (every fp32 rounding happens at the same
// place), with codecs written independently of the device code (table searches instead of bit
// tricks), so that a test comparing the two checks both. The one exception is the transform's
// sum, an fma chain in k order here and tensor-core MMAs (unspecified fp32 order) in the kernel:
// quantize_transformed_ref takes the kernel's transformed values instead.
#include <algorithm>
#include <cmath>
#include <cstring>
#include <vector>

#include "cuda/internal.h"

namespace wush {
namespace cuda {
namespace {

using detail::kChunk;

float bf16_to_float(uint16_t b) {
  uint32_t u = uint32_t(b) << 16;
  float f;
  std::memcpy(&f, &u, 4);
  return f;
}

uint16_t float_to_bf16_rne(float f) {  // finite inputs
  uint32_t u;
  std::memcpy(&u, &f, 4);
  u += 0x7FFFu + ((u >> 16) & 1u);
  return uint16_t(u >> 16);
}

// E2M1 magnitudes (§1), code = index; sign in bit 3.
const float kE2M1[8] = {0.0f, 0.5f, 1.0f, 1.5f, 2.0f, 3.0f, 4.0f, 6.0f};

// RNE to E2M1 with saturation at 6: the nearest grid value, ties to the even code
// (even mantissa bit). A value that rounds to zero gets code 0 (no negative zero).
uint8_t e2m1_encode(float v) {
  const float a = std::fabs(v);
  int best = 0;
  for (int c = 1; c < 8; ++c) {
    const float dc = std::fabs(a - kE2M1[c]), db = std::fabs(a - kE2M1[best]);
    if (dc < db || (dc == db && c % 2 == 0)) best = c;
  }
  if (a >= 6.0f) best = 7;
  return uint8_t(best == 0 ? 0 : (best | (v < 0 ? 8 : 0)));
}

float e2m1_decode(uint8_t c) { return (c & 8) ? -kE2M1[c & 7] : kE2M1[c & 7]; }

float int4_decode(uint8_t c) { return float(int(c & 7) - int(c & 8)); }

// FP8 E4M3 (bias 7, max 448, no inf): RNE with saturation to +-448.
uint8_t e4m3_encode(float v) {
  const uint8_t sign = std::signbit(v) ? 0x80 : 0;
  const double a = std::fabs(double(v));
  if (a == 0.0) return sign;
  uint8_t mag;
  if (a < std::ldexp(1.0, -6)) {                  // subnormal: steps of 2^-9
    mag = uint8_t(std::nearbyint(a * 512.0));       // 8 -> 0x08 = 2^-6, the first normal
  } else {
    int e;
    std::frexp(a, &e);  // a = m 2^e, m in [0.5, 1)
    e -= 1;             // a = m' 2^e, m' in [1, 2)
    double mq = std::nearbyint(std::ldexp(a, -e) * 8.0);  // 8..16
    if (mq == 16.0) { mq = 8.0; ++e; }
    const int code = ((e + 7) << 3) | (int(mq) - 8);
    mag = uint8_t(code > 0x7E ? 0x7E : code);
  }
  return uint8_t(sign | mag);  // a negative value that rounds to zero is -0 (0x80), as IEEE RNE
}

float e4m3_decode(uint8_t b) {
  const int e = (b >> 3) & 15, m = b & 7;
  const float a = e == 0 ? std::ldexp(float(m), -9) : std::ldexp(1.0f + m / 8.0f, e - 7);
  return (b & 0x80) ? -a : a;
}

// floor(log2 a) for a > 0, clamped to E8M0's range; a == 0 -> -127 (the smallest code).
int e8m0_exponent(float a, int offset) {
  int e = -1000;
  if (a > 0) {
    std::frexp(a, &e);
    e -= 1;
  }
  e += offset;
  return e < -127 ? -127 : (e > 127 ? 127 : e);
}

bool is_int4(QFormat f) { return f == QFormat::MXINT4; }
float decode_elem(QFormat f, uint8_t code) { return is_int4(f) ? int4_decode(code) : e2m1_decode(code); }

// One group of G transformed values -> codes[G] (unpacked) and the scale code (§1).
void quantize_group(const float* y, int G, const QuantConfig& cfg, uint8_t* codes,
                    uint8_t* scale_code, unsigned long long* counters) {
  float amax = 0.0f;
  bool finite = true;
  for (int i = 0; i < G; ++i) {
    finite = finite && std::isfinite(y[i]);
    amax = std::fmax(amax, std::fabs(y[i]));
  }
  if (!finite && counters) counters[kNonFinite] += 1;
  switch (cfg.format) {
    case QFormat::MXFP4: {  // s = 2^floor(log2 amax); q = RNE_E2M1(x * (3/s))
      const int E = e8m0_exponent(amax, 0);
      const float mul = std::ldexp(3.0f, -E);
      for (int i = 0; i < G; ++i) codes[i] = e2m1_encode(y[i] * mul);
      *scale_code = uint8_t(E + 127);
      break;
    }
    case QFormat::MXFP4_OCP:
    case QFormat::MXINT4: {  // X = 2^(floor(log2 amax) - 2); q = RNE(x / X) (E2M1 or int4)
      const int E = e8m0_exponent(amax, -2);
      const float mul = std::ldexp(1.0f, -E);
      for (int i = 0; i < G; ++i) {
        const float v = y[i] * mul;
        if (cfg.format == QFormat::MXINT4) {
          float q = std::nearbyint(v);
          q = q < -8 ? -8 : (q > 7 ? 7 : q);
          codes[i] = uint8_t(int(q) & 15);
        } else {
          codes[i] = e2m1_encode(v);
        }
      }
      *scale_code = uint8_t(E + 127);
      break;
    }
    case QFormat::NVFP4: {  // s = E4M3(g amax / 6); q = RNE_E2M1(x g / s)
      const float g = cfg.nvfp4_global;
      const float t = (g * amax) / 6.0f;
      if (t > 448.0f && counters) counters[kScaleOverflow] += 1;
      const uint8_t sc = e4m3_encode(t);
      const float s = e4m3_decode(sc);
      for (int i = 0; i < G; ++i) codes[i] = s == 0.0f ? 0 : e2m1_encode((y[i] * g) / s);
      *scale_code = sc;
      break;
    }
  }
}

// The FP8 operand of one 128-chunk (MX formats, §7): element q * 2^(E_g - E_max), chunk
// scale 2^E_max. codes: unpacked, n elements; scale codes: ng groups of G.
void mx_chunk_operand(QFormat f, const uint8_t* codes, const uint8_t* scale_codes, int ng, int G,
                      uint8_t* fp8, float* chunk_scale, unsigned long long* counters) {
  int emax = -127, emin_nz = 1000;
  for (int g = 0; g < ng; ++g) {
    const int E = int(scale_codes[g]) - 127;
    emax = E > emax ? E : emax;
    bool nonzero = false;
    for (int i = 0; i < G; ++i) nonzero = nonzero || decode_elem(f, codes[g * G + i]) != 0.0f;
    if (nonzero && E < emin_nz) emin_nz = E;
  }
  if (emin_nz != 1000 && emax - emin_nz > exact_span(f) && counters) counters[kSpanExceeded] += 1;
  if (fp8) {
    for (int g = 0; g < ng; ++g) {
      const float factor = std::ldexp(1.0f, int(scale_codes[g]) - 127 - emax);
      for (int i = 0; i < G; ++i) fp8[g * G + i] = e4m3_encode(decode_elem(f, codes[g * G + i]) * factor);
    }
  }
  if (chunk_scale) *chunk_scale = std::ldexp(1.0f, emax);
}

// One row's operand from its unpacked codes and scale codes (shared by both references).
void row_operand(const QuantConfig& cfg, const uint8_t* codes, const uint8_t* scale_codes,
                 int64_t row, int64_t rows, int64_t K, void* operand, float* chunk_scales,
                 unsigned long long* counters) {
  const int G = group_size(cfg.format);
  if (cfg.format == QFormat::NVFP4) {
    if (!operand) return;
    uint16_t* out = static_cast<uint16_t*>(operand) + row * K;
    for (int64_t k = 0; k < K; ++k)
      out[k] = float_to_bf16_rne(e2m1_decode(codes[k]) * e4m3_decode(scale_codes[k / G]));
    return;
  }
  if (!operand && !chunk_scales && !counters) return;
  for (int64_t c = 0; c * kChunk < K; ++c) {
    const int64_t k0 = c * kChunk;
    const int ng = int(((K - k0) < kChunk ? (K - k0) : kChunk) / G);
    uint8_t* fp8 = operand ? static_cast<uint8_t*>(operand) + row * K + k0 : nullptr;
    float* cs = chunk_scales ? chunk_scales + c * rows + row : nullptr;
    mx_chunk_operand(cfg.format, codes + k0, scale_codes + k0 / G, ng, G, fp8, cs, counters);
  }
}

// Rows rows..operand_rows(rows)-1 of the operand and chunk scales are zero.
void zero_padding_rows(const QuantConfig& cfg, int64_t rows, int64_t K, void* operand, float* chunk_scales) {
  const int64_t rp = operand_rows(rows), esz = cfg.format == QFormat::NVFP4 ? 2 : 1;
  if (operand) std::memset(static_cast<uint8_t*>(operand) + rows * K * esz, 0, size_t((rp - rows) * K * esz));
  if (chunk_scales)
    for (int64_t c = 0; c * kChunk < K; ++c)
      for (int64_t r = rows; r < rp; ++r) chunk_scales[c * rp + r] = 0.0f;
}

void pack_row(const uint8_t* codes, int64_t K, uint8_t* out) {
  for (int64_t k = 0; k < K; k += 2) out[k / 2] = uint8_t(codes[k] | (codes[k + 1] << 4));
}

}  // namespace

namespace {

// Rows of transformed values -> every output; y_row(m, y) fills row m's K values.
template <class RowFn>
void quantize_rows(int64_t M, int64_t K, const QuantConfig& cfg, const QuantizeOutputs& out, RowFn y_row) {
  const int G = group_size(cfg.format);
  const int64_t nb = K / G;
  std::vector<float> y(K);
  std::vector<uint8_t> codes(K), scodes(nb);
  for (int64_t m = 0; m < M; ++m) {
    y_row(m, y.data());
    for (int64_t j = 0; j < nb; ++j) quantize_group(&y[j * G], G, cfg, &codes[j * G], &scodes[j], out.counters);
    if (out.codes) pack_row(codes.data(), K, out.codes + m * K / 2);
    if (out.scales) std::memcpy(out.scales + m * nb, scodes.data(), nb);
    row_operand(cfg, codes.data(), scodes.data(), m, operand_rows(M), K, out.operand, out.chunk_scales,
                out.counters);
  }
  zero_padding_rows(cfg, M, K, out.operand, out.chunk_scales);
}

}  // namespace

void fused_transform_quantize_ref(const uint16_t* x, int64_t M, int64_t K, const TransformSpec& t,
                                  const QuantConfig& cfg, const QuantizeOutputs& out) {
  const int G = group_size(cfg.format);
  quantize_rows(M, K, cfg, out, [&](int64_t m, float* y) {
    const uint16_t* xr = x + m * K;
    for (int64_t j = 0; j < K / G; ++j) {
      // x~_j = T_j x_j (§2) in fp32: out i accumulates k = 0..G-1 with one fma each.
      const float* Tj = t.T ? t.T + (t.num_blocks == 1 ? 0 : j) * G * G : nullptr;
      for (int i = 0; i < G; ++i) {
        if (!Tj) {
          y[j * G + i] = bf16_to_float(xr[j * G + i]);
          continue;
        }
        float acc = 0.0f;
        for (int k = 0; k < G; ++k) acc = std::fma(Tj[i * G + k], bf16_to_float(xr[j * G + k]), acc);
        y[j * G + i] = acc;
      }
    }
  });
}

void quantize_transformed_ref(const float* y, int64_t M, int64_t K, const QuantConfig& cfg,
                              const QuantizeOutputs& out) {
  quantize_rows(M, K, cfg, out, [&](int64_t m, float* row) { std::memcpy(row, y + m * K, size_t(K) * sizeof(float)); });
}

void prepare_weight_operand_ref(const uint8_t* codes, const uint8_t* scales, int64_t N, int64_t K,
                                const QuantConfig& cfg, void* operand, float* chunk_scales,
                                unsigned long long* counters) {
  const int G = group_size(cfg.format);
  std::vector<uint8_t> unpacked(K);
  for (int64_t n = 0; n < N; ++n) {
    for (int64_t k = 0; k < K; ++k) unpacked[k] = (codes[(n * K + k) / 2] >> (4 * (k & 1))) & 15;
    row_operand(cfg, unpacked.data(), scales + n * (K / G), n, operand_rows(N), K, operand, chunk_scales, counters);
  }
  zero_padding_rows(cfg, N, K, operand, chunk_scales);
}

void fold_rows_ref(const uint8_t* operand, const float* chunk_scales, int64_t M, int64_t K, uint8_t* out,
                   float* row_scales, unsigned long long* inexact_rows) {
  const int64_t Mp = operand_rows(M), nch = detail::ceil_div(K, detail::kChunk);
  for (int64_t r = 0; r < Mp; ++r) {
    float row = 0.0f;  // chunk scales are powers of two or 0: their max is 2^E_row
    for (int64_t c = 0; c < nch; ++c) row = std::max(row, chunk_scales[c * Mp + r]);
    row_scales[r] = row;
    bool inexact = false;
    for (int64_t k = 0; k < K; ++k) {
      const float factor = row > 0.0f ? chunk_scales[(k / detail::kChunk) * Mp + r] / row : 0.0f;
      const float v = e4m3_decode(operand[r * K + k]) * factor;
      const uint8_t b = e4m3_encode(v);
      inexact |= e4m3_decode(b) != v;
      out[r * K + k] = b;
    }
    if (inexact && inexact_rows) ++*inexact_rows;
  }
}

}  // namespace cuda
}  // namespace wush

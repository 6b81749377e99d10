// CPU kernels over ranges of groups, written once and instantiated per format rule (rules.h).
// Internal to src/formats: format.cpp splits the work with at::parallel_for and turns the reported
// NaN/Inf position and overflow count into errors and fields; the table (format_table.cpp) holds
// one Kernels<Rule> per format. Inner loops run over raw pointers with the element quantizer in a
// local copy, so that the compiler keeps its thresholds in registers and vectorizes.
#pragma once
#include <c10/util/BFloat16.h>
#include <c10/util/Half.h>

#include <algorithm>
#include <atomic>
#include <cstring>
#include <map>
#include <memory>
#include <mutex>
#include <type_traits>
#include <vector>

#include "formats/rules.h"

namespace wush::kernels {

enum class InType { F32, BF16, F16 };

// One call's data, laid out as rows of K elements in groups of G (ngr groups per row, the last one
// zero-padded). Flat group index gi = row * ngr + j; scales[gi] is its stored scale.
struct Job {
  const void* x = nullptr;
  InType in = InType::F32;
  float* y = nullptr;        // fake_quantize / dequantize output [rows, K]
  uint8_t* codes = nullptr;  // [rows, ngr * G * bits / 8]
  float* scales = nullptr;   // [rows, ngr]
  int64_t K = 0, G = 0, ngr = 0, bits = 4;
  float g = 1;                               // NVFP4 global scale
  std::atomic<int64_t>* first_bad = nullptr; // smallest flat index of a NaN/Inf input
  std::atomic<int64_t>* bad_scale = nullptr; // smallest group index whose given scale is invalid
  std::atomic<int64_t>* overflow = nullptr;  // groups whose scale saturated
};

inline void note_min(std::atomic<int64_t>* a, int64_t index) {
  int64_t cur = a->load();
  while (index < cur && !a->compare_exchange_weak(cur, index)) {
  }
}
inline void note_bad(const Job& j, int64_t index) { note_min(j.first_bad, index); }

template <class In> inline float load(const In* x, int64_t i) { return float(x[i]); }

// amax (and the sum of squares) of x[0, n); false when x holds a NaN or Inf. Lanes of 8 keep the
// loops vectorizable and the summation order fixed (independent of threads and SIMD width).
template <bool SUMSQ, class In>
inline bool group_stats(const In* x, int64_t n, int64_t G, rules::GroupStats& st) {
  using A = std::conditional_t<std::is_same<In, double>::value, double, float>;
  constexpr int L = 8;
  A m[L] = {}, bad[L] = {};
  double s[L] = {};
  int64_t i = 0;
  for (; i + L <= n; i += L)
    for (int l = 0; l < L; ++l) {
      const A v = A(x[i + l]);
      const A a = std::fabs(v);
      m[l] = a > m[l] ? a : m[l];
      bad[l] += v - v;  // NaN for NaN and Inf
      if (SUMSQ) s[l] += double(v) * double(v);
    }
  for (; i < n; ++i) {
    const A v = A(x[i]);
    m[0] = std::fabs(v) > m[0] ? std::fabs(v) : m[0];
    bad[0] += v - v;
    if (SUMSQ) s[0] += double(v) * double(v);
  }
  A mm = 0, bb = 0;
  double ss = 0;
  for (int l = 0; l < L; ++l) {
    mm = m[l] > mm ? m[l] : mm;
    bb += bad[l];
    ss += s[l];
  }
  st.amax = double(mm);
  st.sumsq = ss;
  st.n = G;
  return bb == 0;
}

template <class In> inline int64_t first_nonfinite(const In* x, int64_t n) {
  for (int64_t i = 0; i < n; ++i)
    if (!std::isfinite(double(x[i]))) return i;
  return n;
}

template <class Rule> struct Kernels {
  template <class T> using Elem = typename Rule::template Elem<T>;
  static constexpr bool kTable = Rule::kScaleCodes > 0;

  // The element quantizer of every scale code, for the global scale g (cached: building one for
  // E2M1 takes ~15 exact divisions, more than quantizing a group).
  template <class T> static std::shared_ptr<const std::vector<Elem<T>>> table(float g) {
    static std::mutex mu;
    static std::map<uint32_t, std::shared_ptr<const std::vector<Elem<T>>>> cache;
    std::lock_guard<std::mutex> lock(mu);
    auto& slot = cache[bits_of(g)];
    if (!slot) {
      if (cache.size() > 64) {  // TensorAmax gives one g per tensor: keep the cache small
        cache.clear();
        return table<T>(g);
      }
      auto t = std::make_shared<std::vector<Elem<T>>>(Rule::kScaleCodes);
      for (int c = 0; c < Rule::kScaleCodes; ++c)
        if (Rule::scale_of_code(c) > 0) (*t)[c] = Rule::template elem<T>(Rule::scale_of_code(c), g);
      slot = std::move(t);
    }
    return slot;
  }

  template <class T> struct ElemSource {
    std::shared_ptr<const std::vector<Elem<T>>> tab;
    float g;
    explicit ElemSource(float g_) : g(g_) {
      if (kTable) tab = table<T>(g);
    }
    // The quantizer of a group with stored scale s (> 0) and scale code c; false if s is no scale.
    bool get(float s, int c, Elem<T>& e) const {
      if (!kTable) {
        e = Rule::template elem<T>(s, g);
        return true;
      }
      if (c < 0 || c >= Rule::kScaleCodes) return false;
      e = (*tab)[c];
      return true;
    }
  };

  template <class In>
  static void fake_t(const Job& j, int64_t g0, int64_t g1) {
    const In* x = static_cast<const In*>(j.x);
    const ElemSource<float> src(j.g);
    int64_t ovf = 0;
    for (int64_t gi = g0; gi < g1; ++gi) {
      const int64_t row = gi / j.ngr, c0 = (gi % j.ngr) * j.G, n = std::min(j.G, j.K - c0);
      const In* __restrict xs = x + row * j.K + c0;
      float* __restrict ys = j.y + row * j.K + c0;
      rules::GroupStats st;
      if (!group_stats<Rule::kNeedsSumsq>(xs, n, j.G, st)) {
        note_bad(j, row * j.K + c0 + first_nonfinite(xs, n));
        return;
      }
      const rules::GroupScale sc = Rule::scale(st, j.g);
      ovf += sc.overflow;
      Elem<float> e;
      if (sc.value == 0 || !src.get(sc.value, sc.code, e)) {
        std::fill(ys, ys + n, 0.0f);
        continue;
      }
      for (int64_t i = 0; i < n; ++i) ys[i] = e.value(load(xs, i));
    }
    if (ovf) j.overflow->fetch_add(ovf);
  }

  // GIVEN = false: compute each group's scale (quantize); true: take it from j.scales
  // (encode_with_scales: the scales GPTQ fixed), checking that it is a scale of the format.
  template <class In, bool GIVEN>
  static void quantize_t(const Job& j, int64_t g0, int64_t g1) {
    const In* x = static_cast<const In*>(j.x);
    const ElemSource<float> src(j.g);
    const int64_t row_bytes = j.ngr * j.G * j.bits / 8, group_bytes = j.G * j.bits / 8;
    int64_t ovf = 0;
    for (int64_t gi = g0; gi < g1; ++gi) {
      const int64_t row = gi / j.ngr, c0 = (gi % j.ngr) * j.G, n = std::min(j.G, j.K - c0);
      const In* __restrict xs = x + row * j.K + c0;
      uint8_t* __restrict out = j.codes + row * row_bytes + (gi % j.ngr) * group_bytes;
      rules::GroupStats st;
      if (!group_stats<Rule::kNeedsSumsq>(xs, n, j.G, st)) {
        note_bad(j, row * j.K + c0 + first_nonfinite(xs, n));
        return;
      }
      rules::GroupScale sc;
      if (GIVEN) {
        sc.value = j.scales[gi];
        sc.code = sc.value > 0 ? Rule::code_of_scale(sc.value) : 0;
        if (!(sc.value >= 0) || std::isinf(sc.value)) {
          note_min(j.bad_scale, gi);
          return;
        }
      } else {
        sc = Rule::scale(st, j.g);
        ovf += sc.overflow;
        j.scales[gi] = sc.value;
      }
      Elem<float> e;
      if (sc.value == 0) {
        std::memset(out, 0, size_t(group_bytes));
        continue;
      }
      if (!src.get(sc.value, sc.code, e)) {
        note_min(j.bad_scale, gi);
        return;
      }
      if (j.bits == 4) {  // two per byte, low nibble = even element; padding quantizes zeros
        if (n == j.G) {
          for (int64_t p = 0; p < j.G / 2; ++p)
            out[p] = uint8_t(e.code(load(xs, 2 * p)) | (e.code(load(xs, 2 * p + 1)) << 4));
        } else {
          for (int64_t p = 0; p < j.G / 2; ++p) {
            const float a = 2 * p < n ? load(xs, 2 * p) : 0.0f;
            const float b = 2 * p + 1 < n ? load(xs, 2 * p + 1) : 0.0f;
            out[p] = uint8_t(e.code(a) | (e.code(b) << 4));
          }
        }
      } else {
        for (int64_t i = 0; i < j.G; ++i) out[i] = e.code(i < n ? load(xs, i) : 0.0f);
      }
    }
    if (ovf) j.overflow->fetch_add(ovf);
  }

  static void fake(const Job& j, int64_t g0, int64_t g1) { dispatch_in<Fake>(j, g0, g1); }
  static void quantize(const Job& j, int64_t g0, int64_t g1) { dispatch_in<Quant<false>>(j, g0, g1); }
  static void encode(const Job& j, int64_t g0, int64_t g1) { dispatch_in<Quant<true>>(j, g0, g1); }

  // codes + scales -> values of the K real columns (padding dropped).
  static void dequantize(const Job& j, int64_t g0, int64_t g1) {
    const ElemSource<float> src(j.g);
    const int64_t row_bytes = j.ngr * j.G * j.bits / 8, group_bytes = j.G * j.bits / 8;
    for (int64_t gi = g0; gi < g1; ++gi) {
      const int64_t row = gi / j.ngr, c0 = (gi % j.ngr) * j.G, n = std::min(j.G, j.K - c0);
      const uint8_t* __restrict in = j.codes + row * row_bytes + (gi % j.ngr) * group_bytes;
      float* __restrict ys = j.y + row * j.K + c0;
      const float s = j.scales[gi];
      Elem<float> e;
      if (s == 0) {
        std::fill(ys, ys + n, 0.0f);
        continue;
      }
      if (!(s > 0) || !src.get(s, Rule::code_of_scale(s), e)) {
        note_min(j.bad_scale, gi);
        return;
      }
      if (j.bits == 4) {  // the 16 values of this group, then a branch-free lookup per nibble
        float dv[16];
        for (int c = 0; c < 16; ++c) dv[c] = e.decode(uint8_t(c));
        int64_t i = 0;
        for (; i + 1 < n; i += 2) {
          ys[i] = dv[in[i / 2] & 0xF];
          ys[i + 1] = dv[in[i / 2] >> 4];
        }
        if (i < n) ys[i] = dv[in[i / 2] & 0xF];
      } else
        for (int64_t i = 0; i < n; ++i) ys[i] = e.decode(in[i]);
    }
  }

  // GPTQ: the stored scale of each row of x [R, n] (one group per row).
  template <class T>
  static void group_scales(const T* x, int64_t n, float g, float* out, const Job& j, int64_t r0,
                           int64_t r1) {
    for (int64_t r = r0; r < r1; ++r) {
      rules::GroupStats st;
      if (!group_stats<Rule::kNeedsSumsq>(x + r * n, n, n, st)) {
        note_bad(j, r * n + first_nonfinite(x + r * n, n));
        return;
      }
      out[r] = Rule::scale(st, g).value;
    }
  }

  // GPTQ: x [R, n] against the given per-row scales -> dequantized values, in T.
  template <class T>
  static void with_scales(const T* x, T* y, int64_t n, const float* scales, float g, const Job& j,
                          int64_t r0, int64_t r1) {
    const ElemSource<T> src(g);
    for (int64_t r = r0; r < r1; ++r) {
      const float s = scales[r];
      const T* __restrict xs = x + r * n;
      T* __restrict ys = y + r * n;
      Elem<T> e;
      if (s == 0) {
        std::fill(ys, ys + n, T(0));
        continue;
      }
      if (!(s > 0) || !src.get(s, Rule::code_of_scale(s), e)) {
        note_min(j.bad_scale, r);
        return;
      }
      const int64_t bad = first_nonfinite(xs, n);
      if (bad < n) {
        note_bad(j, r * n + bad);
        return;
      }
      for (int64_t i = 0; i < n; ++i) ys[i] = e.value(xs[i]);
    }
  }

 private:
  struct Fake {
    template <class In> static void run(const Job& j, int64_t a, int64_t b) { fake_t<In>(j, a, b); }
  };
  template <bool GIVEN> struct Quant {
    template <class In> static void run(const Job& j, int64_t a, int64_t b) {
      quantize_t<In, GIVEN>(j, a, b);
    }
  };
  template <class Op> static void dispatch_in(const Job& j, int64_t a, int64_t b) {
    switch (j.in) {
      case InType::F32: return Op::template run<float>(j, a, b);
      case InType::BF16: return Op::template run<c10::BFloat16>(j, a, b);
      case InType::F16: return Op::template run<c10::Half>(j, a, b);
    }
  }
};

}  // namespace wush::kernels

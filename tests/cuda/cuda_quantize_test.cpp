// fused_transform_quantize_cuda and prepare_weight_operand_cuda against their host references:
// codes, scales, FP8/bf16 operand, chunk scales and counters bit-identical, for every format,
// identity / shared-Hadamard / per-block (bf16 and fp32) transforms, shapes with M = 1, K not a
// multiple of 128, large M, and Gaussian, heavy-tailed and outlier data. The transform runs on
// tensor cores, whose fp32 accumulation order is unspecified: with a transform, the outputs are
// compared with quantize_transformed_ref on the kernel's own transformed values (bit for bit), and
// those values with a float64 transform (error bound of fp32 accumulation); data whose every
// partial sum is exact must match the fma-chain reference bit for bit. Outputs are poisoned before
// each run (two different poisons) so an unwritten element cannot pass. Skips without a GPU.
#include <gtest/gtest.h>

#include <string>
#include <vector>

#include "cuda/wush_cuda.h"
#include "cuda_test_util.h"

namespace wush {
namespace cuda {
namespace {

using namespace test;

enum class TKind { Identity, Hadamard, PerBlock, PerBlockFp32 };
const char* tkind_name(TKind t) {
  switch (t) {
    case TKind::Identity: return "identity";
    case TKind::Hadamard: return "hadamard";
    case TKind::PerBlock: return "per-block";
    case TKind::PerBlockFp32: return "per-block fp32";
  }
  return "?";
}

// The float64 transform y64 = T_j x_j of every row and block, and sum_k |T_ik x_k| per output
// (identity when T is empty: y64 = x).
void transform64(const std::vector<uint16_t>& x, const std::vector<float>& T, int64_t nT, int G, int64_t M, int64_t K,
                 std::vector<double>* y64, std::vector<double>* mag) {
  y64->assign(size_t(M * K), 0.0);
  mag->assign(size_t(M * K), 0.0);
  for (int64_t m = 0; m < M; ++m)
    for (int64_t j = 0; j < K / G; ++j) {
      const float* Tj = T.empty() ? nullptr : T.data() + (nT == 1 ? 0 : j) * G * G;
      for (int i = 0; i < G; ++i) {
        const size_t o = size_t(m * K + j * G + i);
        if (!Tj) {
          (*y64)[o] = bf2f(x[o]);
          (*mag)[o] = std::fabs((*y64)[o]);
          continue;
        }
        for (int k = 0; k < G; ++k) {
          const double p = double(Tj[i * G + k]) * bf2f(x[size_t(m * K + j * G + k)]);
          (*y64)[o] += p;
          (*mag)[o] += std::fabs(p);
        }
      }
    }
}

// Largest |y - y64| / (2^-16 sum_k |T_ik x_k|) over all outputs; fp32 accumulation of <= 3 x 32
// exact products errs by at most ~96 ulps of that sum: < 1.
double transform_error(const std::vector<uint16_t>& x, const std::vector<float>& T, int64_t nT, int G, int64_t M,
                       int64_t K, const std::vector<float>& y) {
  std::vector<double> y64, mag;
  transform64(x, T, nT, G, M, K, &y64, &mag);
  double worst = 0;
  for (size_t o = 0; o < y.size(); ++o) {
    const double err = std::fabs(double(y[o]) - y64[o]);
    if (err > 0) worst = std::max(worst, mag[o] > 0 ? err / std::ldexp(mag[o], -16) : 1e30);
  }
  return worst;
}

struct Outputs {
  std::vector<uint8_t> codes, scales, operand;
  std::vector<float> chunk, transformed;
  std::vector<unsigned long long> counters;
  // GPU only: a second run that asks for the GEMM operand, chunk scales and counters alone (the
  // kernel's fast path where a CTA's tiles are full); must equal the full run's.
  std::vector<uint8_t> operand_only;
  std::vector<float> chunk_only;
  std::vector<unsigned long long> counters_only;
  double transform_error = 0;  // transform_error() of the kernel's values
};

struct Case {
  int64_t M, K;
  Dist dist;
};

// Runs the kernel (with output poison `poison`) and the reference; returns both. The reference
// quantizes the kernel's transformed values when there is a transform (exact_ref: runs the full
// fma-chain reference instead; x and T are then given).
void run_both(const Case& c, QFormat f, TKind tk, int poison, Outputs* gpu, Outputs* ref, bool exact_ref = false,
              std::vector<uint16_t> x = {}, std::vector<float> T = {}) {
  const QuantConfig cfg{f, 10.0f};
  const int G = group_size(f);
  const int64_t M = c.M, K = c.K, nb = K / G, nchunks = (K + 127) / 128, Mp = operand_rows(M);
  const bool mx = has_chunk_operand(f);
  const size_t op_bytes = size_t(Mp * K * (mx ? 1 : 2));  // padding rows included: must be zeros
  if (x.empty()) x = random_x(M, K, c.dist, uint32_t(M * 131 + K + int(f)));
  TransformSpec ts;
  if (T.empty() && tk == TKind::Hadamard) T = hadamard_T(G);
  if (T.empty() && tk == TKind::PerBlock) T = random_T(nb, G, uint32_t(K));
  if (T.empty() && tk == TKind::PerBlockFp32) T = random_T_fp32(nb, G, uint32_t(K));

  DevBuf<uint16_t> dx(x.size());
  dx.upload(x);
  DevBuf<float> dT(T.size());
  if (!T.empty()) {
    dT.upload(T);
    ts = TransformSpec{dT.p, tk == TKind::Hadamard ? 1 : nb, tk != TKind::PerBlockFp32};
  }
  DevBuf<uint8_t> codes(size_t(M * K / 2)), scales(size_t(M * nb)), operand(op_bytes);
  DevBuf<float> chunk(size_t(Mp * nchunks)), transformed(size_t(M * K));
  DevBuf<unsigned long long> counters(kNumCounters);
  codes.fill_bytes(poison);
  scales.fill_bytes(poison);
  operand.fill_bytes(poison);
  chunk.fill_bytes(poison);
  transformed.fill_bytes(poison);
  counters.fill_bytes(0);
  QuantizeOutputs out{codes.p, scales.p, operand.p, mx ? chunk.p : nullptr, counters.p, transformed.p};
  WUSH_CUDA_OK(fused_transform_quantize_cuda(reinterpret_cast<const __nv_bfloat16*>(dx.p), M, K, ts, cfg, out, 0));
  WUSH_CUDA_OK(cudaDeviceSynchronize());
  gpu->codes = codes.download();
  gpu->scales = scales.download();
  gpu->operand = operand.download();
  gpu->chunk = mx ? chunk.download() : std::vector<float>();
  gpu->counters = counters.download();
  gpu->transformed = transformed.download();
  operand.fill_bytes(poison ^ 0x5A);
  chunk.fill_bytes(poison ^ 0x5A);
  counters.fill_bytes(0);
  const QuantizeOutputs out_gemm{nullptr, nullptr, operand.p, mx ? chunk.p : nullptr, counters.p};
  WUSH_CUDA_OK(fused_transform_quantize_cuda(reinterpret_cast<const __nv_bfloat16*>(dx.p), M, K, ts, cfg, out_gemm, 0));
  WUSH_CUDA_OK(cudaDeviceSynchronize());
  gpu->operand_only = operand.download();
  gpu->chunk_only = mx ? chunk.download() : std::vector<float>();
  gpu->counters_only = counters.download();

  ref->codes.assign(gpu->codes.size(), 0);
  ref->scales.assign(gpu->scales.size(), 0);
  ref->operand.assign(op_bytes, 0);
  ref->chunk.assign(mx ? size_t(Mp * nchunks) : 0, 0.f);
  ref->counters.assign(kNumCounters, 0);
  const QuantizeOutputs hout{ref->codes.data(), ref->scales.data(), ref->operand.data(),
                             mx ? ref->chunk.data() : nullptr, ref->counters.data()};
  if (T.empty() || exact_ref) {
    fused_transform_quantize_ref(x.data(), M, K, TransformSpec{T.empty() ? nullptr : T.data(), ts.num_blocks}, cfg,
                                 hout);
    // the exact transformed values: x itself, or (exact_ref data) the float64 transform, which
    // every summation order reaches
    std::vector<double> y64, mag;
    transform64(x, T, ts.num_blocks, G, M, K, &y64, &mag);
    ref->transformed.assign(y64.begin(), y64.end());
  } else {
    quantize_transformed_ref(gpu->transformed.data(), M, K, cfg, hout);
    ref->transformed = gpu->transformed;
    gpu->transform_error = transform_error(x, T, ts.num_blocks, G, M, K, gpu->transformed);
  }
}

// First differing index of two byte vectors, or -1.
template <class T>
int64_t first_diff(const std::vector<T>& a, const std::vector<T>& b) {
  if (a.size() != b.size()) return 0;
  for (size_t i = 0; i < a.size(); ++i)
    if (std::memcmp(&a[i], &b[i], sizeof(T)) != 0) return int64_t(i);
  return -1;
}

void expect_equal(const Outputs& g, const Outputs& r, const std::string& what) {
  EXPECT_EQ(first_diff(g.codes, r.codes), -1) << what << " codes";
  EXPECT_EQ(first_diff(g.scales, r.scales), -1) << what << " scales";
  EXPECT_EQ(first_diff(g.operand, r.operand), -1) << what << " operand";
  EXPECT_EQ(first_diff(g.chunk, r.chunk), -1) << what << " chunk scales";
  EXPECT_EQ(g.counters, r.counters) << what << " counters";
  EXPECT_EQ(first_diff(g.transformed, r.transformed), -1) << what << " transformed values";
  EXPECT_EQ(first_diff(g.operand_only, r.operand), -1) << what << " operand (operand-only run)";
  EXPECT_EQ(first_diff(g.chunk_only, r.chunk), -1) << what << " chunk scales (operand-only run)";
  EXPECT_EQ(g.counters_only, r.counters) << what << " counters (operand-only run)";
  EXPECT_LT(g.transform_error, 1.0) << what << " transform error vs float64 (units of 2^-16 sum |T x|)";
}

const Case kCases[] = {
    {1, 32, Dist::Gaussian},       {1, 4096, Dist::Outliers},    {3, 96, Dist::HeavyTailed},
    {5, 160, Dist::Gaussian},      {257, 384, Dist::HeavyTailed}, {130, 1056, Dist::Outliers},
    {4099, 256, Dist::Gaussian},   {600, 2080, Dist::HeavyTailed},
};

TEST(CudaQuantize, EqualsReferenceBitForBit) {
  WUSH_REQUIRE_DEVICE();
  for (QFormat f : all_qformats())
    for (TKind tk : {TKind::Identity, TKind::Hadamard, TKind::PerBlock, TKind::PerBlockFp32})
      for (const Case& c : kCases) {
        if (c.K % group_size(f)) continue;
        Outputs g, r;
        run_both(c, f, tk, 0xA5, &g, &r);
        const std::string what = std::string(format_name(f)) + " " + tkind_name(tk) + " M=" +
                                 std::to_string(c.M) + " K=" + std::to_string(c.K);
        expect_equal(g, r, what);
        if (HasFailure()) return;
      }
}

TEST(CudaQuantize, ExactSumsEqualTheFmaChainReference) {
  // x: integers |x| <= 63 times 2^e (e per row, -20..20); T: multiples of 2^-7 in [-1, 1) (bf16's
  // 8 significant bits) or, for the fp32 path, of 2^-12 (13 bits: two bf16 terms): every product
  // and partial sum of 32 is exact in fp32 (< 2^24 units), so any summation order gives the reference's values
  // and every output must equal the fma-chain reference bit for bit (this fixes the fragment
  // layout: a permuted k or n would change the values).
  WUSH_REQUIRE_DEVICE();
  std::mt19937 rng(5);
  for (QFormat f : all_qformats())
    for (TKind tk : {TKind::Hadamard, TKind::PerBlock, TKind::PerBlockFp32}) {
      const int G = group_size(f);
      const int64_t M = 77, K = 416, nb = K / G;
      std::vector<uint16_t> x(size_t(M * K));
      for (int64_t m = 0; m < M; ++m) {
        const int e = int(rng() % 41) - 20;
        for (int64_t k = 0; k < K; ++k)
          x[size_t(m * K + k)] = f2bf(std::ldexp(float(int(rng() % 127) - 63), e));
      }
      const int bits = tk == TKind::PerBlockFp32 ? 12 : 7;
      std::vector<float> T(size_t((tk == TKind::Hadamard ? 1 : nb) * G * G));
      for (float& t : T) t = std::ldexp(float(int(rng() % (2u << bits)) - (1 << bits)), -bits);
      Outputs g, r;
      run_both({M, K, Dist::Gaussian}, f, tk, 0xA5, &g, &r, true, x, T);
      expect_equal(g, r, std::string(format_name(f)) + " " + tkind_name(tk) + " exact sums");
      if (HasFailure()) return;
    }
}

TEST(CudaQuantize, SpecialGroupsInFullTiles) {
  // Zero, subnormal, tiny and huge groups among Gaussian rows, in CTAs of full tiles (M = 512: the
  // operand-only run takes the kernel's fast path there, and its general path for the tiles
  // holding such groups), and chunks whose groups span from 2^-120 to 2^120 or sit at the
  // operand's flush to zero.
  WUSH_REQUIRE_DEVICE();
  const int64_t M = 512, K = 512;
  std::vector<uint16_t> x0 = random_x(M, K, Dist::Gaussian, 11);
  auto set = [&](int64_t row, int64_t k0, int64_t n, float v) {
    for (int64_t k = k0; k < k0 + n; ++k) x0[size_t(row * K + k)] = f2bf(v * (k % 3 == 0 ? -1.f : 1.f));
  };
  set(3, 0, K, 0.0f);                              // a zero row
  set(40, 32, 32, 0.0f);                           // a zero group
  for (int64_t k = 64; k < 96; ++k) x0[size_t(70 * K + k)] = uint16_t(1 + k % 7);  // bf16 subnormals
  set(100, 130, 1, 1.5f * std::ldexp(1.0f, 127));  // E = 127 for MXFP4
  set(200, 128, 32, std::ldexp(1.0f, -125));       // E near the bottom of the normal range
  set(220, 256, 16, std::ldexp(1.0f, -130));       // a subnormal amax
  set(230, 0, 32, std::ldexp(1.0f, 120));          // a chunk spanning 2^120 .. 2^-120
  set(230, 32, 32, std::ldexp(1.0f, -120));
  set(300, 384, 32, std::ldexp(1.0f, -20));        // E_g - E_max beyond the operand's flush at -20
  set(300, 416, 32, std::ldexp(1.0f, 3));
  for (QFormat f : all_qformats())
    for (TKind tk : {TKind::Identity, TKind::Hadamard, TKind::PerBlock}) {
      const std::string what = std::string(format_name(f)) + " " + tkind_name(tk) + " special groups";
      Outputs g, r;
      run_both({M, K, Dist::Gaussian}, f, tk, 0xA5, &g, &r, false, x0);
      expect_equal(g, r, what);
      // NaN and Inf: the affected groups' outputs are not specified (kNonFinite, wush_cuda.h), but
      // both runs must agree and count them.
      std::vector<uint16_t> x1 = x0;
      x1[size_t(130 * K + 257)] = 0x7FC0;  // NaN
      x1[size_t(160 * K + 400)] = 0x7F80;  // +Inf
      run_both({M, K, Dist::Gaussian}, f, tk, 0xA5, &g, &r, false, x1);
      EXPECT_EQ(first_diff(g.operand_only, g.operand), -1) << what << " with NaN/Inf: operand";
      EXPECT_EQ(first_diff(g.chunk_only, g.chunk), -1) << what << " with NaN/Inf: chunk scales";
      EXPECT_EQ(g.counters_only, g.counters) << what << " with NaN/Inf: counters";
      EXPECT_EQ(g.counters[kNonFinite], 2u) << what << " with NaN/Inf";
      if (HasFailure()) return;
    }
}

TEST(CudaQuantize, EveryOutputWritten) {
  // A second poison: an element left unwritten would equal the reference under at most one.
  WUSH_REQUIRE_DEVICE();
  for (QFormat f : all_qformats()) {
    Outputs g, r;
    run_both({67, 416, Dist::HeavyTailed}, f, TKind::PerBlock, 0x00, &g, &r);
    expect_equal(g, r, std::string(format_name(f)) + " poison 0x00");
    run_both({67, 416, Dist::HeavyTailed}, f, TKind::PerBlock, 0xFF, &g, &r);
    expect_equal(g, r, std::string(format_name(f)) + " poison 0xFF");
  }
}

TEST(CudaQuantize, HeavyTailsExerciseTheCounters) {
  // Outliers make some chunks exceed the exact FP8 span (MX) and, with g = 10, some NVFP4 block
  // scales overflow E4M3: the counts must be non-zero and equal to the reference's.
  WUSH_REQUIRE_DEVICE();
  Outputs g, r;
  run_both({512, 1024, Dist::Outliers}, QFormat::MXFP4, TKind::Identity, 0xA5, &g, &r);
  EXPECT_GT(r.counters[kSpanExceeded], 0u);
  EXPECT_EQ(g.counters, r.counters);
  run_both({512, 1024, Dist::Outliers}, QFormat::NVFP4, TKind::Identity, 0xA5, &g, &r);
  EXPECT_GT(r.counters[kScaleOverflow], 0u);
  EXPECT_EQ(g.counters, r.counters);
}

TEST(CudaQuantize, NonFiniteInputIsCounted) {
  WUSH_REQUIRE_DEVICE();
  const int64_t M = 40, K = 256;
  std::vector<uint16_t> x = random_x(M, K, Dist::Gaussian, 7);
  x[size_t(17 * K + 100)] = 0x7FC0;  // NaN
  x[size_t(33 * K + 3)] = 0x7F80;    // +Inf
  DevBuf<uint16_t> dx(x.size());
  dx.upload(x);
  DevBuf<uint8_t> codes(size_t(M * K / 2)), scales(size_t(M * K / 32));
  DevBuf<unsigned long long> counters(kNumCounters);
  counters.fill_bytes(0);
  QuantizeOutputs out{codes.p, scales.p, nullptr, nullptr, counters.p};
  WUSH_CUDA_OK(fused_transform_quantize_cuda(reinterpret_cast<const __nv_bfloat16*>(dx.p), M, K, TransformSpec{},
                                             {QFormat::MXFP4}, out, 0));
  EXPECT_EQ(counters.download()[kNonFinite], 2u);
}

TEST(CudaWeightOperand, EqualsReferenceAndFusedOperand) {
  // Weights quantized by the reference (codes + scales) -> operand on the GPU == reference
  // operand == the operand the fused kernel wrote for the same rows.
  WUSH_REQUIRE_DEVICE();
  for (QFormat f : all_qformats()) {
    const Case c{300, 1056, Dist::HeavyTailed};
    Outputs g, r;
    run_both(c, f, TKind::PerBlock, 0xA5, &g, &r);
    const bool mx = has_chunk_operand(f);
    DevBuf<uint8_t> codes(r.codes.size()), scales(r.scales.size()), operand(r.operand.size());
    DevBuf<float> chunk(r.chunk.size());
    DevBuf<unsigned long long> counters(kNumCounters);
    codes.upload(r.codes);
    scales.upload(r.scales);
    operand.fill_bytes(0x5A);
    chunk.fill_bytes(0x5A);
    counters.fill_bytes(0);
    const QuantConfig cfg{f, 10.0f};
    WUSH_CUDA_OK(prepare_weight_operand_cuda(codes.p, scales.p, c.M, c.K, cfg, operand.p, mx ? chunk.p : nullptr,
                                             counters.p, 0));
    std::vector<uint8_t> ref_op(r.operand.size());
    std::vector<float> ref_chunk(r.chunk.size());
    std::vector<unsigned long long> ref_cnt(kNumCounters, 0);
    prepare_weight_operand_ref(r.codes.data(), r.scales.data(), c.M, c.K, cfg, ref_op.data(),
                               mx ? ref_chunk.data() : nullptr, ref_cnt.data());
    EXPECT_EQ(first_diff(operand.download(), ref_op), -1) << format_name(f);
    EXPECT_EQ(first_diff(ref_op, r.operand), -1) << format_name(f) << ": prep != fused operand";
    if (mx) {
      EXPECT_EQ(first_diff(chunk.download(), ref_chunk), -1) << format_name(f);
      EXPECT_EQ(first_diff(ref_chunk, r.chunk), -1) << format_name(f);
      EXPECT_EQ(counters.download()[kSpanExceeded], ref_cnt[kSpanExceeded]) << format_name(f);
      EXPECT_EQ(ref_cnt[kSpanExceeded], r.counters[kSpanExceeded]) << format_name(f);
    }
  }
}

}  // namespace
}  // namespace cuda
}  // namespace wush

// fused_transform_quantize_cuda and prepare_weight_operand_cuda against their host references:
// codes, scales, FP8/bf16 operand, chunk scales and counters bit-identical, for every format,
// identity / shared-Hadamard / per-block transforms, shapes with M = 1, K not a multiple of 128,
// large M, and Gaussian, heavy-tailed and outlier data. Outputs are poisoned before each run
// (two different poisons) so an unwritten element cannot pass. Skips without a GPU.
#include <gtest/gtest.h>

#include <string>
#include <vector>

#include "cuda/wush_cuda.h"
#include "cuda_test_util.h"

namespace wush {
namespace cuda {
namespace {

using namespace test;

enum class TKind { Identity, Hadamard, PerBlock };
const char* tkind_name(TKind t) {
  return t == TKind::Identity ? "identity" : (t == TKind::Hadamard ? "hadamard" : "per-block");
}

struct Outputs {
  std::vector<uint8_t> codes, scales, operand;
  std::vector<float> chunk;
  std::vector<unsigned long long> counters;
};

struct Case {
  int64_t M, K;
  Dist dist;
};

// Runs the kernel (with output poison `poison`) and the reference; returns both.
void run_both(const Case& c, QFormat f, TKind tk, int poison, Outputs* gpu, Outputs* ref) {
  const QuantConfig cfg{f, 10.0f};
  const int G = group_size(f);
  const int64_t M = c.M, K = c.K, nb = K / G, nchunks = (K + 127) / 128, Mp = operand_rows(M);
  const bool mx = has_chunk_operand(f);
  const size_t op_bytes = size_t(Mp * K * (mx ? 1 : 2));  // padding rows included: must be zeros
  std::vector<uint16_t> x = random_x(M, K, c.dist, uint32_t(M * 131 + K + int(f)));
  std::vector<float> T;
  TransformSpec ts;
  if (tk == TKind::Hadamard) T = hadamard_T(G);
  if (tk == TKind::PerBlock) T = random_T(nb, G, uint32_t(K));

  DevBuf<uint16_t> dx(x.size());
  dx.upload(x);
  DevBuf<float> dT(T.size());
  if (!T.empty()) {
    dT.upload(T);
    ts = TransformSpec{dT.p, tk == TKind::Hadamard ? 1 : nb};
  }
  DevBuf<uint8_t> codes(size_t(M * K / 2)), scales(size_t(M * nb)), operand(op_bytes);
  DevBuf<float> chunk(size_t(Mp * nchunks));
  DevBuf<unsigned long long> counters(kNumCounters);
  codes.fill_bytes(poison);
  scales.fill_bytes(poison);
  operand.fill_bytes(poison);
  chunk.fill_bytes(poison);
  counters.fill_bytes(0);
  QuantizeOutputs out{codes.p, scales.p, operand.p, mx ? chunk.p : nullptr, counters.p};
  WUSH_CUDA_OK(fused_transform_quantize_cuda(reinterpret_cast<const __nv_bfloat16*>(dx.p), M, K, ts, cfg, out, 0));
  WUSH_CUDA_OK(cudaDeviceSynchronize());
  gpu->codes = codes.download();
  gpu->scales = scales.download();
  gpu->operand = operand.download();
  gpu->chunk = mx ? chunk.download() : std::vector<float>();
  gpu->counters = counters.download();

  ref->codes.assign(gpu->codes.size(), 0);
  ref->scales.assign(gpu->scales.size(), 0);
  ref->operand.assign(op_bytes, 0);
  ref->chunk.assign(mx ? size_t(Mp * nchunks) : 0, 0.f);
  ref->counters.assign(kNumCounters, 0);
  TransformSpec hts{T.empty() ? nullptr : T.data(), ts.num_blocks};
  fused_transform_quantize_ref(x.data(), M, K, hts, cfg,
                               QuantizeOutputs{ref->codes.data(), ref->scales.data(), ref->operand.data(),
                                               mx ? ref->chunk.data() : nullptr, ref->counters.data()});
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
}

const Case kCases[] = {
    {1, 32, Dist::Gaussian},       {1, 4096, Dist::Outliers},    {3, 96, Dist::HeavyTailed},
    {5, 160, Dist::Gaussian},      {257, 384, Dist::HeavyTailed}, {130, 1056, Dist::Outliers},
    {4099, 256, Dist::Gaussian},   {600, 2080, Dist::HeavyTailed},
};

TEST(CudaQuantize, EqualsReferenceBitForBit) {
  WUSH_REQUIRE_DEVICE();
  for (QFormat f : all_qformats())
    for (TKind tk : {TKind::Identity, TKind::Hadamard, TKind::PerBlock})
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

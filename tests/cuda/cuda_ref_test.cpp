// The host references of the CUDA kernels against hand-derived values of REFERENCE.md §1/§7
// (runs without a GPU): E2M1 ties, the three scale rules, E4M3 scale rounding and saturation,
// the FP8 chunk operand and its exact-span counter, and argument checks.
#include <gtest/gtest.h>

#include <cmath>
#include <cstring>
#include <vector>

#include "cuda/wush_cuda.h"
#include "cuda_test_util.h"

namespace wush {
namespace cuda {
namespace {

using test::f2bf;

struct RefOut {
  std::vector<uint8_t> codes, scales, operand;
  std::vector<float> chunk;
  unsigned long long counters[kNumCounters] = {0, 0, 0};
  std::vector<uint8_t> code_list;  // unpacked
};

RefOut run_ref(const std::vector<float>& xs, int64_t M, int64_t K, QuantConfig cfg) {
  std::vector<uint16_t> x;
  for (float v : xs) x.push_back(f2bf(v));
  RefOut r;
  const int G = group_size(cfg.format);
  r.codes.resize(size_t(M * K / 2));
  r.scales.resize(size_t(M * K / G));
  r.operand.resize(size_t(operand_rows(M) * K * (cfg.format == QFormat::NVFP4 ? 2 : 1)));
  r.chunk.resize(size_t(operand_rows(M) * ((K + 127) / 128)));
  QuantizeOutputs out{r.codes.data(), r.scales.data(), r.operand.data(),
                      has_chunk_operand(cfg.format) ? r.chunk.data() : nullptr, r.counters};
  fused_transform_quantize_ref(x.data(), M, K, TransformSpec{}, cfg, out);
  for (int64_t k = 0; k < M * K; ++k) r.code_list.push_back((r.codes[size_t(k / 2)] >> (4 * (k & 1))) & 15);
  return r;
}

std::vector<float> group_with(std::vector<float> head, int G) {
  head.resize(size_t(G), 0.0f);
  return head;
}

TEST(CudaRef, Mxfp4OcpE2m1TiesToEven) {
  // amax 4 -> X = 2^(2-2) = 1, so q = RNE_E2M1(x): the tie list of §1.
  auto x = group_with({4.0f, 0.25f, 0.75f, 1.25f, 1.75f, 2.5f, 3.5f, 5.0f, -4.0f, 0.5f, -0.1f, -5.5f}, 32);
  RefOut r = run_ref(x, 1, 32, {QFormat::MXFP4_OCP});
  EXPECT_EQ(r.scales[0], 127);
  const std::vector<uint8_t> want = {6, 0, 2, 2, 4, 4, 6, 6, 0xE, 1, 0, 0xF};
  for (size_t i = 0; i < want.size(); ++i) EXPECT_EQ(r.code_list[i], want[i]) << "element " << i;
  EXPECT_EQ(r.codes[0], 0x06);  // low nibble = element 0 (code 6), high = element 1 (code 0)
}

TEST(CudaRef, Mxfp4ReferenceRuleScalesByThreeOverS) {
  // amax 4 -> s = 4, q = RNE_E2M1(3x/4): 4 -> 3, -2 -> -1.5, 1 -> 0.75 -> 1 (tie to even).
  auto x = group_with({4.0f, -2.0f, 1.0f, 0.2f}, 32);
  RefOut r = run_ref(x, 1, 32, {QFormat::MXFP4});
  EXPECT_EQ(r.scales[0], 129);
  EXPECT_EQ(r.code_list[0], 5);
  EXPECT_EQ(r.code_list[1], 0xB);
  EXPECT_EQ(r.code_list[2], 2);
  EXPECT_EQ(r.code_list[3], 0);  // 0.15 -> 0
}

TEST(CudaRef, Mxint4RoundsAndClamps) {
  // amax 7.9 -> X = 1: 7.9 -> 8 clamps to 7; 2.5 -> 2; 3.5 -> 4; -7 -> -7.
  auto x = group_with({7.9f, 2.5f, 3.5f, -7.0f}, 32);
  RefOut r = run_ref(x, 1, 32, {QFormat::MXINT4});
  EXPECT_EQ(r.scales[0], 127);
  EXPECT_EQ(r.code_list[0], 7);
  EXPECT_EQ(r.code_list[1], 2);
  EXPECT_EQ(r.code_list[2], 4);
  EXPECT_EQ(r.code_list[3], 9);  // -7 in two's complement int4
  // amax 8 -> X = 2: -8 -> -4, 1 -> 0.5 -> 0, 3 -> 1.5 -> 2.
  auto y = group_with({8.0f, -8.0f, 1.0f, 3.0f}, 32);
  RefOut q = run_ref(y, 1, 32, {QFormat::MXINT4});
  EXPECT_EQ(q.scales[0], 128);
  EXPECT_EQ(q.code_list[1], 0xC);
  EXPECT_EQ(q.code_list[2], 0);
  EXPECT_EQ(q.code_list[3], 2);
}

TEST(CudaRef, Nvfp4E4m3ScaleRoundingAndOverflow) {
  // g = 6 makes t = g amax / 6 = amax exactly for these values.
  struct Case { float amax; uint8_t code; unsigned long long overflow; };
  const Case cases[] = {{448.0f, 0x7E, 0}, {464.0f, 0x7E, 1}, {10.0f, 0x52, 0},
                        {0x1p-9f, 0x01, 0}, {0x1p-10f, 0x00, 0}, {0x3p-10f, 0x02, 0}};
  for (const Case& c : cases) {
    RefOut r = run_ref(group_with({c.amax, c.amax / 2}, 16), 1, 16, {QFormat::NVFP4, 6.0f});
    EXPECT_EQ(r.scales[0], c.code) << c.amax;
    EXPECT_EQ(r.counters[kScaleOverflow], c.overflow) << c.amax;
    if (c.code == 0) EXPECT_EQ(r.code_list[0], 0) << "zero scale -> zero codes";
  }
  // g = 10, amax 6: s = E4M3(10) = 10, q = RNE_E2M1(x): 6 -> 6, 3 -> 3, -1.25 -> -1.
  RefOut r = run_ref(group_with({6.0f, 3.0f, -1.25f}, 16), 1, 16, {QFormat::NVFP4, 10.0f});
  EXPECT_EQ(r.scales[0], 0x52);
  EXPECT_EQ(r.code_list[0], 7);
  EXPECT_EQ(r.code_list[1], 5);
  EXPECT_EQ(r.code_list[2], 0xA);
  // bf16 operand = q * s: 6 * 10 = 60 = 0x4270.
  EXPECT_EQ(r.operand[0], 0x70);
  EXPECT_EQ(r.operand[1], 0x42);
}

TEST(CudaRef, ZeroGroupHasSmallestScaleAndZeroCodes) {
  RefOut r = run_ref(std::vector<float>(32, 0.0f), 1, 32, {QFormat::MXFP4});
  EXPECT_EQ(r.scales[0], 0);
  for (uint8_t c : r.codes) EXPECT_EQ(c, 0);
  for (uint8_t c : r.operand) EXPECT_EQ(c, 0);
}

TEST(CudaRef, Fp8ChunkOperandAndSpanCounter) {
  // OCP rule, four groups with amax 4, 0.5, 2^-7 and 4: exponents E = 0, -3, -9, 0.
  std::vector<float> x(128, 0.0f);
  x[0] = 4.0f;         // group 0: q = 4 -> E4M3(4) = 0x48
  x[1] = 6.0f / 4.0f;  // q = 1.5 -> 0x3C
  x[32] = 0.5f;        // group 1: X = 2^-3, q = 4 -> 4 * 2^-3 = 0.5 -> 0x30
  x[64] = 0x1p-7f;     // group 2: X = 2^-9, q = 4 -> 4 * 2^-9 = 2^-7 -> subnormal 0x04 (span 9)
  x[96] = 4.0f;
  RefOut r = run_ref(x, 1, 128, {QFormat::MXFP4_OCP});
  EXPECT_EQ(r.scales[0], 127);
  EXPECT_EQ(r.scales[1], 124);
  EXPECT_EQ(r.scales[2], 118);
  EXPECT_EQ(r.operand[0], 0x48);
  EXPECT_EQ(r.operand[1], 0x3C);
  EXPECT_EQ(r.operand[32], 0x30);
  EXPECT_EQ(r.operand[64], 0x04);
  EXPECT_EQ(r.chunk[0], 1.0f);
  EXPECT_EQ(r.counters[kSpanExceeded], 1u);  // span 9 > 8 for E2M1
  // The same chunk in MXINT4 has span 9 <= 9: exact, not counted.
  RefOut q = run_ref(x, 1, 128, {QFormat::MXINT4});
  EXPECT_EQ(q.counters[kSpanExceeded], 0u);
}

TEST(CudaRef, NonFiniteInputIsCounted) {
  std::vector<float> x(64, 1.0f);
  x[40] = NAN;
  RefOut r = run_ref(x, 1, 64, {QFormat::MXFP4});
  EXPECT_EQ(r.counters[kNonFinite], 1u);
}

TEST(CudaRef, MarksteinDivisionBySixIsExact) {
  // The identity the NVFP4 quantizer's dev::div6 relies on (quant_codec.cuh): q0 = x RN(1/6),
  // q = fma(fma(-6, q0, x), RN(1/6), q0) equals the IEEE quotient x / 6 for x >= 2^-125 (checked
  // for all 2^31 non-negative floats once; here every 61st, and the ends of the range).
  const float inv6 = 1.0f / 6.0f;
  auto div6 = [&](float x) {
    const float q0 = x * inv6;
    return std::fma(std::fma(-6.0f, q0, x), inv6, q0);
  };
  int64_t checked = 0, wrong = 0;
  auto check = [&](uint32_t u) {
    float x;
    std::memcpy(&x, &u, 4);
    const float a = div6(x), e = x / 6.0f;
    wrong += std::memcmp(&a, &e, 4) != 0;
    ++checked;
  };
  const uint32_t lo = 0x01000000u, hi = 0x7F800000u;  // 2^-125 .. the largest finite float
  for (uint32_t u = lo; u < lo + 1000; ++u) check(u);
  for (uint32_t u = lo + 1000; u < hi - 1000; u += 61) check(u);
  for (uint32_t u = hi - 1000; u < hi; ++u) check(u);
  EXPECT_EQ(wrong, 0) << "of " << checked;
  EXPECT_GT(checked, int64_t(30000000));
}

TEST(CudaApi, RejectsBadShapesWithAMessage) {
  // Checked before any device call: runs without a GPU.
  QuantizeOutputs out;
  EXPECT_EQ(fused_transform_quantize_cuda(nullptr, 4, 40, TransformSpec{}, {QFormat::MXFP4}, out, 0),
            cudaErrorInvalidValue);
  EXPECT_NE(std::string(last_error_message()).find("K = 40"), std::string::npos) << last_error_message();
  const auto* x16 = reinterpret_cast<const __nv_bfloat16*>(uintptr_t(256));  // never dereferenced
  const TransformSpec t4{reinterpret_cast<const float*>(uintptr_t(260)), 1};   // 4-byte aligned only
  EXPECT_EQ(fused_transform_quantize_cuda(x16, 4, 64, t4, {QFormat::MXFP4}, out, 0), cudaErrorInvalidValue);
  EXPECT_NE(std::string(last_error_message()).find("T must be an 8-byte aligned"), std::string::npos)
      << last_error_message();
  EXPECT_EQ(prepare_weight_operand_cuda(nullptr, nullptr, 4, 48, {QFormat::NVFP4}, nullptr, nullptr, nullptr, 0),
            cudaErrorInvalidValue);  // 48 % 16 == 0 but codes are missing
  EXPECT_NE(std::string(last_error_message()).find("codes"), std::string::npos) << last_error_message();
  GemmPlan* plan = nullptr;
  EXPECT_EQ(gemm_plan_create(&plan, GemmKind::BF16, 4, 100, 64, 1.0f), cudaErrorInvalidValue);
  EXPECT_EQ(plan, nullptr);
}

}  // namespace
}  // namespace cuda
}  // namespace wush

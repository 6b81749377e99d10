// The row-wise operand (fold_rows, wush_cuda.h; REFERENCE.md §7's exact-span rule on whole rows):
// the host reference against hand-derived values, the kernel against the reference bit for bit
// (poisoned outputs, M = 1, K not a multiple of 128, heavy tails that make rows inexact), and the
// row-wise FP8 GEMM on folded operands against the float64 product of the dequantized operands.
#include <gtest/gtest.h>

#include <cmath>
#include <vector>

#include "cuda/wush_cuda.h"
#include "cuda_test_util.h"

namespace wush {
namespace cuda {
namespace {

using namespace test;

TEST(CudaRowFoldRef, HandDerivedRow) {
  // M = 1 (4 operand rows), K = 256: two chunks with scales 2^3 and 2^5 in row 0 -> E_row = 5.
  const int64_t M = 1, K = 256, Mp = operand_rows(M);
  std::vector<uint8_t> op(size_t(Mp * K), 0), out(op.size(), 0xAA);
  std::vector<float> chunk(size_t(2 * Mp), 0.0f), rows(size_t(Mp), -1.0f);
  chunk[0 * Mp + 0] = 8.0f;
  chunk[1 * Mp + 0] = 32.0f;
  op[0] = 0x40;    // 2.0 in chunk 0 -> 2 * 2^(3-5) = 0.5 = 0x30
  op[1] = 0xC4;    // -3.0 -> -0.75 = 0xB4
  op[2] = 0x02;    // 2^-8 -> 2^-10: below E4M3's 2^-9, rounds (tie) to 0: the row is inexact
  op[128] = 0x7E;  // 448 in chunk 1 (factor 1) stays
  unsigned long long inexact = 0;
  fold_rows_ref(op.data(), chunk.data(), M, K, out.data(), rows.data(), &inexact);
  EXPECT_EQ(rows[0], 32.0f);
  EXPECT_EQ(rows[1], 0.0f);  // padding rows: zero scale, zero elements
  EXPECT_EQ(out[0], 0x30);
  EXPECT_EQ(out[1], 0xB4);
  EXPECT_EQ(out[2], 0x00);
  EXPECT_EQ(out[3], 0x00);
  EXPECT_EQ(out[128], 0x7E);
  EXPECT_EQ(out[size_t(K)], 0x00);
  EXPECT_EQ(inexact, 1u);
  op[2] = 0x04;  // 2^-7 -> 2^-9 (0x01): exact, no row counted
  inexact = 0;
  fold_rows_ref(op.data(), chunk.data(), M, K, out.data(), rows.data(), &inexact);
  EXPECT_EQ(out[2], 0x01);
  EXPECT_EQ(inexact, 0u);
}

// Chunk operand of random activations through the fused quantizer, then fold on the GPU and on
// the host.
struct Folded {
  std::vector<uint8_t> chunk_op, row_op;
  std::vector<float> chunk_scales, row_scales;
  unsigned long long inexact = 0;
};

void fold_on_gpu(QFormat f, int64_t M, int64_t K, Dist d, Folded* r, int poison) {
  const QuantConfig cfg{f, 10.0f};
  const int64_t Mp = operand_rows(M), nch = (K + 127) / 128;
  std::vector<uint16_t> x = random_x(M, K, d, uint32_t(M * 31 + K));
  std::vector<float> T = random_T(K / 32, 32, 5);
  DevBuf<uint16_t> dx(x.size());
  DevBuf<float> dT(T.size()), dchunk(size_t(nch * Mp)), drows{size_t(Mp)};
  DevBuf<uint8_t> dop(size_t(Mp * K)), dout(size_t(Mp * K));
  DevBuf<unsigned long long> dcnt(1);
  dx.upload(x);
  dT.upload(T);
  dout.fill_bytes(poison);
  drows.fill_bytes(poison);
  dcnt.fill_bytes(0);
  WUSH_CUDA_OK(fused_transform_quantize_cuda(reinterpret_cast<const __nv_bfloat16*>(dx.p), M, K, TransformSpec{dT.p, K / 32},
                                             cfg, {nullptr, nullptr, dop.p, dchunk.p, nullptr}, 0));
  WUSH_CUDA_OK(fold_rows_cuda(dop.p, dchunk.p, M, K, dout.p, drows.p, dcnt.p, 0));
  WUSH_CUDA_OK(cudaDeviceSynchronize());
  r->chunk_op = dop.download();
  r->chunk_scales = dchunk.download();
  r->row_op = dout.download();
  r->row_scales = drows.download();
  r->inexact = dcnt.download()[0];
}

TEST(CudaRowFold, EqualsReferenceBitForBit) {
  WUSH_REQUIRE_DEVICE();
  unsigned long long inexact_total = 0;
  for (QFormat f : {QFormat::MXFP4, QFormat::MXINT4})
    for (Dist d : {Dist::Gaussian, Dist::HeavyTailed, Dist::Outliers})
      for (auto [M, K] : {std::pair<int64_t, int64_t>{1, 32}, {3, 96}, {130, 1056}, {257, 4096}, {64, 14336}})
        for (int poison : {0x00, 0xFF}) {
          Folded g;
          fold_on_gpu(f, M, K, d, &g, poison);
          if (HasFatalFailure()) return;
          const int64_t Mp = operand_rows(M);
          std::vector<uint8_t> out(size_t(Mp * K), 0x5A);
          std::vector<float> rows(size_t(Mp), -1.0f);
          unsigned long long inexact = 0;
          fold_rows_ref(g.chunk_op.data(), g.chunk_scales.data(), M, K, out.data(), rows.data(), &inexact);
          const std::string what = std::string(format_name(f)) + " M=" + std::to_string(M) + " K=" + std::to_string(K) +
                                   " dist=" + std::to_string(int(d)) + " poison=" + std::to_string(poison);
          ASSERT_EQ(std::memcmp(out.data(), g.row_op.data(), out.size()), 0) << what;
          ASSERT_EQ(std::memcmp(rows.data(), g.row_scales.data(), rows.size() * 4), 0) << what;
          EXPECT_EQ(inexact, g.inexact) << what;
          inexact_total += inexact;
          // Every row scale is the row's largest chunk scale (a power of two, or 0).
          for (int64_t r = 0; r < Mp; ++r) {
            int e = 0;
            EXPECT_TRUE(rows[r] == 0.0f || std::frexp(rows[r], &e) == 0.5f) << what;
          }
        }
  EXPECT_GT(inexact_total, 0u) << "the outlier data should make some rows inexact";
}

// Y = Q(X T) Q(W)^T through fold + FP8_ROWWISE, against float64 from the codes and scales.
TEST(CudaRowFold, RowwiseGemmMatchesFloat64Emulation) {
  WUSH_REQUIRE_DEVICE();
  for (QFormat f : {QFormat::MXFP4, QFormat::MXFP4_OCP, QFormat::MXINT4})
    for (auto [M, N, K] : {std::tuple<int64_t, int64_t, int64_t>{1, 256, 4096}, {77, 384, 1056}, {256, 512, 2048}}) {
      const QuantConfig cfg{f, 10.0f};
      const int64_t Mp = operand_rows(M), Np = operand_rows(N), nch = (K + 127) / 128;
      std::vector<uint16_t> x = random_x(M, K, Dist::Gaussian, uint32_t(M + K)), w = random_x(N, K, Dist::Gaussian, uint32_t(N + 3 * K));
      for (uint16_t& v : w) v = f2bf(bf2f(v) * 0.02f);
      std::vector<float> T = random_T(K / 32, 32, 9);
      DevBuf<uint16_t> dx(x.size()), dw(w.size());
      DevBuf<float> dT(T.size()), xc(size_t(nch * Mp)), wc(size_t(nch * Np)), xr{size_t(Mp)}, wr{size_t(Np)};
      DevBuf<uint8_t> xq(size_t(M * K / 2)), xs(size_t(M * K / 32)), wq(size_t(N * K / 2)), ws(size_t(N * K / 32));
      DevBuf<uint8_t> xo(size_t(Mp * K)), wo(size_t(Np * K)), xro(size_t(Mp * K)), wro(size_t(Np * K));
      DevBuf<unsigned long long> inexact(1);
      DevBuf<float> y(size_t(Mp * N));
      dx.upload(x);
      dw.upload(w);
      dT.upload(T);
      inexact.fill_bytes(0);
      y.fill_bytes(0xFF);
      WUSH_CUDA_OK(fused_transform_quantize_cuda(reinterpret_cast<const __nv_bfloat16*>(dx.p), M, K, TransformSpec{dT.p, K / 32},
                                                 cfg, {xq.p, xs.p, xo.p, xc.p, nullptr}, 0));
      WUSH_CUDA_OK(fused_transform_quantize_cuda(reinterpret_cast<const __nv_bfloat16*>(dw.p), N, K, TransformSpec{}, cfg,
                                                 {wq.p, ws.p, nullptr, nullptr, nullptr}, 0));
      WUSH_CUDA_OK(prepare_weight_operand_cuda(wq.p, ws.p, N, K, cfg, wo.p, wc.p, nullptr, 0));
      WUSH_CUDA_OK(fold_rows_cuda(xo.p, xc.p, M, K, xro.p, xr.p, inexact.p, 0));
      WUSH_CUDA_OK(fold_rows_cuda(wo.p, wc.p, N, K, wro.p, wr.p, inexact.p, 0));
      GemmPlan* plan = nullptr;
      WUSH_CUDA_OK(gemm_plan_create(&plan, GemmKind::FP8_ROWWISE, M, N, K, gemm_alpha(cfg), OutType::FP32));
      WUSH_CUDA_OK(gemm_run(plan, xro.p, xr.p, wro.p, wr.p, y.p, 0));
      WUSH_CUDA_OK(cudaDeviceSynchronize());
      gemm_plan_destroy(plan);
      ASSERT_EQ(inexact.download()[0], 0u) << "Gaussian rows must fold exactly for this check";
      const std::vector<uint8_t> ac = xq.download(), as = xs.download(), wcodes = wq.download(), wscales = ws.download();
      std::vector<double> A(size_t(M * K)), W(size_t(N * K));
      for (int64_t m = 0; m < M; ++m)
        for (int64_t k = 0; k < K; ++k) A[size_t(m * K + k)] = dequant(cfg, &ac[size_t(m * K / 2)], &as[size_t(m * K / 32)], k);
      for (int64_t n = 0; n < N; ++n)
        for (int64_t k = 0; k < K; ++k)
          W[size_t(n * K + k)] = dequant(cfg, &wcodes[size_t(n * K / 2)], &wscales[size_t(n * K / 32)], k);
      const std::vector<float> got = y.download();
      double num = 0, den = 0;
      for (int64_t m = 0; m < M; ++m)
        for (int64_t n = 0; n < N; ++n) {
          double ref = 0;
          for (int64_t k = 0; k < K; ++k) ref += A[size_t(m * K + k)] * W[size_t(n * K + k)];
          const double g = got[size_t(m * N + n)];
          ASSERT_TRUE(std::isfinite(g)) << "unwritten or non-finite output at " << m << "," << n;
          num += (g - ref) * (g - ref);
          den += ref * ref;
        }
      EXPECT_LT(std::sqrt(num / den), 1e-3) << format_name(f) << " M=" << M << " N=" << N << " K=" << K;
    }
}

}  // namespace
}  // namespace cuda
}  // namespace wush

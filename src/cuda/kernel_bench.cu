// `wush bench kernels` (kernel_bench.h). The timing loop and data fills; the kernels under test
// are the library's own entry points.
#include <cuda_bf16.h>
#include <cuda_fp8.h>
#include <cuda_runtime.h>

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <map>
#include <memory>

#include "cuda/bench_fill.cuh"
#include "cuda/internal.h"
#include "cuda/kernel_bench.h"

namespace wush {
namespace cuda {
namespace {
using namespace bench_fill;

#define WUSH_BK(call)                                         \
  do {                                                        \
    cudaError_t e_ = (call);                                  \
    if (e_ != cudaSuccess) return detail::check_cuda(e_, #call); \
  } while (0)
// For library calls that already recorded their message.
#define WUSH_BL(call)                     \
  do {                                    \
    cudaError_t e_ = (call);              \
    if (e_ != cudaSuccess) return e_;     \
  } while (0)


// A device allocation freed on scope exit.
struct Buf {
  void* p = nullptr;
  Buf() = default;
  Buf(const Buf&) = delete;
  Buf& operator=(const Buf&) = delete;
  ~Buf() { if (p) cudaFree(p); }
  cudaError_t alloc(size_t bytes) { return detail::check_cuda(cudaMalloc(&p, std::max<size_t>(bytes, 16)), "cudaMalloc"); }
  template <class T> T* as() const { return static_cast<T*>(p); }
};

struct Plan {
  GemmPlan* p = nullptr;
  ~Plan() { gemm_plan_destroy(p); }
};

// The quantizer's traffic without its arithmetic: bf16 -> E4M3 (saturating) in 16-byte loads and
// 8-byte stores, a grid-stride loop: what this read/write mix reaches (the quantizer table's
// first row, its practical ceiling).
__global__ void cast_bf16_fp8(const uint4* __restrict__ x, uint2* __restrict__ y, size_t n8) {
  for (size_t i = size_t(blockIdx.x) * blockDim.x + threadIdx.x; i < n8; i += size_t(gridDim.x) * blockDim.x) {
    const uint4 v = __ldcs(x + i);
    const uint32_t in[4] = {v.x, v.y, v.z, v.w};
    uint32_t w[4];
#pragma unroll
    for (int j = 0; j < 4; ++j)
      w[j] = __nv_cvt_float2_to_fp8x2(make_float2(__uint_as_float(in[j] << 16), __uint_as_float(in[j] & 0xFFFF0000u)),
                                      __NV_SATFINITE, __NV_E4M3);
    __stcs(y + i, make_uint2((w[0] & 0xFFFFu) | (w[1] << 16), (w[2] & 0xFFFFu) | (w[3] << 16)));
  }
}

cudaError_t random_bf16(__nv_bfloat16* p, size_t n, uint32_t seed, float scale) {
  fill_bf16<<<2048, 256>>>(p, n, seed, scale);
  return detail::check_cuda(cudaGetLastError(), "fill_bf16");
}

// Median per-launch time (us) of fn(i) over `reps` batches of `inner` launches, after warm-up.
cudaError_t time_us(const std::function<cudaError_t(int)>& fn, int inner, int reps, double* us) {
  cudaEvent_t a, b;
  WUSH_BK(cudaEventCreate(&a));
  WUSH_BK(cudaEventCreate(&b));
  std::unique_ptr<CUevent_st, cudaError_t (*)(cudaEvent_t)> ga(a, cudaEventDestroy), gb(b, cudaEventDestroy);
  int call = 0;
  for (int i = 0; i < 2; ++i) WUSH_BL(fn(call++));
  WUSH_BK(cudaDeviceSynchronize());
  std::vector<double> ts;
  for (int r = 0; r < reps; ++r) {
    WUSH_BK(cudaEventRecord(a));
    for (int i = 0; i < inner; ++i) WUSH_BL(fn(call++));
    WUSH_BK(cudaEventRecord(b));
    WUSH_BK(cudaEventSynchronize(b));
    float ms = 0;
    WUSH_BK(cudaEventElapsedTime(&ms, a, b));
    ts.push_back(ms * 1000.0 / inner);
  }
  WUSH_BK(cudaGetLastError());
  std::sort(ts.begin(), ts.end());
  *us = ts[ts.size() / 2];
  return cudaSuccess;
}

// Launches per batch: about 2 ms of work per batch, at least 1.
int inner_for(double flops) { return int(std::clamp(2e-3 / (flops / 400e12 + 8e-6), 1.0, 50.0)); }

cudaError_t copy_bandwidth(int reps, KernelBenchResult* out) {
  const size_t copy_bytes = size_t(1) << 30;
  Buf src, dst;
  WUSH_BL(src.alloc(copy_bytes));
  WUSH_BL(dst.alloc(copy_bytes));
  WUSH_BK(cudaMemset(src.p, 1, copy_bytes));
  double us = 0;
  WUSH_BL(time_us([&](int) { return detail::check_cuda(cudaMemcpyAsync(dst.p, src.p, copy_bytes, cudaMemcpyDeviceToDevice), "copy"); },
                  5, reps, &us));
  out->copy_gbs = 2.0 * copy_bytes / us / 1e3;
  return cudaSuccess;
}

cudaError_t gemm_peaks(int reps, KernelBenchResult* out) {
  double us = 0;
  // GEMM peaks at 8192^3: BF16, and FP8 (tensor-wise scales, the cheapest FP8 mode) on the
  // MXFP4 operands of the same random data (finite E4M3 bytes).
  const int64_t n = 8192;
  Buf a, b, a8, b8, csc, y, one;
  WUSH_BL(a.alloc(size_t(n * n) * 2));
  WUSH_BL(b.alloc(size_t(n * n) * 2));
  WUSH_BL(a8.alloc(size_t(n * n)));
  WUSH_BL(b8.alloc(size_t(n * n)));
  WUSH_BL(csc.alloc(size_t(n * n / 128) * 4));
  WUSH_BL(y.alloc(size_t(n * n) * 2));
  WUSH_BL(one.alloc(4));
  const float f1 = 1.0f;
  WUSH_BK(cudaMemcpy(one.p, &f1, 4, cudaMemcpyHostToDevice));
  WUSH_BL(random_bf16(a.as<__nv_bfloat16>(), size_t(n * n), 11, 1.0f));
  WUSH_BL(random_bf16(b.as<__nv_bfloat16>(), size_t(n * n), 12, 1.0f));
  const QuantConfig mx{QFormat::MXFP4, 10.0f};
  WUSH_BL(fused_transform_quantize_cuda(a.as<__nv_bfloat16>(), n, n, {}, mx, {nullptr, nullptr, a8.p, csc.as<float>(), nullptr}, 0));
  WUSH_BL(fused_transform_quantize_cuda(b.as<__nv_bfloat16>(), n, n, {}, mx, {nullptr, nullptr, b8.p, csc.as<float>(), nullptr}, 0));
  Plan pb, p8;
  WUSH_BL(gemm_plan_create(&pb.p, GemmKind::BF16, n, n, n, 1.0f));
  WUSH_BL(gemm_plan_create(&p8.p, GemmKind::FP8_TENSORWISE, n, n, n, 1.0f));
  const double flops = 2.0 * n * n * n;
  WUSH_BL(time_us([&](int) { return gemm_run(pb.p, a.p, nullptr, b.p, nullptr, y.p, 0); }, 3, reps, &us));
  out->bf16_tflops = flops / us / 1e6;
  WUSH_BL(time_us([&](int) { return gemm_run(p8.p, a8.p, one.p, b8.p, one.p, y.p, 0); }, 3, reps, &us));
  out->fp8_tflops = flops / us / 1e6;
  return cudaSuccess;
}

cudaError_t quantizer_table(int64_t MK, int reps, KernelBenchResult* out) {
  const int64_t M = MK, K = MK;
  Buf x, Tpb, Th, Tpb16, codes, scales, operand, chunk, cnt;
  WUSH_BL(x.alloc(size_t(M * K) * 2));
  WUSH_BL(random_bf16(x.as<__nv_bfloat16>(), size_t(M * K), 1, 1.0f));
  WUSH_BL(Tpb.alloc(size_t(K / 32) * 32 * 32 * 4));
  fill_T<<<256, 256>>>(Tpb.as<float>(), size_t(K / 32) * 32 * 32, 2, 1.0f / std::sqrt(32.0f));
  WUSH_BL(Tpb16.alloc(size_t(K / 16) * 16 * 16 * 4));
  fill_T<<<256, 256>>>(Tpb16.as<float>(), size_t(K / 16) * 16 * 16, 3, 0.25f);
  WUSH_BK(cudaGetLastError());
  const std::vector<float> H = hadamard32();
  WUSH_BL(Th.alloc(H.size() * 4));
  WUSH_BK(cudaMemcpy(Th.p, H.data(), H.size() * 4, cudaMemcpyHostToDevice));
  WUSH_BL(codes.alloc(size_t(M * K / 2)));
  WUSH_BL(scales.alloc(size_t(M * K / 16)));
  WUSH_BL(operand.alloc(size_t(M * K * 2)));
  WUSH_BL(chunk.alloc(size_t(M * K / 128) * 4));
  WUSH_BL(cnt.alloc(kNumCounters * 8));
  struct QCase { const char* name; QFormat f; int tr; bool operand; };  // tr: 0 identity, 1 hadamard, 2 wush
  const QCase cases[] = {
      {"mxfp4 identity -> fp8 operand", QFormat::MXFP4, 0, true},
      {"mxfp4 hadamard -> fp8 operand", QFormat::MXFP4, 1, true},
      {"mxfp4 wush -> fp8 operand", QFormat::MXFP4, 2, true},
      {"mxfp4 hadamard -> codes+scales", QFormat::MXFP4, 1, false},
      {"mxfp4 wush -> codes+scales", QFormat::MXFP4, 2, false},
      {"mxint4 wush -> fp8 operand", QFormat::MXINT4, 2, true},
      {"nvfp4 hadamard -> bf16 operand", QFormat::NVFP4, 1, true},
      {"nvfp4 wush -> bf16 operand", QFormat::NVFP4, 2, true},
  };
  {
    int dev = 0, sms = 0;
    WUSH_BK(cudaGetDevice(&dev));
    WUSH_BK(cudaDeviceGetAttribute(&sms, cudaDevAttrMultiProcessorCount, dev));
    auto cast = [&](int) {
      cast_bf16_fp8<<<sms * 8, 256>>>(x.as<const uint4>(), operand.as<uint2>(), size_t(M * K / 8));
      return detail::check_cuda(cudaGetLastError(), "cast_bf16_fp8");
    };
    // Warm-up, untimed: about 40 ms of the cast (in `wush bench kernels` after the CUDA tests the
    // table's first case, timed cold, came out 10-15% slower than the same case later).
    for (int i = 0; i < 500; ++i) WUSH_BL(cast(i));
    double us = 0;
    WUSH_BL(time_us(cast, 10, reps, &us));
    out->quant.push_back({kCastCase, us, 3.0 * M * K});
  }
  for (const QCase& c : cases) {
    const int G = group_size(c.f);
    TransformSpec ts{};
    if (c.tr == 1) ts = G == 32 ? TransformSpec{Th.as<float>(), 1, true} : TransformSpec{Tpb16.as<float>(), 1, true};
    if (c.tr == 2) ts = G == 32 ? TransformSpec{Tpb.as<float>(), K / 32, true} : TransformSpec{Tpb16.as<float>(), K / 16, true};
    QuantizeOutputs qo{};
    double bytes = 2.0 * M * K;
    if (c.operand) {
      qo.operand = operand.p;
      bytes += double(M) * K * (has_chunk_operand(c.f) ? 1 : 2);
      if (has_chunk_operand(c.f)) {
        qo.chunk_scales = chunk.as<float>();
        bytes += 4.0 * M * K / 128;
      }
    } else {
      qo.codes = codes.as<uint8_t>();
      qo.scales = scales.as<uint8_t>();
      bytes += 0.5 * M * K + double(M) * K / G;
    }
    qo.counters = cnt.as<unsigned long long>();
    double us = 0;
    WUSH_BL(time_us([&](int) { return fused_transform_quantize_cuda(x.as<__nv_bfloat16>(), M, K, ts, {c.f, 10.0f}, qo, 0); },
                    10, reps, &us));
    out->quant.push_back({c.name, us, bytes});
  }
  return cudaSuccess;
}

// All M of one (N, K).
cudaError_t shape_rows(const BenchShape& s, const KernelBenchOptions& opt, KernelBenchResult* out,
                       const std::function<void(const std::string&)>& progress) {
  const int64_t N = s.N, K = s.K, nch = detail::ceil_div(K, detail::kChunk);
  if (K % 32 != 0) return detail::fail(cudaErrorInvalidValue, "bench: %s K = %lld is not a multiple of 32", s.label.c_str(), (long long)K);
  const QuantConfig cfg{QFormat::MXFP4, 10.0f};
  // Weight copies rotate so that together they exceed L2 (> 256 MB of fp8).
  const size_t wbytes = size_t(N * K);
  const int copies = int(std::min<size_t>(8, (size_t(256) << 20) / wbytes + 1));
  std::vector<Buf> wb(copies), w8(copies), wsc(copies), w8r(copies), wrs(copies);
  Buf wcodes, wscales;
  WUSH_BL(wcodes.alloc(size_t(N * K / 2)));
  WUSH_BL(wscales.alloc(size_t(N * K / 32)));
  for (int c = 0; c < copies; ++c) {
    WUSH_BL(wb[c].alloc(wbytes * 2));
    WUSH_BL(random_bf16(wb[c].as<__nv_bfloat16>(), size_t(N * K), 100 + c, 0.02f));
    WUSH_BL(w8[c].alloc(wbytes));
    WUSH_BL(wsc[c].alloc(size_t(operand_rows(N) * nch) * 4));
    WUSH_BL(fused_transform_quantize_cuda(wb[c].as<__nv_bfloat16>(), N, K, TransformSpec{}, cfg,
                                          {wcodes.as<uint8_t>(), wscales.as<uint8_t>(), nullptr, nullptr, nullptr}, 0));
    WUSH_BL(prepare_weight_operand_cuda(wcodes.as<uint8_t>(), wscales.as<uint8_t>(), N, K, cfg, w8[c].p,
                                        wsc[c].as<float>(), nullptr, 0));
    // The row-wise weight operand, prepared offline like the chunk one.
    WUSH_BL(w8r[c].alloc(size_t(operand_rows(N) * K)));
    WUSH_BL(wrs[c].alloc(size_t(operand_rows(N)) * 4));
    WUSH_BL(fold_rows_cuda(w8[c].as<uint8_t>(), wsc[c].as<float>(), N, K, w8r[c].as<uint8_t>(), wrs[c].as<float>(),
                           nullptr, 0));
  }
  Buf T, Th, x, x8, xsc, y, x8r, xrs;
  WUSH_BL(T.alloc(size_t(K / 32) * 1024 * 4));
  fill_T<<<256, 256>>>(T.as<float>(), size_t(K / 32) * 1024, 5, 1.0f / std::sqrt(32.0f));
  WUSH_BK(cudaGetLastError());
  const std::vector<float> H = hadamard32();
  WUSH_BL(Th.alloc(H.size() * 4));
  WUSH_BK(cudaMemcpy(Th.p, H.data(), H.size() * 4, cudaMemcpyHostToDevice));
  const int64_t Mmax = *std::max_element(opt.Ms.begin(), opt.Ms.end());
  WUSH_BL(x.alloc(size_t(Mmax * K) * 2));
  WUSH_BL(random_bf16(x.as<__nv_bfloat16>(), size_t(Mmax * K), 7, 1.0f));
  WUSH_BL(x8.alloc(size_t(operand_rows(Mmax) * K)));
  WUSH_BL(xsc.alloc(size_t(operand_rows(Mmax) * nch) * 4));
  WUSH_BL(y.alloc(size_t(operand_rows(Mmax) * N) * 2));
  WUSH_BL(x8r.alloc(size_t(operand_rows(Mmax) * K)));
  WUSH_BL(xrs.alloc(size_t(operand_rows(Mmax)) * 4));
  const auto* xb = x.as<__nv_bfloat16>();
  for (int64_t M : opt.Ms) {
    KernelBenchRow r;
    r.label = s.label;
    r.M = M, r.N = N, r.K = K;
    Plan pb, p8, pr;
    WUSH_BL(gemm_plan_create(&pb.p, GemmKind::BF16, M, N, K, 1.0f));
    WUSH_BL(gemm_plan_create(&p8.p, GemmKind::FP8_VEC128, M, N, K, gemm_alpha(cfg)));
    const bool have_row = gemm_plan_create(&pr.p, GemmKind::FP8_ROWWISE, M, N, K, gemm_alpha(cfg)) == cudaSuccess;
    const QuantizeOutputs qo{nullptr, nullptr, x8.p, xsc.as<float>(), nullptr};
    auto quant = [&](TransformSpec ts) { return fused_transform_quantize_cuda(xb, M, K, ts, cfg, qo, 0); };
    const TransformSpec wush{T.as<float>(), K / 32, true}, had{Th.as<float>(), 1, true};
    WUSH_BL(quant(wush));  // a valid operand for the GEMM-only timings
    const int inner = inner_for(2.0 * M * N * K);
    const int reps = opt.reps;
    WUSH_BL(time_us([&](int i) { return gemm_run(pb.p, xb, nullptr, wb[i % copies].p, nullptr, y.p, 0); }, inner, reps, &r.bf16));
    WUSH_BL(time_us([&](int) { return quant(TransformSpec{}); }, inner, reps, &r.q_identity));
    WUSH_BL(time_us([&](int) { return quant(had); }, inner, reps, &r.q_hadamard));
    WUSH_BL(time_us([&](int) { return quant(wush); }, inner, reps, &r.q_wush));
    WUSH_BL(time_us([&](int i) { return gemm_run(p8.p, x8.p, xsc.p, w8[i % copies].p, wsc[i % copies].p, y.p, 0); },
                    inner, reps, &r.gemm_vec128));
    WUSH_BL(time_us(
        [&](int i) {
          WUSH_BL(quant(wush));
          return gemm_run(p8.p, x8.p, xsc.p, w8[i % copies].p, wsc[i % copies].p, y.p, 0);
        },
        inner, reps, &r.e2e));
    if (have_row) {
      // Row-folded path: transform + quantize (chunk operand) + fold, then the row-wise GEMM.
      auto quant_row = [&]() {
        WUSH_BL(quant(wush));
        return fold_rows_cuda(x8.as<uint8_t>(), xsc.as<float>(), M, K, x8r.as<uint8_t>(), xrs.as<float>(), nullptr, 0);
      };
      auto gemm_row = [&](int i) { return gemm_run(pr.p, x8r.p, xrs.p, w8r[i % copies].p, wrs[i % copies].p, y.p, 0); };
      WUSH_BL(quant_row());
      WUSH_BL(time_us([&](int) { return quant_row(); }, inner, reps, &r.q_wush_row));
      WUSH_BL(time_us(gemm_row, inner, reps, &r.gemm_rowwise));
      WUSH_BL(time_us(
          [&](int i) {
            WUSH_BL(quant_row());
            return gemm_row(i);
          },
          inner, reps, &r.e2e_row));
    }
    out->rows.push_back(r);
    if (progress) {
      char line[256];
      std::snprintf(line, sizeof line,
                    "%s M=%lld: bf16 %.1f us, wush quant %.1f us, vec128 %.1f us, e2e %.1f us (%.2fx), e2e row %.1f us (%.2fx)",
                    s.label.c_str(), (long long)M, r.bf16, r.q_wush, r.gemm_vec128, r.e2e, r.bf16 / r.e2e, r.e2e_row,
                    r.e2e_row > 0 ? r.bf16 / r.e2e_row : 0.0);
      progress(line);
    }
  }
  return cudaSuccess;
}

}  // namespace

cudaError_t run_kernel_bench(const KernelBenchOptions& opt, KernelBenchResult* out,
                             const std::function<void(const std::string&)>& progress) {
  int n = 0;
  if (cudaGetDeviceCount(&n) != cudaSuccess || n == 0) {
    cudaGetLastError();
    return detail::fail(cudaErrorNoDevice, "no CUDA device on this machine (wush bench kernels needs a GPU)");
  }
  if (opt.Ms.empty() || opt.reps < 1) return detail::fail(cudaErrorInvalidValue, "bench: empty M list or reps < 1");
  cudaDeviceProp prop{};
  WUSH_BK(cudaGetDeviceProperties(&prop, 0));
  out->device = prop.name;
  out->sm_count = prop.multiProcessorCount;
  int clock_khz = 0;
  cudaDeviceGetAttribute(&clock_khz, cudaDevAttrClockRate, 0);
  out->sm_clock_mhz = clock_khz / 1000;
  // The quantizer table right after the copy it is compared with (measured after the GEMM peaks,
  // its first case came out 15% slower).
  WUSH_BL(copy_bandwidth(opt.reps, out));
  if (opt.quant_mk > 0) WUSH_BL(quantizer_table(opt.quant_mk, opt.reps, out));
  WUSH_BL(gemm_peaks(opt.reps, out));
  if (progress) {
    char line[256];
    std::snprintf(line, sizeof line, "%s: copy %.0f GB/s, bf16 %.0f TFLOP/s, fp8 %.0f TFLOP/s", out->device.c_str(),
                  out->copy_gbs, out->bf16_tflops, out->fp8_tflops);
    progress(line);
  }
  for (const BenchShape& s : opt.shapes) WUSH_BL(shape_rows(s, opt, out, progress));
  return cudaSuccess;
}

}  // namespace cuda
}  // namespace wush

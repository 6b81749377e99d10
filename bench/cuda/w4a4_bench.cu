// W4A4 on Hopper, timed (REFERENCE.md §7), for a machine without libtorch (the stand-alone CUDA
// build): one run measures
//   1. + 2. the device-to-device copy bandwidth and the quantizer table at M = K = 8192 (a plain
//      bf16 -> e4m3 cast, then identity / shared Hadamard / per-block WUSH for each output kind, as
//      time and % of copy bandwidth): the library's run_kernel_bench, what `wush bench kernels`
//      prints first;
//   3. at Llama-3.1-8B and -70B shapes and M in {1, 128, 1024, 4096, 8192}: BF16 cuBLASLt GEMM,
//      the quantizer alone, the FP8 VEC128 GEMM alone, WUSH transform + quantize + GEMM, and the
//      FP8 GEMM with row-wise / tensor-wise scales (the cheaper modes), as speed-ups over BF16.
// CUDA events around batches of launches, median over batches; weights rotate through copies
// that together exceed L2 so that repeated runs do not time the cache. Random data, never zeros.
//   w4a4_bench [--quick] [--quant-only]
#include <cuda_bf16.h>
#include <cuda_runtime.h>

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <functional>
#include <string>
#include <vector>

#include "cuda/bench_fill.cuh"
#include "cuda/kernel_bench.h"
#include "cuda/wush_cuda.h"

using namespace wush::cuda;
using namespace wush::cuda::bench_fill;

#define CK(call)                                                                                   \
  do {                                                                                             \
    cudaError_t e_ = (call);                                                                       \
    if (e_ != cudaSuccess) {                                                                       \
      std::fprintf(stderr, "%s:%d %s: %s | %s\n", __FILE__, __LINE__, #call, cudaGetErrorString(e_), \
                   last_error_message());                                                          \
      std::exit(1);                                                                                \
    }                                                                                              \
  } while (0)

namespace {

template <class T>
T* dalloc(size_t n) {
  T* p = nullptr;
  CK(cudaMalloc(&p, std::max<size_t>(n, 1) * sizeof(T)));
  return p;
}

void random_bf16(__nv_bfloat16* p, size_t n, uint32_t seed, float scale = 1.0f) {
  fill_bf16<<<2048, 256>>>(p, n, seed, scale);
  CK(cudaGetLastError());
}

int g_reps = 25;

// Median per-launch time (us) of fn(i) over batches of `inner` launches.
double time_us(const std::function<void(int)>& fn, int inner) {
  cudaEvent_t a, b;
  CK(cudaEventCreate(&a));
  CK(cudaEventCreate(&b));
  for (int i = 0; i < 3; ++i) fn(i);
  CK(cudaDeviceSynchronize());
  std::vector<double> ts;
  int call = 0;
  for (int r = 0; r < g_reps; ++r) {
    CK(cudaEventRecord(a));
    for (int i = 0; i < inner; ++i) fn(call++);
    CK(cudaEventRecord(b));
    CK(cudaEventSynchronize(b));
    float ms = 0;
    CK(cudaEventElapsedTime(&ms, a, b));
    ts.push_back(ms * 1000.0 / inner);
  }
  CK(cudaGetLastError());
  cudaEventDestroy(a);
  cudaEventDestroy(b);
  std::sort(ts.begin(), ts.end());
  return ts[ts.size() / 2];
}

}  // namespace

int main(int argc, char** argv) {
  bool quick = false, quant_only = false;  // --quick: fewer reps and sizes; --quant-only: skip the GEMMs
  for (int i = 1; i < argc; ++i) {
    quick = quick || std::strcmp(argv[i], "--quick") == 0;
    quant_only = quant_only || std::strcmp(argv[i], "--quant-only") == 0;
  }
  if (quick) g_reps = 5;
  int dev = 0;
  cudaDeviceProp prop{};
  CK(cudaGetDeviceProperties(&prop, dev));
  std::printf("device: %s, %d SMs, L2 %d MB, cc %d.%d\n", prop.name, prop.multiProcessorCount,
              prop.l2CacheSize >> 20, prop.major, prop.minor);
  std::vector<std::string> table;
  char line[512];

  // ---- 1. + 2. copy bandwidth and the quantizer table: the library's `wush bench kernels` ----
  {
    KernelBenchOptions opt;
    opt.reps = g_reps;
    KernelBenchResult kb;
    CK(run_kernel_bench(opt, &kb));  // no shapes: copy, quantizer table, GEMM peaks
    std::snprintf(line, sizeof line, "D2D copy of 1 GiB: %.0f GB/s (read + written)", kb.copy_gbs);
    table.push_back(line);
    table.push_back("");
    table.push_back("fused transform + quantize, M = K = 8192 (G = 32; nvfp4 G = 16)");
    table.push_back("| case | time (us) | bytes (MB) | GB/s | % of copy |");
    table.push_back("|---|---|---|---|---|");
    double t_had = 0, t_wush = 0;
    for (const QuantBenchRow& q : kb.quant) {
      const double gbs = q.bytes / q.us / 1e3;
      std::snprintf(line, sizeof line, "| %s | %.1f | %.0f | %.0f | %.0f%% |", q.name.c_str(), q.us, q.bytes / 1e6, gbs,
                    100.0 * gbs / kb.copy_gbs);
      table.push_back(line);
      if (q.name == "mxfp4 hadamard -> fp8 operand") t_had = q.us;
      if (q.name == "mxfp4 wush -> fp8 operand") t_wush = q.us;
    }
    std::snprintf(line, sizeof line, "wush per-block vs shared hadamard (mxfp4 -> fp8 operand): %+.1f%%",
                  100.0 * (t_wush / t_had - 1.0));
    table.push_back(line);
    for (size_t i = 0; i < table.size(); ++i) std::printf("%s\n", table[i].c_str());
  }

  // ---- 3. GEMMs at Llama-3.1-8B and -70B shapes ---------------------------------------------
  struct NK { int64_t N, K; const char* what; };
  const NK shapes[] = {{4096, 4096, "8B q/o"},     {14336, 4096, "8B gate/up"}, {1024, 4096, "8B k/v"},
                       {4096, 14336, "8B down"},   {8192, 8192, "70B q/o"},     {28672, 8192, "70B gate/up"},
                       {1024, 8192, "70B k/v"},    {8192, 28672, "70B down"}};
  std::vector<int64_t> Ms = {1, 128, 1024, 4096, 8192};
  if (quick) Ms = {1, 4096};
  const int nshapes = quant_only ? 0 : int(sizeof(shapes) / sizeof(shapes[0]));
  table.push_back("");
  table.push_back("GEMM (bf16 out) vs BF16 cuBLASLt; W4A4 = MXFP4 via FP8 E4M3 + VEC128 scales; "
                  "quant = WUSH per-block transform + quantize; e2e = quant + VEC128 GEMM, timed together; "
                  "rowwise / tensorwise = the FP8 GEMM with OUTER_VEC_32F / SCALAR_32F scales (same operands), "
                  "e2e(row) = quant + rowwise, summed");
  table.push_back("| shape | N x K | M | bf16 (us) | quant (us) | vec128 (us) | e2e (us) | e2e speed-up | "
                  "rowwise (us) | tensorwise (us) | e2e(row) speed-up |");
  table.push_back("|---|---|---|---|---|---|---|---|---|---|---|");
  const QuantConfig cfg{QFormat::MXFP4, 10.0f};
  for (int si = 0; si < nshapes; ++si) {
    const NK& s = shapes[si];
    const int64_t N = s.N, K = s.K, nch = (K + 127) / 128;
    const size_t wbytes_bf16 = size_t(N * K) * 2;
    const int copies = int(std::min<size_t>(8, std::max<size_t>(1, (size_t(256) << 20) / (wbytes_bf16 / 2) + 1)));
    std::vector<__nv_bfloat16*> wb(copies);
    std::vector<uint8_t*> w8(copies);
    std::vector<float*> wsc(copies);
    // Weights: quantize a random bf16 matrix as MXFP4 codes + scales, then prepare the operand.
    uint8_t* wcodes = dalloc<uint8_t>(size_t(N * K / 2));
    uint8_t* wscales = dalloc<uint8_t>(size_t(N * K / 32));
    for (int c = 0; c < copies; ++c) {
      wb[c] = dalloc<__nv_bfloat16>(size_t(N * K));
      random_bf16(wb[c], size_t(N * K), 100 + c, 0.02f);
      w8[c] = dalloc<uint8_t>(size_t(N * K));
      wsc[c] = dalloc<float>(size_t(N * nch));
      CK(fused_transform_quantize_cuda(wb[c], N, K, TransformSpec{}, cfg, {wcodes, wscales, nullptr, nullptr, nullptr}, 0));
      CK(prepare_weight_operand_cuda(wcodes, wscales, N, K, cfg, w8[c], wsc[c], nullptr, 0));
    }
    float* T = dalloc<float>(size_t(K / 32) * 1024);
    fill_T<<<256, 256>>>(T, size_t(K / 32) * 1024, 5, 1.0f / std::sqrt(32.0f));
    const int64_t Mmax = Ms.back();
    __nv_bfloat16* x = dalloc<__nv_bfloat16>(size_t(Mmax * K));
    random_bf16(x, size_t(Mmax * K), 7);
    uint8_t* x8 = dalloc<uint8_t>(size_t(operand_rows(Mmax) * K));
    float* xsc = dalloc<float>(size_t(operand_rows(Mmax) * nch));
    __nv_bfloat16* y = dalloc<__nv_bfloat16>(size_t(operand_rows(Mmax) * N));
    // Row / tensor scales for the cheaper modes: ones (their values do not change the timing).
    std::vector<float> ones(size_t(std::max<int64_t>(N, operand_rows(Mmax))), 1.0f);
    float* rs = dalloc<float>(ones.size());
    CK(cudaMemcpy(rs, ones.data(), ones.size() * 4, cudaMemcpyHostToDevice));
    CK(cudaDeviceSynchronize());
    for (int64_t M : Ms) {
      GemmPlan *pb = nullptr, *p8 = nullptr, *pr = nullptr, *pt = nullptr;
      CK(gemm_plan_create(&pb, GemmKind::BF16, M, N, K, 1.0f));
      CK(gemm_plan_create(&p8, GemmKind::FP8_VEC128, M, N, K, gemm_alpha(cfg)));
      if (gemm_plan_create(&pr, GemmKind::FP8_ROWWISE, M, N, K, gemm_alpha(cfg)) != cudaSuccess) {
        std::printf("rowwise plan: %s\n", last_error_message());
        pr = nullptr;
      }
      if (gemm_plan_create(&pt, GemmKind::FP8_TENSORWISE, M, N, K, gemm_alpha(cfg)) != cudaSuccess) {
        std::printf("tensorwise plan: %s\n", last_error_message());
        pt = nullptr;
      }
      const QuantizeOutputs qo{nullptr, nullptr, x8, xsc, nullptr};
      CK(fused_transform_quantize_cuda(x, M, K, TransformSpec{T, K / 32, true}, cfg, qo, 0));
      const int inner = M <= 128 ? 20 : (M <= 1024 ? 10 : 3);
      const double t_bf = time_us([&](int i) { CK(gemm_run(pb, x, nullptr, wb[i % copies], nullptr, y, 0)); }, inner);
      const double t_q = time_us([&](int) {
        CK(fused_transform_quantize_cuda(x, M, K, TransformSpec{T, K / 32, true}, cfg, qo, 0));
      }, inner);
      const double t_8 = time_us([&](int i) {
        CK(gemm_run(p8, x8, xsc, w8[i % copies], wsc[i % copies], y, 0));
      }, inner);
      const double t_e2e = time_us([&](int i) {
        CK(fused_transform_quantize_cuda(x, M, K, TransformSpec{T, K / 32, true}, cfg, qo, 0));
        CK(gemm_run(p8, x8, xsc, w8[i % copies], wsc[i % copies], y, 0));
      }, inner);
      const double t_r = pr ? time_us([&](int i) { CK(gemm_run(pr, x8, rs, w8[i % copies], rs, y, 0)); }, inner) : 0;
      const double t_t = pt ? time_us([&](int i) { CK(gemm_run(pt, x8, rs, w8[i % copies], rs, y, 0)); }, inner) : 0;
      char rtxt[64], ttxt[32], rs_txt[32];
      std::snprintf(rtxt, sizeof rtxt, pr ? "%.1f" : "n/a", t_r);
      std::snprintf(ttxt, sizeof ttxt, pt ? "%.1f" : "n/a", t_t);
      std::snprintf(rs_txt, sizeof rs_txt, pr ? "%.2fx" : "n/a", t_bf / (t_q + t_r));
      std::snprintf(line, sizeof line, "| %s | %lld x %lld | %lld | %.1f | %.1f | %.1f | %.1f | %.2fx | %s | %s | %s |",
                    s.what, (long long)N, (long long)K, (long long)M, t_bf, t_q, t_8, t_e2e, t_bf / t_e2e, rtxt, ttxt,
                    rs_txt);
      table.push_back(line);
      std::printf("%s\n", line);
      gemm_plan_destroy(pb);
      gemm_plan_destroy(p8);
      gemm_plan_destroy(pr);
      gemm_plan_destroy(pt);
    }
    for (int c = 0; c < copies; ++c) { cudaFree(wb[c]); cudaFree(w8[c]); cudaFree(wsc[c]); }
    for (void* p : {(void*)wcodes, (void*)wscales, (void*)T, (void*)x, (void*)x8, (void*)xsc, (void*)y, (void*)rs})
      cudaFree(p);
  }

  std::printf("\n==== summary (%s) ====\n", prop.name);
  for (const std::string& l : table) std::printf("%s\n", l.c_str());
  return 0;
}

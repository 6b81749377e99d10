// W4A4 on Hopper, timed (REFERENCE.md §7): one run measures
//   1. the device-to-device copy bandwidth (bytes read + written): the ceiling of the quantizer;
//   2. fused transform + quantize at M = K = 8192 for identity / shared Hadamard / per-block WUSH
//      matrices and each output kind, as time and % of copy bandwidth;
//   3. at Llama-3.1-8B and -70B shapes and M in {1, 128, 1024, 4096, 8192}: BF16 cuBLASLt GEMM,
//      the quantizer alone, the FP8 VEC128 GEMM alone, WUSH transform + quantize + GEMM, and the
//      FP8 GEMM with row-wise / tensor-wise scales (the cheaper modes), as speed-ups over BF16.
// CUDA events around batches of launches, median over batches; weights rotate through copies
// that together exceed L2 so that repeated runs do not time the cache. Random data, never zeros.
//   w4a4_bench [--quick] [--quant-only]
#include <cuda_bf16.h>
#include <cuda_fp8.h>
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
#include "cuda/wush_cuda.h"

using namespace wush::cuda;
using namespace wush::cuda::bench_fill;

// The traffic of the quantizer without its arithmetic: bf16 -> E4M3 (saturating) in 16-byte loads
// and 8-byte stores, a grid-stride loop: what this read/write mix reaches on this GPU.
__global__ void cast_bf16_fp8(const uint4* __restrict__ x, uint2* __restrict__ y, size_t n8) {
  for (size_t i = size_t(blockIdx.x) * blockDim.x + threadIdx.x; i < n8; i += size_t(gridDim.x) * blockDim.x) {
    const uint4 v = __ldcs(x + i);
    uint32_t w[4];
    const uint32_t in[4] = {v.x, v.y, v.z, v.w};
#pragma unroll
    for (int j = 0; j < 4; ++j)
      w[j] = __nv_cvt_float2_to_fp8x2(make_float2(__uint_as_float(in[j] << 16), __uint_as_float(in[j] & 0xFFFF0000u)),
                                      __NV_SATFINITE, __NV_E4M3);
    __stcs(y + i, make_uint2((w[0] & 0xFFFFu) | (w[1] << 16), (w[2] & 0xFFFFu) | (w[3] << 16)));
  }
}

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

struct Row {
  std::string text;
};


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

  // ---- 1. copy bandwidth --------------------------------------------------------------------
  const size_t copy_bytes = size_t(1) << 30;
  uint8_t* src = dalloc<uint8_t>(copy_bytes);
  uint8_t* dst = dalloc<uint8_t>(copy_bytes);
  CK(cudaMemset(src, 1, copy_bytes));
  const double copy_us = time_us([&](int) { CK(cudaMemcpyAsync(dst, src, copy_bytes, cudaMemcpyDeviceToDevice)); }, 5);
  const double copy_gbs = 2.0 * copy_bytes / copy_us / 1e3;
  cudaFree(src);
  cudaFree(dst);
  std::snprintf(line, sizeof line, "D2D copy of 1 GiB: %.1f us, %.0f GB/s (read + written)", copy_us, copy_gbs);
  table.push_back(line);
  std::printf("%s\n", line);

  // ---- 2. fused transform + quantize at M = K = 8192 -----------------------------------------
  {
    const int64_t M = 8192, K = 8192;
    __nv_bfloat16* x = dalloc<__nv_bfloat16>(size_t(M * K));
    random_bf16(x, size_t(M * K), 1);
    float* Tpb = dalloc<float>(size_t(K / 32) * 32 * 32);
    fill_T<<<256, 256>>>(Tpb, size_t(K / 32) * 32 * 32, 2, 1.0f / std::sqrt(32.0f));
    const std::vector<float> H = hadamard32();
    float* Th = dalloc<float>(H.size());
    CK(cudaMemcpy(Th, H.data(), H.size() * 4, cudaMemcpyHostToDevice));
    float* Tpb16 = dalloc<float>(size_t(K / 16) * 16 * 16);
    fill_T<<<256, 256>>>(Tpb16, size_t(K / 16) * 16 * 16, 3, 0.25f);
    uint8_t* codes = dalloc<uint8_t>(size_t(M * K / 2));
    uint8_t* scales = dalloc<uint8_t>(size_t(M * K / 16));
    void* operand = dalloc<uint8_t>(size_t(M * K * 2));
    float* chunk = dalloc<float>(size_t(M * K / 128));
    unsigned long long* cnt = dalloc<unsigned long long>(kNumCounters);
    CK(cudaDeviceSynchronize());

    struct QCase { const char* name; QFormat f; int tr; bool gemm_operand; };  // tr: 0 id, 1 had, 2 wush
    const QCase cases[] = {
        {"mxfp4 identity  -> fp8 operand", QFormat::MXFP4, 0, true},
        {"mxfp4 hadamard  -> fp8 operand", QFormat::MXFP4, 1, true},
        {"mxfp4 wush      -> fp8 operand", QFormat::MXFP4, 2, true},
        {"mxfp4 hadamard  -> codes+scales", QFormat::MXFP4, 1, false},
        {"mxfp4 wush      -> codes+scales", QFormat::MXFP4, 2, false},
        {"mxint4 wush     -> fp8 operand", QFormat::MXINT4, 2, true},
        {"nvfp4 hadamard  -> bf16 operand", QFormat::NVFP4, 1, true},
        {"nvfp4 wush      -> bf16 operand", QFormat::NVFP4, 2, true},
    };
    table.push_back("");
    table.push_back("fused transform + quantize, M = K = 8192 (G = 32; nvfp4 G = 16)");
    table.push_back("| case | time (us) | bytes (MB) | GB/s | % of copy |");
    table.push_back("|---|---|---|---|---|");
    double t_had = 0, t_wush = 0;
    {
      int sms = 0;
      CK(cudaDeviceGetAttribute(&sms, cudaDevAttrMultiProcessorCount, dev));
      const double us = time_us([&](int) {
        cast_bf16_fp8<<<sms * 8, 256>>>(reinterpret_cast<const uint4*>(x), static_cast<uint2*>(operand), size_t(M * K / 8));
      }, 10);
      const double bytes = 3.0 * M * K, gbs = bytes / us / 1e3;
      std::snprintf(line, sizeof line, "| bf16 -> e4m3 cast (no quantization: this traffic's ceiling) | %.1f | %.0f | %.0f | %.0f%% |",
                    us, bytes / 1e6, gbs, 100.0 * gbs / copy_gbs);
      table.push_back(line);
      std::printf("%s\n", line);
    }
    for (const QCase& c : cases) {
      const int G = group_size(c.f);
      QuantConfig cfg{c.f, 10.0f};
      TransformSpec ts{};
      if (c.tr == 1) ts = G == 32 ? TransformSpec{Th, 1, true} : TransformSpec{Tpb16, 1, true};
      if (c.tr == 2) ts = G == 32 ? TransformSpec{Tpb, K / 32, true} : TransformSpec{Tpb16, K / 16, true};
      QuantizeOutputs out{};
      double bytes = 2.0 * M * K;
      if (c.gemm_operand) {
        out.operand = operand;
        bytes += double(M) * K * (has_chunk_operand(c.f) ? 1 : 2);
        if (has_chunk_operand(c.f)) { out.chunk_scales = chunk; bytes += 4.0 * M * K / 128; }
      } else {
        out.codes = codes;
        out.scales = scales;
        bytes += 0.5 * M * K + double(M) * K / G;
      }
      out.counters = cnt;
      const double us = time_us([&](int) {
        CK(fused_transform_quantize_cuda(x, M, K, ts, cfg, out, 0));
      }, 10);
      if (c.f == QFormat::MXFP4 && c.gemm_operand && c.tr == 1) t_had = us;
      if (c.f == QFormat::MXFP4 && c.gemm_operand && c.tr == 2) t_wush = us;
      const double gbs = bytes / us / 1e3;
      std::snprintf(line, sizeof line, "| %s | %.1f | %.0f | %.0f | %.0f%% |", c.name, us, bytes / 1e6, gbs,
                    100.0 * gbs / copy_gbs);
      table.push_back(line);
      std::printf("%s\n", line);
    }
    std::snprintf(line, sizeof line, "wush per-block vs shared hadamard (mxfp4 -> fp8 operand): %+.1f%%",
                  100.0 * (t_wush / t_had - 1.0));
    table.push_back(line);
    for (void* p : {(void*)x, (void*)Tpb, (void*)Th, (void*)Tpb16, (void*)codes, (void*)scales, operand,
                    (void*)chunk, (void*)cnt})
      cudaFree(p);
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

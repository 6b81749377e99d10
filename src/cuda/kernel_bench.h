// `wush bench kernels` (issue 8 item 4): the W4A4 layer's kernels timed against BF16 cuBLAS in
// one run, with the ceilings measured in the same run (device-to-device copy bandwidth, BF16 and
// FP8 GEMM peaks). CUDA events around batches of launches, median over batches; weights rotate
// through copies that together exceed L2; random data, never zeros (METHOD.md).
// Plain C++ types: the CLI (tools/cmd_bench.cpp) formats the results as markdown and JSON.
#pragma once
#include <cstdint>
#include <functional>
#include <string>
#include <vector>

#include "cuda/wush_cuda.h"

namespace wush {
namespace cuda {

// One linear layer shape: Y[M, N] = X[M, K] W[N, K]^T; `label` names where it occurs
// ("Llama-3.1-8B q/o").
struct BenchShape {
  std::string label;
  int64_t N = 0, K = 0;
};

struct KernelBenchOptions {
  std::vector<BenchShape> shapes;
  std::vector<int64_t> Ms = {1, 16, 128, 1024, 4096, 8192};
  int reps = 7;             // batches per timing (median)
  int64_t quant_mk = 8192;  // M = K of the quantizer-only table
};

// Quantizer alone at M = K = quant_mk: bytes = bf16 read + outputs written. The first row,
// kCastCase, is a plain bf16 -> E4M3 cast of the same x (no quantization): this traffic's ceiling.
constexpr const char* kCastCase = "bf16 -> e4m3 cast (no quantization: the ceiling of this traffic)";
struct QuantBenchRow {
  std::string name;  // "mxfp4 wush -> fp8 operand"
  double us = 0, bytes = 0;
};

// One (shape, M): times in microseconds (median per launch). Quantizer: MXFP4 -> FP8 operand;
// e2e: WUSH per-block transform + quantize + VEC128 GEMM, timed together; e2e_row: WUSH
// transform + quantize to the row-folded operand + row-wise FP8 GEMM (0 when not available).
struct KernelBenchRow {
  std::string label;
  int64_t M = 0, N = 0, K = 0;
  double bf16 = 0, q_identity = 0, q_hadamard = 0, q_wush = 0, gemm_vec128 = 0, e2e = 0;
  double q_wush_row = 0, gemm_rowwise = 0, e2e_row = 0;
};

struct KernelBenchResult {
  std::string device;
  int sm_count = 0, sm_clock_mhz = 0;
  double copy_gbs = 0;                    // D2D copy of 1 GiB, bytes read + written
  double bf16_tflops = 0, fp8_tflops = 0; // 8192^3 GEMM (BF16; FP8 E4M3 tensor-wise scaled)
  std::vector<QuantBenchRow> quant;
  std::vector<KernelBenchRow> rows;
};

// Runs everything; progress(line) is called after each row. cudaErrorNoDevice (with
// last_error_message() saying so) on a machine without a GPU.
cudaError_t run_kernel_bench(const KernelBenchOptions& opt, KernelBenchResult* out,
                             const std::function<void(const std::string&)>& progress = {});

}  // namespace cuda
}  // namespace wush

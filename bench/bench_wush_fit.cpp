// Fitting WUSH for all blocks of one layer from its Hessian on the CPU (REFERENCE.md §2), as a
// ratio to one fp64 Cholesky of the same Hessian measured in the same run (goal: <= 2x).
// wush needs that full Cholesky itself (Schur-complement blocks), so its ratio is >= 1; the
// per-block work (QR/SVD resp. Cholesky/eigh over [nb, G, G]) is batched.
//   build/bench_wush_fit [--size=4096] [--group=32] [--threads=0] [google-benchmark flags]
#include <benchmark/benchmark.h>

#include <ATen/CPUGeneratorImpl.h>
#include <ATen/Parallel.h>
#include <torch/csrc/api/include/torch/version.h>

#include <cstdio>
#include <cstring>
#include <map>
#include <string>

#include "core/runtime.h"
#include "transforms/block_linalg.h"
#include "transforms/transform_registry.h"
#include "transforms/wush_block.h"

namespace {

int64_t g_size = 4096, g_group = 32;

struct Layer {
  at::Tensor H, W;
};

// A positive definite, correlated H = Z Z^T / k + diag(d) (k = C/8 factors) and a Gaussian W,
// both fp64 [C, C]. Built once.
const Layer& layer() {
  static const Layer L = [] {
    at::Generator gen = at::make_generator<at::CPUGeneratorImpl>(uint64_t(1));
    const auto f64 = at::TensorOptions().dtype(at::kDouble);
    const int64_t C = g_size, k = std::max<int64_t>(C / 8, 1);
    at::Tensor Z = at::randn({C, k}, gen, f64) * at::exp(0.5 * at::randn({C, 1}, gen, f64));
    at::Tensor H = at::mm(Z, Z.t()) / double(k);
    H.diagonal().add_(0.1 + at::rand({C}, gen, f64));
    return Layer{H, at::randn({C, C}, gen, f64)};
  }();
  return L;
}

void BM_Cholesky(benchmark::State& state) {
  const Layer& L = layer();
  for (auto _ : state) benchmark::DoNotOptimize(at::linalg_cholesky(L.H));
}

void BM_Fit(benchmark::State& state, const char* name) {
  const Layer& L = layer();
  wush::FitInput in;
  in.H = L.H;
  in.W = L.W;
  in.group = g_group;
  in.layer = "bench";
  for (auto _ : state) {
    auto t = wush::make_transform(name);
    t->fit(in);
    benchmark::DoNotOptimize(t->blocks());
  }
}

// The batched per-block part of wush alone (given U): bmm + QR + SVD + triangular solve.
void BM_WushBlocksOnly(benchmark::State& state) {
  const Layer& L = layer();
  static const at::Tensor U = wush::damped_upper_cholesky(L.H, true, "bench");
  const at::Tensor Ujj = wush::diagonal_blocks(U, g_group);
  for (auto _ : state) {
    at::Tensor Y = at::matmul(Ujj, wush::column_blocks_t(L.W, g_group));
    benchmark::DoNotOptimize(wush::wush_block(Ujj, Y));
  }
}

// Console output plus each benchmark's real time, for the ratios printed at the end.
class RatioReporter : public benchmark::ConsoleReporter {
 public:
  std::map<std::string, double> seconds;
  void ReportRuns(const std::vector<Run>& runs) override {
    for (const auto& r : runs)
      if (r.run_type == Run::RT_Iteration) seconds[r.benchmark_name()] = r.real_accumulated_time / r.iterations;
    ConsoleReporter::ReportRuns(runs);
  }
};

}  // namespace

int main(int argc, char** argv) {
  int threads = 0;
  std::vector<char*> rest;
  for (int i = 0; i < argc; ++i) {
    if (!std::strncmp(argv[i], "--size=", 7)) g_size = std::atoll(argv[i] + 7);
    else if (!std::strncmp(argv[i], "--group=", 8)) g_group = std::atoll(argv[i] + 8);
    else if (!std::strncmp(argv[i], "--threads=", 10)) threads = std::atoi(argv[i] + 10);
    else rest.push_back(argv[i]);
  }
  threads = wush::init_threads(threads);
  int rargc = int(rest.size());
  benchmark::Initialize(&rargc, rest.data());
  std::printf("layer %lld x %lld, G = %lld, %d threads, libtorch %s\n", (long long)g_size,
              (long long)g_size, (long long)g_group, threads, TORCH_VERSION);
  layer();
  benchmark::RegisterBenchmark("cholesky_fp64", BM_Cholesky)->Unit(benchmark::kMillisecond);
  benchmark::RegisterBenchmark("fit_wush", BM_Fit, "wush")->Unit(benchmark::kMillisecond);
  benchmark::RegisterBenchmark("fit_wush_local", BM_Fit, "wush-local")->Unit(benchmark::kMillisecond);
  benchmark::RegisterBenchmark("wush_blocks_only", BM_WushBlocksOnly)->Unit(benchmark::kMillisecond);
  RatioReporter rep;
  benchmark::RunSpecifiedBenchmarks(&rep);
  auto it = rep.seconds.find("cholesky_fp64");
  if (it != rep.seconds.end())
    for (const auto& [name, s] : rep.seconds)
      std::printf("ratio %-18s / cholesky_fp64 = %.3f\n", name.c_str(), s / it->second);
  benchmark::Shutdown();
  return 0;
}

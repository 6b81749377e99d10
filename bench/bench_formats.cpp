// fake_quantize / quantize / dequantize of a 4096 x 4096 tensor against x.clone() of the same
// tensor in the same run (the memory-bound baseline: read 64 MiB, write 64 MiB). Prints each
// time as a ratio to the clone's at the end. Goal: fake_quantize MXFP4 / NVFP4 <= 3x clone.
//   build/bench_formats [--benchmark_filter=...] [--threads N via WUSH_THREADS]
#include <ATen/Parallel.h>
#include <benchmark/benchmark.h>

#include <cstdio>
#include <cstdlib>
#include <map>
#include <string>

#include "bench_main.h"
#include "core/runtime.h"
#include "formats/format.h"
#include "formats/synthetic.h"

namespace {

constexpr int64_t kN = 4096;

const at::Tensor& input(at::ScalarType t) {
  static std::map<at::ScalarType, at::Tensor> cache;
  auto& x = cache[t];
  if (!x.defined()) x = wush::synthetic(wush::Dist::Gaussian, kN, kN, 1).to(t);
  return x;
}

void BM_Clone(benchmark::State& st) {
  const at::Tensor& x = input(at::kFloat);
  for (auto _ : st) benchmark::DoNotOptimize(x.clone());
  st.SetBytesProcessed(st.iterations() * x.numel() * 8);
}

void BM_FakeQuantize(benchmark::State& st, wush::Format f, at::ScalarType t) {
  const at::Tensor& x = input(t);
  for (auto _ : st) benchmark::DoNotOptimize(wush::fake_quantize(x, f));
  st.SetBytesProcessed(st.iterations() * x.numel() * (x.element_size() + 4));
}

void BM_Quantize(benchmark::State& st, wush::Format f) {
  const at::Tensor& x = input(at::kFloat);
  for (auto _ : st) benchmark::DoNotOptimize(wush::quantize(x, f));
}

void BM_Dequantize(benchmark::State& st, wush::Format f) {
  const wush::QuantizedTensor q = wush::quantize(input(at::kFloat), f);
  for (auto _ : st) benchmark::DoNotOptimize(wush::dequantize(q));
}

// Console output plus, at the end, every time as a multiple of BM_Clone's.
class RatioReporter : public benchmark::ConsoleReporter {
 public:
  RatioReporter() : benchmark::ConsoleReporter(OO_None) {}
  void ReportRuns(const std::vector<Run>& runs) override {
    for (const Run& r : runs)
      if (r.run_type == Run::RT_Iteration) {
        std::string n = r.benchmark_name();
        if (n.size() > 10 && n.substr(n.size() - 10) == "/real_time") n.resize(n.size() - 10);
        times_[n] = r.GetAdjustedRealTime();
      }
    ConsoleReporter::ReportRuns(runs);
  }
  void Finalize() override {
    ConsoleReporter::Finalize();
    auto c = times_.find("BM_Clone");
    if (c == times_.end()) return;
    std::printf("\nratio to x.clone() of the same %lldx%lld fp32 tensor (%d threads):\n",
                (long long)kN, (long long)kN, at::get_num_threads());
    for (auto& [name, t] : times_) std::printf("  %-36s %6.2fx\n", name.c_str(), t / c->second);
  }

 private:
  std::map<std::string, double> times_;
};

}  // namespace

int main(int argc, char** argv) {
  wush::bench::init_bench_threads(0);
  benchmark::RegisterBenchmark("BM_Clone", BM_Clone)->Unit(benchmark::kMillisecond)->UseRealTime();
  for (const wush::FormatTraits& t : wush::all_formats()) {
    const std::string n = t.name;
    benchmark::RegisterBenchmark(("BM_FakeQuantize/" + n).c_str(), BM_FakeQuantize, t.id, at::kFloat)
        ->Unit(benchmark::kMillisecond)
        ->UseRealTime();
    if (t.id == wush::Format::MXFP4 || t.id == wush::Format::NVFP4) {
      benchmark::RegisterBenchmark(("BM_FakeQuantize/" + n + "/bf16").c_str(), BM_FakeQuantize, t.id,
                                   at::kBFloat16)
          ->Unit(benchmark::kMillisecond)
          ->UseRealTime();
      benchmark::RegisterBenchmark(("BM_Quantize/" + n).c_str(), BM_Quantize, t.id)
          ->Unit(benchmark::kMillisecond)
          ->UseRealTime();
      benchmark::RegisterBenchmark(("BM_Dequantize/" + n).c_str(), BM_Dequantize, t.id)
          ->Unit(benchmark::kMillisecond)
          ->UseRealTime();
    }
  }
  benchmark::Initialize(&argc, argv);
  RatioReporter rep;
  benchmark::RunSpecifiedBenchmarks(&rep);
  benchmark::Shutdown();
  return 0;
}

// safetensors I/O throughput against plain file I/O of the same bytes, measured in the same run:
// writing (write_safetensors vs write_file_atomic) and reading into owned memory
// (read_safetensors + clone vs read_file). Both sides stream through the page cache.
#include <benchmark/benchmark.h>

#include "core/atomic_file.h"
#include "core/paths.h"
#include "model/safetensors.h"

namespace {

constexpr int64_t kTensors = 16, kRows = 1024, kCols = 1024;  // 16 x 2 MiB bf16 = 32 MiB

std::string scratch(const std::string& name) {
  return wush::path_join(wush::temp_dir(), "wush_bench_" + name);
}

std::vector<std::pair<std::string, wush::SafeTensor>> make_tensors() {
  std::vector<std::pair<std::string, wush::SafeTensor>> t;
  for (int64_t i = 0; i < kTensors; ++i)
    t.push_back({"t" + std::to_string(i), wush::SafeTensor::of(at::randn({kRows, kCols}).to(at::kBFloat16))});
  return t;
}

const int64_t kBytes = kTensors * kRows * kCols * 2;

void BM_WriteFileBaseline(benchmark::State& st) {
  std::string data(size_t(kBytes), 'x'), path = scratch("plain");
  for (auto _ : st) wush::write_file_atomic(path, data);
  st.SetBytesProcessed(st.iterations() * kBytes);
  wush::remove_file(path);
}

void BM_WriteSafetensors(benchmark::State& st) {
  auto t = make_tensors();
  std::string path = scratch("w.safetensors");
  for (auto _ : st) wush::write_safetensors(path, t);
  st.SetBytesProcessed(st.iterations() * kBytes);
  wush::remove_file(path);
}

void BM_ReadFileBaseline(benchmark::State& st) {
  std::string path = scratch("r.safetensors");
  wush::write_safetensors(path, make_tensors());
  for (auto _ : st) benchmark::DoNotOptimize(wush::read_file(path));
  st.SetBytesProcessed(st.iterations() * kBytes);
  wush::remove_file(path);
}

void BM_ReadSafetensorsOwned(benchmark::State& st) {
  std::string path = scratch("r2.safetensors");
  wush::write_safetensors(path, make_tensors());
  for (auto _ : st)
    for (auto& [name, t] : wush::read_safetensors(path)) benchmark::DoNotOptimize(t.data.clone());
  st.SetBytesProcessed(st.iterations() * kBytes);
  wush::remove_file(path);
}

void BM_OpenSafetensorsMapped(benchmark::State& st) {  // header parse + views only (what loading costs)
  std::string path = scratch("r3.safetensors");
  wush::write_safetensors(path, make_tensors());
  for (auto _ : st) benchmark::DoNotOptimize(wush::read_safetensors(path));
  wush::remove_file(path);
}

}  // namespace

BENCHMARK(BM_WriteFileBaseline)->Unit(benchmark::kMillisecond)->UseRealTime();
BENCHMARK(BM_WriteSafetensors)->Unit(benchmark::kMillisecond)->UseRealTime();
BENCHMARK(BM_ReadFileBaseline)->Unit(benchmark::kMillisecond)->UseRealTime();
BENCHMARK(BM_ReadSafetensorsOwned)->Unit(benchmark::kMillisecond)->UseRealTime();
BENCHMARK(BM_OpenSafetensorsMapped)->Unit(benchmark::kMicrosecond)->UseRealTime();
BENCHMARK_MAIN();

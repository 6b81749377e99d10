// Zero-shot scoring throughput on CPU with stories260K + tok512 (../shared/data):
//   BM_TaskScoring/<task>/<min>: score_continuations on the first 96 items of a task, requests/s.
//   <min> is LoglikOptions::share_min_tokens: 0 = share every multi-choice context (KV cache),
//   2^30 = never (the baseline in the same run: full sequences in right-padded batches of 8),
//   48 = the default rule. Tokenization is done once, outside the timed loop.
// Threads: WUSH_BENCH_THREADS (default 1).
#include <benchmark/benchmark.h>

#include <algorithm>
#include <cstdlib>
#include <map>

#include "bench_main.h"
#include "core/runtime.h"
#include "eval/zeroshot.h"
#include "model/llama2c.h"

namespace {

const char* const kBenchTasks[] = {"copa", "arc_easy", "hellaswag", "boolq"};

wush::Transformer& model() {
  static wush::Transformer tf(wush::load_llama2c(wush::default_data_dir() + "/models/stories260K.bin"));
  return tf;
}

const std::vector<wush::LoglikRequest>& requests(int task) {
  static std::map<int, std::vector<wush::LoglikRequest>> cache;
  auto it = cache.find(task);
  if (it != cache.end()) return it->second;
  static auto tok = wush::load_tokenizer(wush::default_data_dir() + "/models/tok512.bin");
  const wush::TaskInfo& t = wush::find_task(kBenchTasks[task]);
  std::vector<wush::TaskDoc> docs = wush::load_task(t, wush::default_data_dir());
  return cache[task] = wush::task_requests(*tok, t, docs, std::min<size_t>(96, docs.size()), {}).requests;
}

void BM_TaskScoring(benchmark::State& st) {
  const auto& req = requests(int(st.range(0)));
  wush::LoglikOptions opt;
  opt.share_min_tokens = st.range(1);
  for (auto _ : st) benchmark::DoNotOptimize(wush::score_continuations(model(), nullptr, req, opt).data());
  st.SetLabel(kBenchTasks[st.range(0)]);
  st.counters["req/s"] = benchmark::Counter(double(req.size()), benchmark::Counter::kIsIterationInvariantRate);
}

BENCHMARK(BM_TaskScoring)
    ->ArgsProduct({{0, 1, 2, 3}, {0, 48, 1 << 30}})
    ->Unit(benchmark::kMillisecond)
    ->UseRealTime();

}  // namespace

int main(int argc, char** argv) {
  wush::bench::init_bench_threads(1);
  return wush::bench::run_benchmarks(argc, argv);
}

// The end of every Google Benchmark program under bench/: the thread count from the environment
// (WUSH_BENCH_THREADS=N; 0 = the hardware's cores), then the benchmarks registered so far.
#pragma once
#include <benchmark/benchmark.h>

#include <cstdlib>

#include "core/runtime.h"

namespace wush::bench {

inline void init_bench_threads(int default_threads) {
  const char* t = std::getenv("WUSH_BENCH_THREADS");
  wush::init_threads(t ? std::atoi(t) : default_threads);
}

inline int run_benchmarks(int argc, char** argv) {
  benchmark::Initialize(&argc, argv);
  if (benchmark::ReportUnrecognizedArguments(argc, argv)) return 1;
  benchmark::RunSpecifiedBenchmarks();
  benchmark::Shutdown();
  return 0;
}

}  // namespace wush::bench

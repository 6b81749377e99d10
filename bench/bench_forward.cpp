// Forward-pass throughput on CPU with stories260K (../shared/data/models):
//   BM_Score/B:    full-sequence scoring of B x 512 tokens (forward + fp32 log-softmax), tokens/s
//   BM_Linears/B:  the baseline in the same run: only the GEMMs of that forward (7 linears per
//                  block + lm_head on the same activations), so Score/Linears = the cost of
//                  attention, norms, RoPE and the softmax relative to the matmul floor
//   BM_Decode:     KV-cache generation, one token per step, tokens/s
// Threads: WUSH_BENCH_THREADS (default 1).
#include <c10/core/GradMode.h>
#include <ATen/core/grad_mode.h>
#include <benchmark/benchmark.h>

#include <cstdlib>

#include "bench_main.h"
#include "core/runtime.h"
#include "model/forward.h"
#include "model/llama2c.h"

namespace {

wush::Transformer& model() {
  static wush::Transformer tf(wush::load_llama2c(wush::default_data_dir() + "/models/stories260K.bin"));
  return tf;
}

at::Tensor tokens(int64_t B, int64_t T) { return at::randint(512, {B, T}, at::kLong); }

void BM_Score(benchmark::State& st) {
  c10::NoGradGuard ng;
  const int64_t B = st.range(0), T = 512;
  at::Tensor tok = tokens(B, T);
  for (auto _ : st) {
    at::Tensor lp = at::log_softmax(model().forward(tok), -1);
    benchmark::DoNotOptimize(lp.data_ptr<float>());
  }
  st.counters["tok/s"] = benchmark::Counter(double(B * T), benchmark::Counter::kIsIterationInvariantRate);
}

void BM_Linears(benchmark::State& st) {
  c10::NoGradGuard ng;
  auto& tf = model();
  const auto& c = tf.config();
  const int64_t B = st.range(0), T = 512;
  at::Tensor x = at::randn({B, T, c.hidden_size}), xi = at::randn({B, T, c.intermediate_size});
  for (auto _ : st) {
    for (int64_t l = 0; l < c.num_layers; ++l)
      for (int i = 0; i < 7; ++i) {
        at::Tensor y = at::linear(i == 6 ? xi : x, tf.weight(wush::linear_prefix(l, i) + ".weight"));
        benchmark::DoNotOptimize(y.data_ptr<float>());
      }
    at::Tensor lg = at::linear(x, tf.weight("lm_head.weight"));
    benchmark::DoNotOptimize(lg.data_ptr<float>());
  }
  st.counters["tok/s"] = benchmark::Counter(double(B * T), benchmark::Counter::kIsIterationInvariantRate);
}

void BM_Decode(benchmark::State& st) {
  c10::NoGradGuard ng;
  auto& tf = model();
  const int64_t steps = 256;
  for (auto _ : st) {
    wush::KVCache cache = tf.new_cache(1, steps);
    at::Tensor t = at::ones({1, 1}, at::kLong);
    for (int64_t s = 0; s < steps; ++s) t = tf.forward_cached(t, cache)[0][-1].argmax().view({1, 1});
  }
  st.counters["tok/s"] = benchmark::Counter(double(steps), benchmark::Counter::kIsIterationInvariantRate);
}

BENCHMARK(BM_Score)->Arg(1)->Arg(8)->Unit(benchmark::kMillisecond)->UseRealTime();
BENCHMARK(BM_Linears)->Arg(1)->Arg(8)->Unit(benchmark::kMillisecond)->UseRealTime();
BENCHMARK(BM_Decode)->Unit(benchmark::kMillisecond)->UseRealTime();

}  // namespace

int main(int argc, char** argv) {
  wush::bench::init_bench_threads(1);
  return wush::bench::run_benchmarks(argc, argv);
}

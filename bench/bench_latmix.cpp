// LATMiX training step cost on stories260K (src/latmix/): the parts of one step (teacher forward,
// folding the transforms into the weights, student forward with STE fake-quant, backward) against
// the plain full-precision forward of the same batch measured in the same run (the baseline).
// Run: ./build/bench_latmix [--benchmark_filter=...]; batch 4 x 128 tokens, one thread.
#include <c10/core/GradMode.h>
#include <ATen/CPUGeneratorImpl.h>
#include <benchmark/benchmark.h>

#include "bench_main.h"
#include "core/runtime.h"
#include "latmix/fold.h"
#include "latmix/init.h"
#include "model/forward.h"

using namespace wush;
using namespace wush::latmix;

namespace {

struct Setup {
  Model m = load_model(default_data_dir() + "/models/stories260K.bin");
  at::Tensor tokens = at::randint(512, {4, 128}, at::make_generator<at::CPUGeneratorImpl>(1), at::kLong);
  LatmixTransforms t = init_latmix(m, InitOptions{}).to(at::kCPU, at::kFloat);
  std::map<std::string, at::Tensor> base = base_weights(m, at::kCPU, at::kFloat);
};

Setup& setup() {
  static Setup s;
  return s;
}

void BM_FullPrecisionForward(benchmark::State& st) {  // the baseline
  c10::NoGradGuard ng;
  Transformer tr(setup().m);
  for (auto _ : st) benchmark::DoNotOptimize(tr.forward(setup().tokens));
}

void BM_FoldWeights(benchmark::State& st) {
  LatmixTransforms t = setup().t;
  t.set_requires_grad(true);
  for (auto _ : st) benchmark::DoNotOptimize(transformed_weights(setup().base, setup().m.config, t));
}

void BM_StudentForward(benchmark::State& st) {
  LatmixTransforms t = setup().t;
  t.set_requires_grad(true);
  Transformer tr(setup().m);
  ForwardHooks hk = training_hooks(tr, &t.t1, st.range(0) ? Format::MXFP4 : Format::None, 32);
  for (auto& [n, w] : transformed_weights(setup().base, setup().m.config, t)) tr.set_weight(n, w);
  for (auto _ : st) benchmark::DoNotOptimize(tr.forward(setup().tokens, &hk));
}

void BM_TrainStep(benchmark::State& st) {  // fold + student forward + backward
  LatmixTransforms t = setup().t;
  t.set_requires_grad(true);
  Transformer tr(setup().m);
  ForwardHooks hk = training_hooks(tr, &t.t1, Format::MXFP4, 32);
  for (auto _ : st) {
    for (auto& [n, w] : transformed_weights(setup().base, setup().m.config, t)) tr.set_weight(n, w);
    at::Tensor loss = tr.forward(setup().tokens, &hk).logsumexp(-1).mean();
    loss.backward();
  }
}

}  // namespace

BENCHMARK(BM_FullPrecisionForward)->Unit(benchmark::kMillisecond);
BENCHMARK(BM_FoldWeights)->Unit(benchmark::kMillisecond);
BENCHMARK(BM_StudentForward)->Arg(0)->Arg(1)->Unit(benchmark::kMillisecond);
BENCHMARK(BM_TrainStep)->Unit(benchmark::kMillisecond);

int main(int argc, char** argv) {
  wush::bench::init_bench_threads(1);
  return wush::bench::run_benchmarks(argc, argv);
}

// wush bench: prefill throughput of the forward pass (tokens/s), for comparison with PyTorch eager
// (bench/hf_prefill.py, same model directory and token ids). One forward over `--tokens` ids
// (id_i = (7919 i + 13) mod vocab, reproducible in Python), `--warmup` untimed passes, then `--reps`
// timed ones; each timed pass ends when its logits are on the host side of the device (a one-element
// copy waits for the stream, so the timing covers the whole forward). Prints the median.
// `wush bench kernels`: the CUDA kernels alone (bench_kernels.cpp).
#include <c10/core/GradMode.h>
#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <vector>

#include "bench_kernels.h"
#include "cli.h"
#include "model/forward.h"
#include "runtime_args.h"

namespace {

struct BenchArgs {
  wush::cli::RuntimeArgs rt;
  int64_t tokens = 2048, warmup = 2, reps = 5, chunk = 128;
  std::string attn = "eager";
};

wush::cli::Register reg("bench", "prefill throughput of the forward pass (median tokens/s)", [](CLI::App& app) -> wush::cli::Action {
  auto a = std::make_shared<BenchArgs>();
  a->rt.add(app);
  app.get_option("--model")->required(false);  // required by the prefill benchmark, not by `kernels`
  CLI::App* kernels = app.add_subcommand(
      "kernels", "W4A4 CUDA kernels (transform + quantize, FP8 GEMM) vs BF16 cuBLAS at real models' layer shapes");
  wush::cli::Action kernels_action = wush::cli::bench_kernels_setup(*kernels);
  app.add_option("--tokens", a->tokens, "prompt length")->capture_default_str()->check(CLI::PositiveNumber);
  app.add_option("--warmup", a->warmup, "untimed passes")->capture_default_str()->check(CLI::NonNegativeNumber);
  app.add_option("--reps", a->reps, "timed passes (median reported)")->capture_default_str()->check(CLI::PositiveNumber);
  app.add_option("--attn", a->attn, "eager (HF eager, chunked) or sdpa (at::scaled_dot_product_attention)")
      ->capture_default_str()
      ->check(CLI::IsMember({"eager", "sdpa"}));
  app.add_option("--query-chunk", a->chunk, "eager attention: queries per chunk")->capture_default_str();
  return [a, kernels, kernels_action] {
    if (kernels->parsed()) return kernels_action();
    WUSH_CHECK(!a->rt.model.empty(), "wush bench: --model is required (or `wush bench kernels`)");
    wush::Model m = a->rt.load();
    // A quantized checkpoint runs its W4A4 layers (on CUDA: the real kernels, quant_linear_cuda.h).
    wush::Transformer tr = a->rt.transformer(m);
    m.weights.clear();  // the host copy is no longer needed
    tr.set_attention({a->attn == "sdpa", a->chunk});
    const int64_t V = tr.config().vocab_size;
    at::Tensor ids = (at::arange(a->tokens, at::kLong) * 7919 + 13).remainder(V).unsqueeze(0);
    c10::NoGradGuard no_grad;
    auto pass = [&] {
      auto t0 = std::chrono::steady_clock::now();
      at::Tensor logits = tr.forward(ids);
      float last = logits[0][a->tokens - 1][0].item<float>();  // waits for the device
      double s = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
      WUSH_CHECK(std::isfinite(last), "bench: non-finite logit from %s", m.path.c_str());
      return s;
    };
    for (int64_t i = 0; i < a->warmup; ++i) pass();
    std::vector<double> t;
    for (int64_t i = 0; i < a->reps; ++i) t.push_back(pass());
    std::sort(t.begin(), t.end());
    const double med = t[t.size() / 2];
    std::printf("wush bench: %s, %lld layers, %s %s, attn %s, %lld tokens: median %.2f ms (min %.2f, max %.2f), "
                "%.0f tokens/s\n",
                m.path.c_str(), (long long)tr.config().num_layers, a->rt.device.c_str(), a->rt.dtype.c_str(),
                a->attn.c_str(), (long long)a->tokens, med * 1e3, t.front() * 1e3, t.back() * 1e3, a->tokens / med);
    return 0;
  };
});

}  // namespace

// Generation: prefill the prompt through the KV cache, then one token per step.
#include "model/generate.h"

#include <c10/core/GradMode.h>
#include <ATen/core/grad_mode.h>

#include <chrono>
#include <random>

#include "core/error.h"

namespace wush {

int32_t sample_next(const at::Tensor& logits, double temperature, double top_p, double coin) {
  WUSH_CHECK(temperature >= 0, "--temperature %g must be >= 0", temperature);
  at::Tensor l = logits.to(at::kCPU, at::kDouble).reshape({-1});
  if (temperature == 0) return int32_t(l.argmax().item<int64_t>());
  at::Tensor p = at::softmax(l / temperature, 0);
  at::Tensor idx = at::arange(p.size(0), at::kLong);
  if (top_p > 0 && top_p < 1) {  // smallest prefix of the sorted distribution with mass >= top_p
    auto sorted = p.sort(0, /*descending=*/true);
    at::Tensor sp = std::get<0>(sorted), cum = sp.cumsum(0);
    int64_t keep = std::min<int64_t>(p.size(0), (cum < top_p).sum().item<int64_t>() + 1);
    p = sp.narrow(0, 0, keep);
    idx = std::get<1>(sorted).narrow(0, 0, keep);
  }
  const double* pp = p.data_ptr<double>();
  double target = coin * p.sum().item<double>(), acc = 0;
  for (int64_t i = 0; i < p.size(0); ++i) {
    acc += pp[i];
    if (target < acc) return int32_t(idx[i].item<int64_t>());
  }
  return int32_t(idx[p.size(0) - 1].item<int64_t>());
}

GenerateResult generate(Transformer& model, const Tokenizer& tok, const GenerateOptions& opt,
                        const std::function<void(const std::string&)>& on_text) {
  WUSH_CHECK(opt.max_new_tokens >= 0, "--max-new-tokens %lld must be >= 0", (long long)opt.max_new_tokens);
  WUSH_CHECK(tok.vocab_size() <= model.config().vocab_size,
             "tokenizer has %d tokens, more than the model's vocabulary (%lld): wrong tokenizer?", tok.vocab_size(),
             (long long)model.config().vocab_size);
  c10::NoGradGuard no_grad;
  GenerateResult r;
  r.prompt_ids = tok.encode(opt.prompt, true);
  WUSH_CHECK(!r.prompt_ids.empty(), "the prompt is empty and the tokenizer adds no BOS: nothing to continue");
  const int64_t ctx = model.config().max_position;
  WUSH_CHECK(int64_t(r.prompt_ids.size()) < ctx, "the prompt has %zu tokens, the model's context is %lld",
             r.prompt_ids.size(), (long long)ctx);
  std::mt19937_64 rng(opt.seed);
  std::uniform_real_distribution<double> uni(0.0, 1.0);

  auto t0 = std::chrono::steady_clock::now();
  std::vector<int32_t> all = r.prompt_ids;
  size_t shown = 0;
  auto emit = [&] {
    if (!on_text) return;
    std::string t = tok.decode(all);
    if (t.size() > shown) on_text(t.substr(shown));
    shown = t.size();
  };
  emit();
  KVCache cache = model.new_cache(1, ctx);
  at::Tensor in = at::tensor(std::vector<int64_t>(all.begin(), all.end())).view({1, -1});
  r.stop = "max_new_tokens";
  for (int64_t step = 0; step < opt.max_new_tokens; ++step) {
    if (cache.length + in.size(1) > ctx) {
      r.stop = "context";
      break;
    }
    at::Tensor logits = model.forward_cached(in, cache)[0][-1];
    int32_t next = sample_next(logits, opt.temperature, opt.top_p, uni(rng));
    if (next == tok.eos_id()) {
      r.stop = "eos";
      break;
    }
    if (next == tok.bos_id()) {
      r.stop = "bos";
      break;
    }
    r.new_ids.push_back(next);
    all.push_back(next);
    emit();
    in = at::full({1, 1}, int64_t(next), at::kLong);
  }
  r.seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  r.text = tok.decode(all);
  return r;
}

}  // namespace wush

// Continuation log-likelihoods (lm-eval `loglikelihood` requests), two paths with equal results:
// full sequences in right-padded batches, and a shared context run once into a KV cache.
#include "eval/loglikelihood.h"

#include <c10/core/GradMode.h>
#include <ATen/core/grad_mode.h>

#include <algorithm>

#include "core/error.h"
#include "eval/perplexity.h"

namespace wush {

namespace {

// Scores continuation tokens given the log-softmax rows that predict them: adds each row's
// target log-probability and whether the target is the argmax to `out[owner[i]]`.
void accumulate(const at::Tensor& lp, const at::Tensor& targets, const std::vector<size_t>& owner, size_t first,
                std::vector<LoglikResult>& out) {
  at::Tensor tgt = targets.to(lp.device()).view({-1, 1});
  at::Tensor v = lp.gather(1, tgt).view({-1}).to(at::kCPU, at::kDouble).contiguous();
  at::Tensor g = lp.argmax(1).eq(tgt.view({-1})).to(at::kCPU).contiguous();
  const double* pv = v.data_ptr<double>();
  const bool* pg = g.data_ptr<bool>();
  for (int64_t i = 0; i < v.numel(); ++i) {
    LoglikResult& r = out[owner[first + size_t(i)]];
    r.logprob += pv[i];
    r.greedy = r.greedy && pg[i];
  }
}

// Full-sequence path: requests `idx`, batches of up to `batch_size` sequences, longest first.
void score_full(Transformer& model, const ForwardHooks* hooks, const std::vector<LoglikRequest>& req,
                const std::vector<size_t>& idx, int64_t batch_size, std::vector<LoglikResult>& out,
                Progress* progress) {
  const int64_t L = model.config().max_position;
  std::vector<TokenSeq> inputs(idx.size());
  for (size_t k = 0; k < idx.size(); ++k) {
    const LoglikRequest& r = req[idx[k]];
    TokenSeq whole = r.context;
    whole.insert(whole.end(), r.continuation.begin(), r.continuation.end());
    const size_t keep = std::min(whole.size(), size_t(L + 1));  // left truncation
    inputs[k].assign(whole.end() - int64_t(keep), whole.end() - 1);
  }
  const std::vector<size_t> order = longest_first(inputs, 1);
  for (size_t start = 0; start < order.size(); start += size_t(batch_size)) {
    const size_t n = std::min(order.size() - start, size_t(batch_size));
    const int64_t T = int64_t(inputs[order[start]].size());
    std::vector<const TokenSeq*> rows;
    std::vector<int64_t> flat, targets;
    std::vector<size_t> owner;
    for (size_t b = 0; b < n; ++b) {
      const size_t k = order[start + b];
      const TokenSeq& cont = req[idx[k]].continuation;
      rows.push_back(&inputs[k]);
      // The last `m` input positions predict the continuation's last m tokens (all of them unless
      // the continuation is longer than the input).
      const size_t m = std::min(cont.size(), inputs[k].size()), p0 = inputs[k].size() - m, c0 = cont.size() - m;
      for (size_t t = 0; t < m; ++t) {
        flat.push_back(int64_t(b) * T + int64_t(p0 + t));
        targets.push_back(cont[c0 + t]);
        owner.push_back(idx[k]);
      }
    }
    at::Tensor h = final_hidden(model, right_padded(rows, T), hooks);
    at::Tensor hs = h.reshape({-1, h.size(2)}).index_select(0, at::tensor(flat, at::kLong).to(h.device()));
    at::Tensor tgt = at::tensor(targets, at::kLong);
    for_each_logprob_chunk(model, hs, [&](int64_t r, const at::Tensor& lp) {
      accumulate(lp, tgt.narrow(0, r, lp.size(0)), owner, size_t(r), out);
    });
    if (progress) progress->add(int64_t(n));
  }
}

// Shared path for requests [g0, g1) with one context: the context but its last token runs once
// (batch 1) into a KV cache, copied to every continuation; then [last context token, cont[:-1]]
// of each continuation runs as one right-padded batch at the following positions.
void score_shared(Transformer& model, const ForwardHooks* hooks, const std::vector<LoglikRequest>& req, size_t g0,
                  size_t g1, std::vector<LoglikResult>& out, Progress* progress) {
  const TokenSeq& ctx = req[g0].context;
  const int64_t n = int64_t(g1 - g0), Tc = int64_t(ctx.size());
  size_t Lmax = 0;
  for (size_t i = g0; i < g1; ++i) Lmax = std::max(Lmax, req[i].continuation.size());
  KVCache cache = model.new_cache(1, Tc - 1 + int64_t(Lmax));
  TokenSeq head(ctx.begin(), ctx.end() - 1);
  model.forward_cached(right_padded({&head}, Tc - 1), cache, hooks);
  for (size_t l = 0; l < cache.k.size(); ++l) {
    cache.k[l] = cache.k[l].expand({n, -1, -1, -1}).contiguous();
    cache.v[l] = cache.v[l].expand({n, -1, -1, -1}).contiguous();
  }
  std::vector<TokenSeq> inputs;
  std::vector<int64_t> flat, targets;
  std::vector<size_t> owner;
  for (size_t i = g0; i < g1; ++i) {
    const TokenSeq& cont = req[i].continuation;
    inputs.push_back({ctx.back()});
    inputs.back().insert(inputs.back().end(), cont.begin(), cont.end() - 1);
    for (size_t t = 0; t < cont.size(); ++t) {
      flat.push_back(int64_t(i - g0) * int64_t(Lmax) + int64_t(t));
      targets.push_back(cont[t]);
      owner.push_back(i);
    }
  }
  std::vector<const TokenSeq*> rows;
  for (const TokenSeq& s : inputs) rows.push_back(&s);
  at::Tensor logits = model.forward_cached(right_padded(rows, int64_t(Lmax)), cache, hooks);
  if (logits.scalar_type() != at::kDouble) logits = logits.to(at::kFloat);
  at::Tensor sel = logits.reshape({-1, logits.size(2)}).index_select(0, at::tensor(flat, at::kLong).to(logits.device()));
  accumulate(at::log_softmax(sel, -1), at::tensor(targets, at::kLong), owner, 0, out);
  if (progress) progress->add(n);
}

}  // namespace

std::vector<LoglikResult> score_continuations(Transformer& model, const ForwardHooks* hooks,
                                              const std::vector<LoglikRequest>& requests, const LoglikOptions& opt,
                                              Progress* progress) {
  WUSH_CHECK(opt.batch_size >= 1, "--batch-size %lld must be at least 1", (long long)opt.batch_size);
  c10::NoGradGuard no_grad;
  const int64_t L = model.config().max_position, V = model.config().vocab_size;
  std::vector<LoglikResult> out(requests.size());
  for (size_t i = 0; i < requests.size(); ++i) {
    const LoglikRequest& r = requests[i];
    WUSH_CHECK(!r.context.empty(), "loglikelihood request %zu: empty context (needs BOS or a prefix token)", i);
    WUSH_CHECK(!r.continuation.empty(), "loglikelihood request %zu: empty continuation", i);
    check_token_ids({r.context, r.continuation}, V);
    out[i].tokens = std::min<int64_t>(int64_t(r.continuation.size()), L);
    out[i].clipped = int64_t(r.continuation.size()) > L;
    out[i].greedy = true;
  }
  std::vector<size_t> full;
  for (size_t g0 = 0; g0 < requests.size();) {
    size_t g1 = g0 + 1;
    while (g1 < requests.size() && requests[g1].context == requests[g0].context) ++g1;
    const int64_t Tc = int64_t(requests[g0].context.size());
    bool share = opt.share_prefix && g1 - g0 >= 2 && Tc >= 2 && int64_t(g1 - g0 - 1) * (Tc - 1) >= opt.share_min_tokens;
    for (size_t i = g0; i < g1 && share; ++i) share = Tc + int64_t(requests[i].continuation.size()) <= L + 1;
    if (share)
      score_shared(model, hooks, requests, g0, g1, out, progress);
    else
      for (size_t i = g0; i < g1; ++i) full.push_back(i);
    g0 = g1;
  }
  score_full(model, hooks, requests, full, opt.batch_size, out, progress);
  return out;
}

}  // namespace wush

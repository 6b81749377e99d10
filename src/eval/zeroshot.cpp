// Zero-shot evaluation: task docs -> lm-eval requests -> continuation log-likelihoods -> acc,
// acc_norm (REFERENCE.md §6).
#include "eval/zeroshot.h"

#include <algorithm>
#include <chrono>
#include <cmath>
#include <unordered_map>

#include "core/error.h"

namespace wush {

namespace {

// Python's str.isspace for ASCII (what lm-eval's context.rstrip() removes).
bool py_space(char c) { return c == ' ' || (c >= '\t' && c <= '\r') || (c >= 0x1c && c <= 0x1f); }

// encode_pair with the context's encoding memoized across consecutive calls (an item's choices
// share their context).
class PairEncoder {
 public:
  explicit PairEncoder(const Tokenizer& tok) : tok_(tok) {}

  std::pair<TokenSeq, TokenSeq> operator()(const std::string& context, const std::string& continuation) {
    size_t keep = context.size();
    while (keep > 0 && py_space(context[keep - 1])) --keep;
    const std::string ctx = context.substr(0, keep), cont = context.substr(keep) + continuation;
    if (ctx.empty()) {
      const int32_t prefix = tok_.bos_id() >= 0 ? tok_.bos_id() : tok_.eos_id();
      WUSH_CHECK(prefix >= 0, "empty context and a tokenizer without BOS or EOS: nothing to condition on");
      return {TokenSeq{prefix}, tok_.encode(cont, false)};
    }
    if (ctx != last_ctx_) {
      last_ctx_ = ctx;
      last_enc_ = tok_.encode(ctx, true);
    }
    TokenSeq whole = tok_.encode(ctx + cont, true);
    const size_t n = std::min(last_enc_.size(), whole.size());
    return {last_enc_, TokenSeq(whole.begin() + int64_t(n), whole.end())};
  }

 private:
  const Tokenizer& tok_;
  std::string last_ctx_;
  TokenSeq last_enc_;
};

uint64_t splitmix64(uint64_t& state) {
  uint64_t z = (state += 0x9E3779B97F4A7C15ull);
  z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
  z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
  return z ^ (z >> 31);
}

}  // namespace

std::pair<TokenSeq, TokenSeq> encode_pair(const Tokenizer& tok, const std::string& context,
                                          const std::string& continuation) {
  return PairEncoder(tok)(context, continuation);
}

std::vector<size_t> fewshot_indices(size_t n, size_t item, int64_t k, uint64_t seed) {
  WUSH_CHECK(k >= 0 && size_t(k) < n, "--num-fewshot %lld: needs at least %lld other items, the task has %zu",
             (long long)k, (long long)k + 1, n);
  WUSH_ASSERT(item < n);
  uint64_t state = seed ^ (0xD1B54A32D192ED03ull * (uint64_t(item) + 1));
  // Partial Fisher-Yates over the n-1 candidates (0..n-1 without item); swaps kept sparse.
  const size_t m = n - 1;
  std::unordered_map<size_t, size_t> swapped;
  auto at = [&](size_t i) {
    auto it = swapped.find(i);
    return it == swapped.end() ? i : it->second;
  };
  std::vector<size_t> out;
  for (size_t j = 0; j < size_t(k); ++j) {
    const size_t r = j + size_t(splitmix64(state) % uint64_t(m - j));
    const size_t pick = at(r);
    swapped[r] = at(j);
    out.push_back(pick < item ? pick : pick + 1);  // skip the item itself
  }
  return out;
}

std::string fewshot_context(const std::vector<TaskDoc>& docs, size_t item, int64_t k, uint64_t seed,
                            const std::string& ctx) {
  if (k == 0) return ctx;
  std::string out;
  for (size_t i : fewshot_indices(docs.size(), item, k, seed)) out += docs[i].example() + "\n\n";
  return out + ctx;
}

size_t argmax_first(const std::vector<double>& v) {
  WUSH_ASSERT(!v.empty());
  size_t best = 0;
  for (size_t i = 1; i < v.size(); ++i)
    if (v[i] > v[best]) best = i;
  return best;
}

ChoicePick pick_choice(const std::vector<double>& lls, const std::vector<size_t>& norm_bytes) {
  WUSH_ASSERT(lls.size() == norm_bytes.size());
  std::vector<double> normed;
  for (size_t c = 0; c < lls.size(); ++c) normed.push_back(lls[c] / double(std::max<size_t>(1, norm_bytes[c])));
  return {argmax_first(lls), argmax_first(normed)};
}

TaskRequests task_requests(const Tokenizer& tok, const TaskInfo& task, const std::vector<TaskDoc>& docs, size_t n,
                           const ZeroShotOptions& opt) {
  WUSH_ASSERT(n <= docs.size());
  TaskRequests t;
  PairEncoder encode(tok);
  for (size_t i = 0; i < n; ++i) {
    t.first.push_back(t.requests.size());
    const TaskDoc& d = docs[i];
    for (size_t c = 0; c < d.contexts.size(); ++c) {
      auto [ctx, cont] = encode(fewshot_context(docs, i, opt.num_fewshot, opt.fewshot_seed, d.contexts[c]),
                                d.continuations[c]);
      WUSH_CHECK(!cont.empty(), "task %s item %zu choice %zu: the continuation encodes to no tokens", task.name, i, c);
      t.requests.push_back({std::move(ctx), std::move(cont)});
    }
  }
  t.first.push_back(t.requests.size());
  return t;
}

TaskResult evaluate_task(Transformer& model, const ForwardHooks* hooks, const Tokenizer& tok, const TaskInfo& task,
                         const std::vector<TaskDoc>& docs, const ZeroShotOptions& opt) {
  WUSH_CHECK(opt.limit >= 0, "--limit %lld must be >= 0", (long long)opt.limit);
  const auto t0 = std::chrono::steady_clock::now();
  const size_t n = opt.limit > 0 ? std::min(docs.size(), size_t(opt.limit)) : docs.size();
  TaskResult r;
  r.task = task.name;
  r.n = int64_t(n);
  const TaskRequests tr = task_requests(tok, task, docs, n, opt);
  r.requests = int64_t(tr.requests.size());

  Progress bar(task.name, r.requests, "req");
  std::vector<LoglikResult> res = score_continuations(model, hooks, tr.requests, opt.scoring, &bar);
  bar.finish();

  for (const LoglikResult& x : res) r.clipped += x.clipped ? 1 : 0;
  double acc = 0, acc_norm = 0, ll = 0;
  for (size_t i = 0; i < n; ++i) {
    const TaskDoc& d = docs[i];
    if (task.format == TaskFormat::Lambada) {
      acc += res[tr.first[i]].greedy ? 1 : 0;
      ll += res[tr.first[i]].logprob;
      continue;
    }
    std::vector<double> lls;
    for (size_t c = 0; c < d.contexts.size(); ++c) lls.push_back(res[tr.first[i] + c].logprob);
    const ChoicePick p = pick_choice(lls, d.norm_bytes);
    acc += p.acc == size_t(d.gold) ? 1 : 0;
    acc_norm += p.acc_norm == size_t(d.gold) ? 1 : 0;
  }
  const double dn = std::max<double>(1, double(n));
  r.acc = acc / dn;
  if (task.format == TaskFormat::Lambada) {
    r.acc_norm = r.acc;
    r.ppl = std::exp(-ll / dn);
  } else {
    r.acc_norm = acc_norm / dn;
  }
  r.seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  return r;
}

std::pair<double, double> average_accuracy(const std::vector<TaskResult>& results) {
  double a = 0, an = 0;
  for (const TaskResult& r : results) a += r.acc, an += r.acc_norm;
  const double n = std::max<double>(1, double(results.size()));
  return {a / n, an / n};
}

}  // namespace wush

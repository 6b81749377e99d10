// Log-likelihood of continuations given contexts: lm-evaluation-harness's `loglikelihood` request
// (REFERENCE.md §6, zero-shot), on token ids. The model reads context + continuation, left-truncated
// to its context length + 1 tokens and without the last token (lm-eval's
// `(context_enc + continuation_enc)[-(max_length + 1):][:-1]`); the continuation's tokens are scored
// by the positions that predict them. A continuation longer than the context length (lm-eval
// asserts; it happens with a 512-token model and a 512-piece tokenizer on PIQA) keeps its last
// max_length tokens: `tokens` < its length and `clipped` set. Log-softmax in fp32, sums in fp64.
#pragma once
#include <cstdint>
#include <vector>

#include "core/progress.h"
#include "eval/batch_rows.h"
#include "model/forward.h"

namespace wush {

struct LoglikRequest {
  TokenSeq context;       // at least one token (BOS, or the caller's prefix token)
  TokenSeq continuation;  // at least one token
};

struct LoglikResult {
  double logprob = 0;   // sum over the continuation's tokens of log p(token | everything before)
  bool greedy = false;  // every continuation token is the argmax of its distribution
  int64_t tokens = 0;   // continuation tokens scored
  bool clipped = false; // the continuation was longer than the model's context: its last tokens only
};

struct LoglikOptions {
  int64_t batch_size = 8;  // sequences per forward pass (full-sequence path)
  // Consecutive requests with the same context (one task item's choices) run the context once
  // and its continuations from a KV cache when that saves at least share_min_tokens tokens and
  // nothing is truncated; otherwise they are scored as full sequences in right-padded batches.
  bool share_prefix = true;
  // The minimum number of context tokens saved, (choices - 1) x (context - 1), for which the
  // shared path (two forward calls per item) beats packing the item's sequences into batches;
  // measured with bench/bench_zeroshot.cpp (docs/results/evalharness.md).
  int64_t share_min_tokens = 48;
};

// One result per request, in order. `hooks`: the forward's hooks (a quantized model's linears);
// nullptr runs the model's default hooks. `progress` (may be null) advances by requests.
std::vector<LoglikResult> score_continuations(Transformer& model, const ForwardHooks* hooks,
                                              const std::vector<LoglikRequest>& requests, const LoglikOptions& opt,
                                              Progress* progress = nullptr);

}  // namespace wush

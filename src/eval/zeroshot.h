// Zero-shot (and K-shot) task evaluation, lm-evaluation-harness conventions (REFERENCE.md §6):
// each choice is scored by the summed log-likelihood of its continuation tokens (acc) and by that
// sum divided by the choice's length in bytes (acc_norm); LAMBADA by greedy exact match (acc) and
// the perplexity of its continuations. The model is a Transformer plus optional ForwardHooks, so a
// quantized model (its W4A4 linears as hooks) is evaluated the same way.
#pragma once
#include <cstdint>
#include <string>
#include <utility>
#include <vector>

#include "eval/loglikelihood.h"
#include "eval/tasks.h"
#include "model/tokenizer.h"

namespace wush {

// lm-eval's `_encode_pair`: trailing whitespace of the context moves to the continuation; then
// whole = encode(context + continuation), context tokens = encode(context) (BOS as the tokenizer
// adds it), continuation tokens = whole[len(context tokens):]. An empty context becomes BOS (or
// EOS) and the continuation is encoded alone, as lm-eval does.
std::pair<TokenSeq, TokenSeq> encode_pair(const Tokenizer& tok, const std::string& context,
                                          const std::string& continuation);

// K distinct indices of 0..n-1 other than `item`, a deterministic function of (seed, item, n, k)
// (splitmix64 + partial Fisher-Yates), so each item's examples do not depend on --limit or order.
std::vector<size_t> fewshot_indices(size_t n, size_t item, int64_t k, uint64_t seed);
// Few-shot context of item `item` for choice context `ctx`: the examples' solved texts, each
// followed by "\n\n" (lm-eval's fewshot_delimiter), then ctx. k = 0 returns ctx.
std::string fewshot_context(const std::vector<TaskDoc>& docs, size_t item, int64_t k, uint64_t seed,
                            const std::string& ctx);

// First index of the maximum (numpy.argmax).
size_t argmax_first(const std::vector<double>& v);

// The choices picked by acc (highest summed log-likelihood) and acc_norm (highest log-likelihood
// per byte of the choice, norm_bytes; 0 bytes count as 1).
struct ChoicePick {
  size_t acc = 0, acc_norm = 0;
};
ChoicePick pick_choice(const std::vector<double>& lls, const std::vector<size_t>& norm_bytes);

struct ZeroShotOptions {
  int64_t limit = 0;            // the first N items of each task (0 = all)
  int64_t num_fewshot = 0;      // K solved examples before each item
  uint64_t fewshot_seed = 1234; // lm-eval's default seed
  LoglikOptions scoring;
};

struct TaskResult {
  std::string task;
  int64_t n = 0;          // items scored
  double acc = 0;
  double acc_norm = 0;    // LAMBADA: = acc (one continuation, nothing to normalize)
  double ppl = 0;         // LAMBADA: exp(-mean over items of the continuation's log-likelihood), lm-eval's
                          // `perplexity`; 0 for the other tasks
  int64_t requests = 0;   // continuations scored
  int64_t clipped = 0;    // of which longer than the model's context (their last tokens scored)
  double seconds = 0;     // tokenization + scoring
};

// The requests of the first n docs (few-shot contexts included), encoded with encode_pair; the
// requests of doc i are [first[i], first[i+1]).
struct TaskRequests {
  std::vector<LoglikRequest> requests;
  std::vector<size_t> first;
};
TaskRequests task_requests(const Tokenizer& tok, const TaskInfo& task, const std::vector<TaskDoc>& docs, size_t n,
                           const ZeroShotOptions& opt);

// Scores docs (already parsed) of `task`; one progress bar per task.
TaskResult evaluate_task(Transformer& model, const ForwardHooks* hooks, const Tokenizer& tok, const TaskInfo& task,
                         const std::vector<TaskDoc>& docs, const ZeroShotOptions& opt);

// Mean of acc and of acc_norm over the results (the "average" row of tables and JSON).
std::pair<double, double> average_accuracy(const std::vector<TaskResult>& results);

}  // namespace wush

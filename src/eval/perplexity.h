// Perplexity (REFERENCE.md §6): stories mode and windows mode, log-softmax in fp32 and NLL sums in
// fp64 whatever the model's compute dtype.
#pragma once
#include <cstdint>
#include <string>
#include <vector>

#include "core/progress.h"
#include "eval/batch_rows.h"
#include "model/forward.h"
#include "model/tokenizer.h"

namespace wush {

// Stories mode: split on "<|endoftext|>", strip surrounding whitespace, skip empty pieces, encode
// each with BOS, cut at `ctx` tokens (BOS included).
std::vector<TokenSeq> story_sequences(const std::string& text, const Tokenizer& tok, int64_t ctx);
// Windows mode: the whole text encoded once (BOS where the tokenizer adds one), cut into
// non-overlapping windows of `len` tokens, the remainder dropped.
std::vector<TokenSeq> window_sequences(const std::string& text, const Tokenizer& tok, int64_t len);
// "stories" if the text contains "<|endoftext|>", else "windows".
std::string default_ppl_mode(const std::string& text);

// log p(s[t] | s[<t]) for t = 1..len-1 of every sequence (fp64 values of fp32 log-softmax), in the
// input order. Sequences are scored in right-padded batches of up to `batch_size`, longest first;
// `progress` (may be null) advances by the scored tokens of each batch. `hooks`: the forward's
// hooks (a quantized model's linears); nullptr runs the model's default hooks.
std::vector<std::vector<double>> token_logprobs(Transformer& model, const std::vector<TokenSeq>& seqs,
                                                int64_t batch_size, Progress* progress = nullptr,
                                                const ForwardHooks* hooks = nullptr);

// Sorts indices of `seqs` longest first (stable) and keeps those with at least `min_len` tokens:
// the batching order of every scorer.
std::vector<size_t> longest_first(const std::vector<TokenSeq>& seqs, size_t min_len);

struct PplOptions {
  std::string mode;        // "stories", "windows" or "" (default_ppl_mode)
  int64_t seqlen = 0;      // window length / story cut; 0: the model's context (max_position)
  int64_t batch_size = 8;  // sequences per forward pass
  int64_t max_sequences = 0;  // score only the first N windows / stories (0: all); a cheaper, stated subset
};

struct PplResult {
  std::string mode;
  int64_t sequences = 0;
  int64_t tokens = 0;  // scored tokens
  double nll = 0;      // mean NLL per scored token (nats)
  double ppl = 0;      // exp(nll)
  double seconds = 0;  // scoring time (tokenization excluded)
};

// The sequences perplexity() scores: opt.mode ("" = default_ppl_mode) resolved into *mode, cut at
// opt.seqlen (0: `context`); wush::Error naming `label` if nothing is left to score.
std::vector<TokenSeq> ppl_sequences(const Tokenizer& tok, const std::string& text, const PplOptions& opt,
                                    int64_t context, const std::string& label, std::string* mode);

// Perplexity of `text`; `label` names the text in errors and the progress bar.
PplResult perplexity(Transformer& model, const Tokenizer& tok, const std::string& text, const PplOptions& opt,
                     const std::string& label, const ForwardHooks* hooks = nullptr);

}  // namespace wush

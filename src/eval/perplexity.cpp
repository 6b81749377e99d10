// Perplexity, REFERENCE.md §6. PPL = exp(total NLL / scored tokens).
#include "eval/perplexity.h"

#include <c10/core/GradMode.h>
#include <ATen/core/grad_mode.h>

#include <algorithm>
#include <chrono>
#include <cmath>
#include <numeric>

#include "core/error.h"

namespace wush {

namespace {

std::string strip(const std::string& s) {
  auto ws = [](unsigned char c) { return c == ' ' || (c >= '\t' && c <= '\r') || (c >= 0x1c && c <= 0x1f); };
  size_t b = 0, e = s.size();
  while (b < e && ws(static_cast<unsigned char>(s[b]))) ++b;
  while (e > b && ws(static_cast<unsigned char>(s[e - 1]))) --e;
  return s.substr(b, e - b);
}

const char* const kStorySep = "<|endoftext|>";

}  // namespace

std::string default_ppl_mode(const std::string& text) {
  return text.find(kStorySep) != std::string::npos ? "stories" : "windows";
}

std::vector<TokenSeq> story_sequences(const std::string& text, const Tokenizer& tok, int64_t ctx) {
  WUSH_CHECK(ctx >= 2, "stories mode: context length %lld must be at least 2", (long long)ctx);
  std::vector<TokenSeq> out;
  const std::string sep = kStorySep;
  for (size_t pos = 0; pos <= text.size();) {
    size_t end = text.find(sep, pos);
    if (end == std::string::npos) end = text.size();
    std::string story = strip(text.substr(pos, end - pos));
    pos = end + sep.size();
    if (story.empty()) continue;
    TokenSeq ids = tok.encode(story, true);
    if (int64_t(ids.size()) > ctx) ids.resize(size_t(ctx));
    out.push_back(std::move(ids));
  }
  return out;
}

std::vector<TokenSeq> window_sequences(const std::string& text, const Tokenizer& tok, int64_t len) {
  WUSH_CHECK(len >= 2, "windows mode: window length %lld must be at least 2", (long long)len);
  TokenSeq ids = tok.encode(text, true);
  std::vector<TokenSeq> out;
  for (size_t b = 0; b + size_t(len) <= ids.size(); b += size_t(len))
    out.emplace_back(ids.begin() + int64_t(b), ids.begin() + int64_t(b) + len);
  return out;
}

std::vector<size_t> longest_first(const std::vector<TokenSeq>& seqs, size_t min_len) {
  std::vector<size_t> order;
  for (size_t i = 0; i < seqs.size(); ++i)
    if (seqs[i].size() >= min_len) order.push_back(i);
  std::stable_sort(order.begin(), order.end(), [&](size_t a, size_t b) { return seqs[a].size() > seqs[b].size(); });
  return order;
}

std::vector<std::vector<double>> token_logprobs(Transformer& model, const std::vector<TokenSeq>& seqs,
                                                int64_t batch_size, Progress* progress, const ForwardHooks* hooks) {
  WUSH_CHECK(batch_size >= 1, "--batch-size %lld must be at least 1", (long long)batch_size);
  c10::NoGradGuard no_grad;
  check_token_ids(seqs, model.config().vocab_size);
  std::vector<std::vector<double>> out(seqs.size());
  const std::vector<size_t> order = longest_first(seqs, 2);

  for (size_t start = 0; start < order.size(); start += size_t(batch_size)) {
    const size_t n = std::min(order.size() - start, size_t(batch_size));
    const int64_t T = int64_t(seqs[order[start]].size());
    std::vector<const TokenSeq*> rows;
    int64_t scored = 0;
    for (size_t b = 0; b < n; ++b) {
      rows.push_back(&seqs[order[start + b]]);
      scored += int64_t(rows.back()->size()) - 1;
    }
    at::Tensor tokens = right_padded(rows, T);
    at::Tensor h = final_hidden(model, tokens, hooks);
    // Position t predicts token t+1.
    at::Tensor hs = h.narrow(1, 0, T - 1).reshape({-1, h.size(2)});
    at::Tensor tgt = tokens.narrow(1, 1, T - 1).reshape({-1, 1}).to(model.device());
    std::vector<at::Tensor> parts;
    for_each_logprob_chunk(model, hs, [&](int64_t r, const at::Tensor& lp) {
      parts.push_back(lp.gather(1, tgt.narrow(0, r, lp.size(0))));
    });
    at::Tensor lp = at::cat(parts).to(at::kCPU, at::kDouble).view({int64_t(n), T - 1}).contiguous();
    const double* p = lp.data_ptr<double>();
    for (size_t b = 0; b < n; ++b) {
      const size_t len = rows[b]->size() - 1;
      out[order[start + b]].assign(p + b * size_t(T - 1), p + b * size_t(T - 1) + len);
    }
    if (progress) progress->add(scored);
  }
  return out;
}

std::vector<TokenSeq> ppl_sequences(const Tokenizer& tok, const std::string& text, const PplOptions& opt,
                                    int64_t context, const std::string& label, std::string* mode) {
  *mode = opt.mode.empty() ? default_ppl_mode(text) : opt.mode;
  WUSH_CHECK(opt.seqlen >= 0 && opt.seqlen <= context, "%s: --seqlen %lld outside 1..%lld (the model's context)",
             label.c_str(), (long long)opt.seqlen, (long long)context);
  const int64_t len = opt.seqlen > 0 ? opt.seqlen : context;
  std::vector<TokenSeq> seqs;
  if (*mode == "stories")
    seqs = story_sequences(text, tok, len);
  else if (*mode == "windows")
    seqs = window_sequences(text, tok, len);
  else
    WUSH_FAIL("--ppl-mode '%s' is not a mode (valid: stories, windows)", mode->c_str());
  WUSH_CHECK(opt.max_sequences >= 0, "%s: --max-sequences %lld is negative (0 = all)", label.c_str(),
             (long long)opt.max_sequences);
  if (opt.max_sequences > 0 && int64_t(seqs.size()) > opt.max_sequences) seqs.resize(opt.max_sequences);
  int64_t total = 0;
  for (const TokenSeq& s : seqs) total += std::max<int64_t>(0, int64_t(s.size()) - 1);
  WUSH_CHECK(total > 0, "%s: nothing to score in %s mode (%zu sequences of length %lld)", label.c_str(),
             mode->c_str(), seqs.size(), (long long)len);
  return seqs;
}

PplResult perplexity(Transformer& model, const Tokenizer& tok, const std::string& text, const PplOptions& opt,
                     const std::string& label, const ForwardHooks* hooks) {
  PplResult r;
  std::vector<TokenSeq> seqs = ppl_sequences(tok, text, opt, model.config().max_position, label, &r.mode);
  int64_t total = 0;
  for (const TokenSeq& s : seqs) total += std::max<int64_t>(0, int64_t(s.size()) - 1);

  auto t0 = std::chrono::steady_clock::now();
  Progress bar("ppl " + label, total, "tok");
  std::vector<std::vector<double>> lp = token_logprobs(model, seqs, opt.batch_size, &bar, hooks);
  double nll = 0;
  for (const auto& v : lp)
    for (double x : v) nll -= x;
  bar.finish();
  r.seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  r.sequences = int64_t(seqs.size());
  r.tokens = total;
  r.nll = nll / double(total);
  r.ppl = std::exp(r.nll);
  return r;
}

}  // namespace wush

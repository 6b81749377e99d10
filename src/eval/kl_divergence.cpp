// KL(p_ref || p_q) and top-1 agreement over the positions of token sequences (REFERENCE.md §6).
#include "eval/kl_divergence.h"

#include <c10/core/GradMode.h>
#include <ATen/core/grad_mode.h>

#include <algorithm>
#include <chrono>

#include "core/error.h"

namespace wush {

KlResult kl_divergence(EvalModel ref, EvalModel q, const std::vector<TokenSeq>& seqs, int64_t batch_size,
                       Progress* progress) {
  WUSH_CHECK(batch_size >= 1, "--batch-size %lld must be at least 1", (long long)batch_size);
  WUSH_CHECK(ref.model && q.model, "kl_divergence: missing model");
  const ModelConfig &cr = ref.model->config(), &cq = q.model->config();
  WUSH_CHECK(cr.vocab_size == cq.vocab_size, "--kl-ref: vocabularies differ (reference %lld, model %lld tokens)",
             (long long)cr.vocab_size, (long long)cq.vocab_size);
  c10::NoGradGuard no_grad;
  check_token_ids(seqs, cr.vocab_size);
  for (const TokenSeq& s : seqs)
    WUSH_CHECK(int64_t(s.size()) <= std::min(cr.max_position, cq.max_position),
               "kl_divergence: a sequence of %zu tokens exceeds a model's context", s.size());
  const auto t0 = std::chrono::steady_clock::now();
  const std::vector<size_t> order = longest_first(seqs, 2);
  KlResult r;
  double kl = 0, agree = 0, nll_ref = 0, nll_q = 0;
  for (size_t start = 0; start < order.size(); start += size_t(batch_size)) {
    const size_t n = std::min(order.size() - start, size_t(batch_size));
    const int64_t T = int64_t(seqs[order[start]].size());
    std::vector<const TokenSeq*> rows;
    std::vector<int64_t> flat, targets;  // positions that predict a next token, and that token
    for (size_t b = 0; b < n; ++b) {
      const TokenSeq& s = seqs[order[start + b]];
      rows.push_back(&s);
      for (size_t t = 0; t + 1 < s.size(); ++t) {
        flat.push_back(int64_t(b) * T + int64_t(t));
        targets.push_back(s[t + 1]);
      }
    }
    at::Tensor tokens = right_padded(rows, T), idx = at::tensor(flat, at::kLong);
    auto rows_of = [&](EvalModel m) {
      at::Tensor h = final_hidden(*m.model, tokens, m.hooks);
      return h.reshape({-1, h.size(2)}).index_select(0, idx.to(h.device()));
    };
    at::Tensor hr = rows_of(ref), hq = rows_of(q);
    at::Tensor tgt = at::tensor(targets, at::kLong).view({-1, 1});
    // Both heads chunk by chunk (half the rows of one head's chunk each); fp64 on the device.
    const int64_t nrows = hr.size(0), chunk = std::max<int64_t>(1, head_chunk_rows(cr.vocab_size) / 2);
    for (int64_t r0 = 0; r0 < nrows; r0 += chunk) {
      const int64_t m = std::min(chunk, nrows - r0);
      at::Tensor lr = logprob_rows(*ref.model, hr.narrow(0, r0, m)).to(at::kDouble);
      at::Tensor lq = logprob_rows(*q.model, hq.narrow(0, r0, m)).to(lr.device(), at::kDouble);
      kl += (lr.exp() * (lr - lq)).sum().item<double>();  // sum_v p_ref (log p_ref - log p_q)
      agree += double(lr.argmax(1).eq(lq.argmax(1)).sum().item<int64_t>());
      at::Tensor t = tgt.narrow(0, r0, m).to(lr.device());
      nll_ref -= lr.gather(1, t).sum().item<double>();
      nll_q -= lq.gather(1, t).sum().item<double>();
    }
    r.tokens += int64_t(flat.size());
    if (progress) progress->add(int64_t(flat.size()));
  }
  r.sequences = int64_t(order.size());
  WUSH_CHECK(r.tokens > 0, "kl_divergence: no sequence of two or more tokens to score");
  const double nt = double(r.tokens);
  r.kl = kl / nt;
  r.top1 = agree / nt;
  r.nll_ref = nll_ref / nt;
  r.nll_q = nll_q / nt;
  r.seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  return r;
}

KlResult kl_divergence_text(EvalModel ref, EvalModel q, const Tokenizer& tok, const std::string& text,
                            const PplOptions& opt, const std::string& label) {
  std::string mode;
  const int64_t ctx = std::min(ref.model->config().max_position, q.model->config().max_position);
  std::vector<TokenSeq> seqs = ppl_sequences(tok, text, opt, ctx, label, &mode);
  int64_t total = 0;
  for (const TokenSeq& s : seqs) total += std::max<int64_t>(0, int64_t(s.size()) - 1);
  Progress bar("kl " + label, total, "tok");
  KlResult r = kl_divergence(ref, q, seqs, opt.batch_size, &bar);
  bar.finish();
  return r;
}

}  // namespace wush

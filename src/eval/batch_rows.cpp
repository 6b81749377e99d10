#include "eval/batch_rows.h"

#include <algorithm>

#include "core/error.h"

namespace wush {

void check_token_ids(const std::vector<TokenSeq>& seqs, int64_t vocab) {
  for (const TokenSeq& s : seqs)
    for (int32_t id : s)
      WUSH_CHECK(id >= 0 && id < vocab, "token id %d outside the model's vocabulary (%lld)", id, (long long)vocab);
}

at::Tensor right_padded(const std::vector<const TokenSeq*>& rows, int64_t T) {
  at::Tensor tokens = at::zeros({int64_t(rows.size()), T}, at::kLong);
  auto acc = tokens.accessor<int64_t, 2>();
  for (size_t b = 0; b < rows.size(); ++b) {
    WUSH_ASSERT(int64_t(rows[b]->size()) <= T);
    for (size_t t = 0; t < rows[b]->size(); ++t) acc[int64_t(b)][int64_t(t)] = (*rows[b])[t];
  }
  return tokens;
}

at::Tensor final_hidden(Transformer& model, const at::Tensor& tokens, const ForwardHooks* hooks) {
  at::Tensor h = model.embed(tokens);
  for (int64_t l = 0; l < model.config().num_layers; ++l) h = model.block(l, h, hooks);
  return h;
}

int64_t head_chunk_rows(int64_t vocab) { return std::max<int64_t>(1, (int64_t(1) << 26) / vocab); }

at::Tensor logprob_rows(Transformer& model, const at::Tensor& hs) {
  at::Tensor logits = model.head(hs);  // fp32 (fp64 for a float64 test model)
  if (logits.scalar_type() != at::kDouble) logits = logits.to(at::kFloat);
  return at::log_softmax(logits, -1);
}

void for_each_logprob_chunk(Transformer& model, const at::Tensor& hs,
                            const std::function<void(int64_t, const at::Tensor&)>& fn) {
  const int64_t rows = hs.size(0), chunk = head_chunk_rows(model.config().vocab_size);
  for (int64_t r = 0; r < rows; r += chunk) {
    const int64_t m = std::min(chunk, rows - r);
    fn(r, logprob_rows(model, hs.narrow(0, r, m)));
  }
}

}  // namespace wush

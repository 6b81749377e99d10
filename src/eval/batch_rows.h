// Shared plumbing of the scoring paths (perplexity, zero-shot log-likelihoods, KL divergence):
// right-padded token batches, the final hidden states of a batch, and the lm_head applied to
// selected rows in chunks. Right padding needs no attention mask: causal attention never looks
// right (model/forward.h), so the states before the padding are exact.
#pragma once
#include <ATen/ATen.h>

#include <cstdint>
#include <functional>
#include <vector>

#include "model/forward.h"

namespace wush {

using TokenSeq = std::vector<int32_t>;

// Checks every id of `seqs` against the model's vocabulary (wush::Error naming the id).
void check_token_ids(const std::vector<TokenSeq>& seqs, int64_t vocab);

// int64 [rows.size(), T] on the CPU: rows[b] left-aligned, padded with id 0 (T >= every row).
at::Tensor right_padded(const std::vector<const TokenSeq*>& rows, int64_t T);

// embed + every block (with `hooks`; nullptr: the model's default hooks) -> hidden [B, T, H].
at::Tensor final_hidden(Transformer& model, const at::Tensor& tokens, const ForwardHooks* hooks);

// Rows of hidden states per lm_head call: bounds the fp32 logits to ~256 MB.
int64_t head_chunk_rows(int64_t vocab);

// final norm + lm_head + log-softmax of hidden rows [m, H]: fp32 whatever the compute dtype (fp64
// for a float64 model).
at::Tensor logprob_rows(Transformer& model, const at::Tensor& hs);

// Applies the head to the rows hs [N, H] in chunks and calls fn(first_row, log-softmax [m, V]) for
// each chunk in order; the log-softmax is fp32 whatever the compute dtype (fp64 for a float64 model).
void for_each_logprob_chunk(Transformer& model, const at::Tensor& hs,
                            const std::function<void(int64_t, const at::Tensor&)>& fn);

}  // namespace wush

// KL divergence between a reference model and a (quantized) model, REFERENCE.md §6: the mean over
// scored tokens of KL(p_ref || p_q) of the next-token distributions, and the top-1 agreement (the
// share of positions where both models' argmax is the same token). Both models read the same token
// sequences (perplexity's windows or stories); every position that predicts a next token is
// scored. Log-softmax in fp32, KL per position and all sums in fp64.
#pragma once
#include <cstdint>
#include <string>
#include <vector>

#include "core/progress.h"
#include "eval/batch_rows.h"
#include "eval/perplexity.h"
#include "model/forward.h"
#include "model/tokenizer.h"

namespace wush {

// A model as evaluated: its Transformer and the hooks its forward runs with (nullptr: the
// Transformer's default hooks). A quantized model is its Transformer + its W4A4 linears as hooks.
struct EvalModel {
  Transformer* model;
  const ForwardHooks* hooks = nullptr;
};

struct KlResult {
  int64_t sequences = 0;
  int64_t tokens = 0;   // scored positions
  double kl = 0;        // mean KL(p_ref || p_q), nats
  double top1 = 0;      // top-1 agreement in [0, 1]
  double nll_ref = 0;   // mean NLL of the next tokens under each model
  double nll_q = 0;
  double seconds = 0;
};

// Over sequences (positions 0..len-2 of each), right-padded batches of up to `batch_size`.
KlResult kl_divergence(EvalModel ref, EvalModel q, const std::vector<TokenSeq>& seqs, int64_t batch_size,
                       Progress* progress = nullptr);

// Over the sequences perplexity() would score for `text` (opt.mode, opt.seqlen; the reference's context).
KlResult kl_divergence_text(EvalModel ref, EvalModel q, const Tokenizer& tok, const std::string& text,
                            const PplOptions& opt, const std::string& label);

}  // namespace wush

// Text generation with the KV cache: greedy (temperature 0) or temperature + top-p sampling.
#pragma once
#include <cstdint>
#include <functional>
#include <string>
#include <vector>

#include "model/forward.h"
#include "model/tokenizer.h"

namespace wush {

struct GenerateOptions {
  std::string prompt;           // encoded with BOS where the tokenizer adds one
  int64_t max_new_tokens = 256;
  double temperature = 0.0;     // 0: greedy (argmax, lowest id on ties)
  double top_p = 0.9;           // nucleus sampling when in (0, 1); otherwise the full distribution
  uint64_t seed = 0;
};

struct GenerateResult {
  std::vector<int32_t> prompt_ids;
  std::vector<int32_t> new_ids;  // generated, without the stop token
  std::string text;              // decode(prompt_ids + new_ids)
  std::string stop;              // "eos", "bos", "max_new_tokens" or "context"
  double seconds = 0;            // prefill + decoding
};

// Generates until EOS (or BOS, which starts a new document in llama2.c models), max_new_tokens
// or the model's context. on_text (optional) receives the text as it grows, prompt first.
GenerateResult generate(Transformer& model, const Tokenizer& tok, const GenerateOptions& opt,
                        const std::function<void(const std::string&)>& on_text = nullptr);

// Picks the next token from fp32 logits [V] (temperature/top-p as in GenerateOptions); `coin` is a
// uniform number in [0, 1). Exposed for tests.
int32_t sample_next(const at::Tensor& logits, double temperature, double top_p, double coin);

}  // namespace wush

// Calibration samples (REFERENCE.md §4): the calibration file tokenized as evaluation does
// (a file of <|endoftext|>-separated stories: each story stripped and encoded with BOS; any other
// file: the whole text once, BOS as the tokenizer adds it), concatenated, cut into consecutive
// non-overlapping windows of `seqlen` tokens; the first `nsamples`, or `nsamples` windows drawn at
// random without replacement when a seed is given. Fewer windows than asked: all, with a warning.
#pragma once
#include <ATen/ATen.h>

#include <cstdint>
#include <optional>
#include <string>

#include "model/tokenizer.h"

namespace wush {

struct CalibrationOptions {
  int64_t nsamples = 128;
  int64_t seqlen = 512;
  std::optional<uint64_t> seed;  // unset: the first nsamples windows
};

struct CalibrationSet {
  at::Tensor tokens;           // int64 [n, seqlen]
  int64_t windows_available = 0;
  std::string file;
  std::string note;            // e.g. "only 79 windows of 512 tokens: using all"
};

CalibrationSet load_calibration(const Tokenizer& tok, const std::string& file, const CalibrationOptions& opt);

// Token stream of a text file as evaluation and calibration see it (see above).
std::vector<int32_t> tokenize_corpus(const Tokenizer& tok, const std::string& text);

}  // namespace wush

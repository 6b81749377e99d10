// wush-search (REFERENCE.md §9 last bullet; the accuracy issue's item 5): wush-local whose
// per-block eigenvector signs are searched. WUSH is optimal only up to the signs of its
// eigenvectors: T_j(S) = Had diag(l)^{-1/4} S E^T Lw^T for any diagonal S of +-1 (equivalently,
// Had's columns negated) keeps every property of §2 (T H T^T stays Had D Had^T), but moves the
// block's quantization loss. Starting from the canonical choice (S = I, canonical_signs), a
// greedy pass flips one sign at a time, in all blocks at once, and keeps a flip in a block
// where it lowers that block's objective, so the result is never worse than the canonical one
// on the objective:
//   loss_j(T) = mean || W_j x - Q(W_j T^{-1}) Q(T x) ||^2 over x ~ N(0, H_jj)
// (the block's W4A4 RTN output error; a Gaussian with the calibration second moment H_jj stands
// in for the calibration tokens, which the statistics do not keep; seeded, so deterministic).
// The format is the recipe's (set_format() before fit(); quantize_linear() does it); unset, the
// group's FP4 format (MXFP4 for G = 32, NVFP4 for G = 16).
#pragma once
#include "formats/format.h"
#include "transforms/transform.h"

namespace wush {

struct WushSearchOptions {
  int64_t samples = 128;  // Gaussian samples per block
  int passes = 1;         // greedy passes over the G signs
  uint64_t seed = 12345;  // sample seed
};

struct WushSearchResult {
  at::Tensor T;             // [nb, G, G] fp64, bf16-rounded if asked
  at::Tensor loss_initial;  // [nb] objective of the canonical T (fp64)
  at::Tensor loss_final;    // [nb] objective of the searched T (<= loss_initial)
  int64_t flips = 0;        // accepted flips over all blocks
};

// The search itself, batched over blocks: W [R, nb*G] (padded), H [nb*G, nb*G] (padded), Gw and
// Gx the blocks' (undamped) Grams as WushLocalTransform builds them.
WushSearchResult wush_search_blocks(const at::Tensor& Gw, const at::Tensor& Gx, const at::Tensor& W,
                                    Format format, bool damp, bool round_bf16,
                                    const WushSearchOptions& opt = {}, const std::string& what = "wush-search");

class WushSearchTransform : public Transform {
 public:
  std::string name() const override { return "wush-search"; }
  bool needs_H() const override { return true; }
  bool needs_W() const override { return true; }
  void set_format(Format f) { format_ = f; }
  void set_options(const WushSearchOptions& o) { opt_ = o; }

 protected:
  at::Tensor fit_blocks(const FitInput& in, int64_t nb) override;

 private:
  Format format_ = Format::None;
  WushSearchOptions opt_;
};

}  // namespace wush

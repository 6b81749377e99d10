// wush (REFERENCE.md §2, the earlier reference release's form) and wus (the same with the
// Hadamard factor replaced by I). Upper Cholesky of the whole damped H (with retries), U_jj its
// diagonal blocks (Schur-complement factors), Y_j = U_jj W_j^T, then wush_block() per block,
// batched over all blocks. Needs R >= G (checked in wush_block).
// Padding (C % G != 0): H gets pad_second_moment(), W zero columns (transform.h).
#pragma once
#include "transforms/transform.h"

namespace wush {

class WushTransform : public Transform {
 public:
  explicit WushTransform(bool hadamard = true) : hadamard_(hadamard) {}
  std::string name() const override { return hadamard_ ? "wush" : "wus"; }
  bool needs_H() const override { return true; }
  bool needs_W() const override { return true; }

 protected:
  at::Tensor fit_blocks(const FitInput& in, int64_t nb) override;

 private:
  bool hadamard_;
};

}  // namespace wush

// Helpers of the evaluation tests: float64 next-token log-probabilities of a whole model, from the
// equation-level reference block of runtime_test_util.h (independent of src/model/forward.cpp).
#pragma once
#include <cmath>
#include <vector>

#include "runtime_test_util.h"

namespace wush::testing {

// log p(. | s[0..t]) for every position t of s: [T][V], float64 (embed, block_ref per layer, final
// RMSNorm, lm_head, log-softmax).
inline Mat ref_log_softmax(const Model& m, const std::vector<int32_t>& s) {
  const ModelConfig& c = m.config;
  const at::Tensor& E = m.weights.at("model.embed_tokens.weight");
  Mat x;
  for (int32_t id : s) x.push_back(vec_of(E[id]));
  for (int64_t l = 0; l < c.num_layers; ++l) x = block_ref(m, l, x);
  const at::Tensor& head = m.has("lm_head.weight") ? m.weights.at("lm_head.weight") : E;
  Mat out;
  for (const Vec& h : x) {
    Vec logits = matvec(head, rmsnorm_ref(h, vec_of(m.weights.at("model.norm.weight")), c.rms_norm_eps));
    double mx = -1e300, z = 0;
    for (double v : logits) mx = std::max(mx, v);
    for (double v : logits) z += std::exp(v - mx);
    for (double& v : logits) v -= mx + std::log(z);
    out.push_back(logits);
  }
  return out;
}

inline size_t argmax_of(const Vec& v) { return size_t(std::max_element(v.begin(), v.end()) - v.begin()); }

}  // namespace wush::testing

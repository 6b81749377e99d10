// KL divergence and top-1 agreement (src/eval/kl_divergence.h, REFERENCE.md §6).
#include <gtest/gtest.h>

#include <cmath>

#include "core/error.h"
#include "eval/kl_divergence.h"
#include "eval_test_util.h"

using namespace wush;
using namespace wush::testing;

namespace {

std::vector<TokenSeq> test_sequences() {
  std::vector<TokenSeq> seqs;
  for (int k = 0; k < 5; ++k) {
    TokenSeq s;
    for (int i = 0; i < 6 + 9 * k; ++i) s.push_back(int32_t((i * i + 5 * k + 3 * i) % 31 + 1));
    seqs.push_back(s);
  }
  seqs.push_back({4});  // nothing to score
  return seqs;
}

Model perturbed(const Model& m, const std::string& name, double scale, uint64_t seed) {
  Model p = m;
  p.weights = m.weights;
  at::Generator gen = at::detail::createCPUGenerator(seed);
  const at::Tensor& w = m.weights.at(name);
  p.weights[name] = w + scale * at::randn(w.sizes(), gen, at::kFloat);
  return p;
}

}  // namespace

TEST(KlDivergence, ModelAgainstItselfIsZero) {
  Model m = tiny_model(TinySpec{}, 3);
  Transformer a(m), b(m);
  KlResult r = kl_divergence({&a}, {&b}, test_sequences(), 2);
  EXPECT_EQ(r.kl, 0.0);
  EXPECT_EQ(r.top1, 1.0);
  EXPECT_EQ(r.sequences, 5);
  EXPECT_EQ(r.tokens, 5 + 14 + 23 + 32 + 41);
  EXPECT_EQ(r.nll_ref, r.nll_q);
}

// KL(p_ref || p_q) of a perturbed model against the float64 equation-level forward of both.
TEST(KlDivergence, PerturbedModelMatchesFloat64Reference) {
  Model m = tiny_model(TinySpec{}, 3);
  const std::string name = "model.layers.0.mlp.up_proj.weight";
  Model q = perturbed(m, name, 0.3, 11);
  Transformer tr(m), tq(q);
  const std::vector<TokenSeq> seqs = test_sequences();
  KlResult r = kl_divergence({&tr}, {&tq}, seqs, 3);
  double kl = 0, nll_ref = 0, nll_q = 0;
  int64_t n = 0, agree = 0;
  for (const TokenSeq& s : seqs) {
    if (s.size() < 2) continue;
    Mat lr = ref_log_softmax(m, s), lq = ref_log_softmax(q, s);
    for (size_t t = 0; t + 1 < s.size(); ++t, ++n) {
      for (size_t v = 0; v < lr[t].size(); ++v) kl += std::exp(lr[t][v]) * (lr[t][v] - lq[t][v]);
      agree += argmax_of(lr[t]) == argmax_of(lq[t]);
      nll_ref -= lr[t][size_t(s[t + 1])];
      nll_q -= lq[t][size_t(s[t + 1])];
    }
  }
  ASSERT_EQ(r.tokens, n);
  kl /= double(n);
  EXPECT_GT(kl, 1e-3);  // the perturbation matters
  EXPECT_NEAR(r.kl, kl, 1e-3 * kl);
  EXPECT_NEAR(r.top1, double(agree) / double(n), 1e-12);
  EXPECT_LT(r.top1, 1.0);
  EXPECT_NEAR(r.nll_ref, nll_ref / double(n), 1e-5);
  EXPECT_NEAR(r.nll_q, nll_q / double(n), 1e-5);
}

// A quantized model plugs in as (Transformer, ForwardHooks): an override of one linear gives the
// same KL as a model whose weight is replaced.
TEST(KlDivergence, HooksStandInForReplacedWeights) {
  Model m = tiny_model(TinySpec{}, 3);
  const std::string lin = "model.layers.1.self_attn.v_proj";
  Model q = perturbed(m, lin + ".weight", 0.2, 5);
  Transformer tr(m), tq(q), hooked(m);
  const at::Tensor w = q.weights.at(lin + ".weight");
  ForwardHooks hk;
  int calls = 0;
  hk.linear = [&](const std::string& name, const at::Tensor& x) -> at::Tensor {
    if (name != lin) return {};
    ++calls;
    return at::linear(x, w);
  };
  const std::vector<TokenSeq> seqs = test_sequences();
  KlResult want = kl_divergence({&tr}, {&tq}, seqs, 4);
  KlResult got = kl_divergence({&tr}, {&hooked, &hk}, seqs, 4);
  EXPECT_GT(calls, 0);
  EXPECT_NEAR(got.kl, want.kl, 1e-9 + 1e-6 * want.kl);
  EXPECT_EQ(got.top1, want.top1);
  EXPECT_THROW(kl_divergence({&tr}, {&tq}, {{1, 40}}, 1), Error);  // id outside the vocabulary
  TinySpec other;
  other.vocab = 48;
  Model big = tiny_model(other, 2);
  Transformer tb(big);
  EXPECT_THROW(kl_divergence({&tr}, {&tb}, seqs, 1), Error);  // vocabularies differ
}

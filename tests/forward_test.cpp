// The forward pass (src/model/forward.h) against an independent float64 reference
// (runtime_test_util.h), the KV cache against full-sequence logits, and the hooks.
#include <ATen/core/grad_mode.h>
#include <gtest/gtest.h>

#include <map>

#include "core/error.h"
#include "core/progress.h"
#include "model/forward.h"
#include "runtime_test_util.h"

using namespace wush;
using namespace wush::testing;

namespace {

// Tests run one thread each (CTest runs them in parallel).
struct OneThread : ::testing::Environment {
  void SetUp() override {
    init_threads(1);
    set_progress_enabled(false);
  }
};
[[maybe_unused]] auto* const kEnv = ::testing::AddGlobalTestEnvironment(new OneThread);

at::Tensor random_tokens(int64_t B, int64_t T, int64_t vocab, uint64_t seed) {
  at::Generator gen = at::detail::createCPUGenerator(seed);
  return at::randint(vocab, {B, T}, gen, at::kLong);
}

void expect_block_matches_reference(const TinySpec& spec, const char* what, int64_t T = 11) {
  Model m = tiny_model(spec, 7);
  Transformer tf(m);
  at::Generator gen = at::detail::createCPUGenerator(3);
  at::Tensor x = at::randn({1, T, spec.hidden}, gen, at::kFloat);
  for (int64_t l = 0; l < spec.layers; ++l) {
    at::Tensor y = tf.block(l, x);
    Mat ref = block_ref(m, l, mat_of(x[0]));
    EXPECT_LT(max_rel_diff(ref, y[0]), 2e-6) << what << " layer " << l;
  }
}

}  // namespace

TEST(Forward, LlamaGqaBlockMatchesFloat64Reference) { expect_block_matches_reference({}, "llama gqa"); }

TEST(Forward, LongSequenceSpansSeveralQueryChunks) {
  TinySpec s;
  s.max_pos = 512;
  expect_block_matches_reference(s, "300 positions = 3 query chunks", 300);
}

TEST(Forward, Qwen2BiasBlockMatchesFloat64Reference) {
  TinySpec s;
  s.bias = true;
  expect_block_matches_reference(s, "qwen2 bias");
}

TEST(Forward, Qwen3QkNormBlockMatchesFloat64Reference) {
  TinySpec s;
  s.qk_norm = true;
  s.kv_heads = 1;
  expect_block_matches_reference(s, "qwen3 qk_norm, one kv head");
}

TEST(Forward, Llama3RopeScalingMatchesFloat64Reference) {
  // head_dim 16: wavelengths 6.3 .. 19869 span all three llama3 regimes with original context 64
  // (keep < 16, interpolate 16..64, divide by 8 > 64).
  TinySpec s;
  s.hidden = 32;
  s.heads = 2;
  s.kv_heads = 2;
  s.llama3 = true;
  Model m = tiny_model(s);
  Vec ref = inv_freq_ref(m.config);
  Vec got = vec_of(rope_inv_freq(m.config));
  ASSERT_EQ(got.size(), 8u);
  for (size_t j = 0; j < 8; ++j) EXPECT_NEAR(got[j], ref[j], 1e-6 * ref[j]) << j;
  EXPECT_NEAR(got[0], 1.0, 1e-7);             // high frequency kept
  EXPECT_NEAR(got[7], std::pow(10000.0, -14.0 / 16) / 8, 1e-6 * got[7]);  // low frequency divided by 8
  expect_block_matches_reference(s, "llama3 rope");
}

TEST(Forward, FullForwardEqualsEmbedBlocksHead) {
  TinySpec s;
  s.tied = false;
  Model m = tiny_model(s);
  Transformer tf(m);
  at::Tensor tok = random_tokens(2, 9, s.vocab, 5);
  at::Tensor h = tf.embed(tok);
  // The embedding row and the untied head: logits = lm_head(rmsnorm(h_L)).
  EXPECT_TRUE(at::equal(h[1][3], m.weights.at("model.embed_tokens.weight")[tok[1][3].item<int64_t>()]));
  for (int64_t l = 0; l < s.layers; ++l) h = tf.block(l, h);
  at::Tensor logits = tf.forward(tok);
  EXPECT_EQ(logits.sizes(), at::IntArrayRef({2, 9, s.vocab}));
  Vec hn = rmsnorm_ref(vec_of(h[0][4]), vec_of(m.weights.at("model.norm.weight")), 1e-5);
  Vec ref = matvec(m.weights.at("lm_head.weight"), hn);
  Vec got = vec_of(logits[0][4]);
  for (size_t v = 0; v < ref.size(); ++v) EXPECT_NEAR(got[v], ref[v], 1e-4);
}

TEST(Forward, KvCacheLogitsEqualFullSequence) {
  TinySpec s;
  s.max_pos = 512;
  Model m = tiny_model(s, 11);
  Transformer tf(m);
  at::Tensor tok = random_tokens(2, 300, 32, 9);
  at::Tensor full = tf.forward(tok);
  KVCache cache = tf.new_cache(2, 310);
  std::vector<at::Tensor> parts;
  parts.push_back(tf.forward_cached(tok.narrow(1, 0, 150), cache));  // prefill, two query chunks
  for (int64_t t = 150; t < 155; ++t) parts.push_back(tf.forward_cached(tok.narrow(1, t, 1), cache));
  parts.push_back(tf.forward_cached(tok.narrow(1, 155, 145), cache));  // after the cache, two chunks
  EXPECT_EQ(cache.length, 300);
  at::Tensor inc = at::cat(parts, 1);
  EXPECT_LT(((inc - full).abs().max() / full.abs().max()).item<double>(), 5e-6);
  EXPECT_THROW(tf.forward_cached(tok.narrow(1, 0, 11), cache), Error);  // 300 + 11 > capacity 310
}

TEST(Forward, RightPaddedBatchIsExactBeforeThePadding) {
  Model m = tiny_model({}, 2);
  Transformer tf(m);
  at::Tensor a = random_tokens(1, 12, 32, 1), b = random_tokens(1, 7, 32, 2);
  at::Tensor batch = at::zeros({2, 12}, at::kLong);
  batch[0].copy_(a[0]);
  batch[1].narrow(0, 0, 7).copy_(b[0]);
  at::Tensor lb = tf.forward(batch);
  EXPECT_LT((lb[0] - tf.forward(a)[0]).abs().max().item<double>(), 1e-5);
  EXPECT_LT((lb[1].narrow(0, 0, 7) - tf.forward(b)[0]).abs().max().item<double>(), 1e-5);
}

TEST(Forward, HooksSeeSevenLinearsPerBlockWithTheirShapes) {
  TinySpec s;
  Model m = tiny_model(s);
  Transformer tf(m);
  std::vector<std::pair<std::string, std::vector<int64_t>>> seen;
  ForwardHooks hk;
  hk.on_linear_input = [&](const std::string& name, const at::Tensor& x) {
    seen.emplace_back(name, x.sizes().vec());
  };
  tf.forward(random_tokens(3, 5, s.vocab, 4), &hk);
  ASSERT_EQ(seen.size(), size_t(7 * s.layers));
  const int64_t in_dim[7] = {16, 16, 16, 16, 16, 16, 24};  // o_proj reads nh*hd = 16, down_proj 24
  for (int64_t l = 0; l < s.layers; ++l)
    for (int i = 0; i < 7; ++i) {
      const auto& [name, shape] = seen[size_t(l * 7 + i)];
      EXPECT_EQ(name, "model.layers." + std::to_string(l) + "." + kLinearNames[i]);
      EXPECT_EQ(shape, (std::vector<int64_t>{3, 5, in_dim[i]})) << name;
    }
}

TEST(Forward, LinearOverrideReproducesLogitsAndCanChangeThem) {
  TinySpec s;
  s.bias = true;
  Model m = tiny_model(s);
  Transformer tf(m);
  at::Tensor tok = random_tokens(2, 6, s.vocab, 8);
  at::Tensor ref = tf.forward(tok);
  int calls = 0;
  ForwardHooks hk;
  hk.linear = [&](const std::string& name, const at::Tensor& x) {
    ++calls;
    at::Tensor y = at::matmul(x, tf.weight(name + ".weight").t());
    return tf.has_weight(name + ".bias") ? y + tf.weight(name + ".bias") : y;
  };
  at::Tensor got = tf.forward(tok, &hk);
  EXPECT_EQ(calls, 7 * s.layers);
  EXPECT_LT((got - ref).abs().max().item<double>(), 1e-6);
  // Undefined results fall back to the model's own linear: exactly the reference.
  ForwardHooks none;
  none.linear = [](const std::string&, const at::Tensor&) { return at::Tensor(); };
  EXPECT_TRUE(at::equal(tf.forward(tok, &none), ref));
  // An override that zeroes down_proj removes the MLP's contribution.
  ForwardHooks zero;
  zero.linear = [&](const std::string& name, const at::Tensor& x) {
    return name.find("down_proj") != std::string::npos
               ? at::zeros({x.size(0), x.size(1), s.hidden}, x.options())
               : at::Tensor();
  };
  EXPECT_GT((tf.forward(tok, &zero) - ref).abs().max().item<double>(), 1e-2);
}

TEST(Forward, SetWeightReplacesAndChecks) {
  Model m = tiny_model({});
  Transformer tf(m);
  at::Tensor tok = random_tokens(1, 5, 32, 3);
  at::Tensor ref = tf.forward(tok);
  const std::string q = "model.layers.1.self_attn.q_proj.weight";
  EXPECT_THROW(tf.set_weight(q, at::zeros({3, 3})), Error);
  EXPECT_THROW(tf.set_weight("model.layers.9.mlp.up_proj.weight", at::zeros({24, 16})), Error);
  tf.set_weight(q, m.weights.at(q) * 2);
  EXPECT_GT((tf.forward(tok) - ref).abs().max().item<double>(), 1e-3);
  tf.set_weight(q, m.weights.at(q));
  EXPECT_TRUE(at::equal(tf.forward(tok), ref));
  // A new bias on a linear is used; a zero bias changes nothing.
  tf.set_weight("model.layers.0.mlp.up_proj.bias", at::zeros({24}));
  EXPECT_TRUE(at::allclose(tf.forward(tok), ref, 0, 1e-6));
  EXPECT_THROW(tf.set_weight("model.layers.0.mlp.up_proj.bias", at::zeros({16})), Error);
  // Tied: the head keeps its own entry; setting lm_head unties.
  tf.set_weight("lm_head.weight", at::zeros({32, 16}));
  EXPECT_EQ(tf.forward(tok).abs().max().item<double>(), 0.0);
  EXPECT_TRUE(at::equal(tf.embed(tok)[0][0], m.weights.at("model.embed_tokens.weight")[tok[0][0].item<int64_t>()]));
}

TEST(Forward, GradientsFlowToWeights) {
  Model m = tiny_model({});
  Transformer tf(m);
  const std::string name = "model.layers.0.mlp.gate_proj.weight";
  at::Tensor w = m.weights.at(name).clone().requires_grad_(true);
  tf.set_weight(name, w);
  at::Tensor loss = tf.forward(random_tokens(2, 6, 32, 1)).pow(2).mean();
  loss.backward();
  ASSERT_TRUE(w.grad().defined());
  EXPECT_GT(w.grad().abs().sum().item<double>(), 0.0);
}

TEST(Forward, Bf16CloseToFp32) {
  Model m = tiny_model({}, 5);
  at::Tensor tok = random_tokens(1, 10, 32, 6);
  Transformer f32(m), b16(m, at::kCPU, at::kBFloat16);
  at::Tensor a = f32.forward(tok), b = b16.forward(tok);
  EXPECT_EQ(b.scalar_type(), at::kFloat);  // logits always fp32
  double rel = ((a - b).norm() / a.norm()).item<double>();
  EXPECT_LT(rel, 0.05);
  EXPECT_GT(rel, 0.0);  // it really ran in bf16
}

TEST(Forward, ConfigShapeMismatchIsAnError) {
  Model m = tiny_model({});
  m.weights["model.layers.1.mlp.down_proj.weight"] = at::zeros({16, 23});
  try {
    Transformer tf(m);
    FAIL() << "no throw";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("model.layers.1.mlp.down_proj.weight"), std::string::npos) << e.what();
  }
  Model u = tiny_model({});
  u.config.tie_word_embeddings = false;  // but no lm_head.weight
  EXPECT_THROW(Transformer{u}, Error);
}

TEST(Forward, NormHookSeesEveryNormAndOverridesIt) {
  Model m = tiny_model({});
  Transformer tf(m);
  at::Tensor tokens = random_tokens(1, 5, 32, 4);
  std::vector<std::string> names;
  ForwardHooks hk;
  hk.norm = [&](const std::string& name, const at::Tensor& h, const at::Tensor& gain) {
    names.push_back(name);
    EXPECT_EQ(gain.data_ptr(), tf.weight(name + ".weight").data_ptr());
    return at::Tensor();  // undefined: the model's own RMSNorm
  };
  EXPECT_TRUE(tf.forward(tokens, &hk).equal(tf.forward(tokens)));
  const std::vector<std::string> want = {"model.layers.0.input_layernorm", "model.layers.0.post_attention_layernorm",
                                         "model.layers.1.input_layernorm", "model.layers.1.post_attention_layernorm",
                                         "model.norm"};
  EXPECT_EQ(names, want);
  // An override replaces the output: zeroing the final norm gives all-zero logits.
  hk.norm = [](const std::string& name, const at::Tensor& h, const at::Tensor&) {
    return name == "model.norm" ? at::zeros_like(h) : at::Tensor();
  };
  EXPECT_EQ(tf.forward(tokens, &hk).abs().max().item<float>(), 0.0f);
}

// llama2.c checkpoints and tokenizer (src/model/llama2c*.cpp) and generation from stories260K.
#include <gtest/gtest.h>

#include <ATen/CPUGeneratorImpl.h>

#include <fstream>

#include "core/atomic_file.h"
#include "core/error.h"
#include "llama2c_ref.h"
#include "model/forward.h"
#include "model/generate.h"
#include "model/llama2c.h"
#include "model/tokenizer.h"
#include "runtime_test_util.h"

using namespace wush;
using namespace wush::testing;

namespace {

const std::string kStories = "models/stories260K.bin", kTok = "models/tok512.bin";

// A random llama2.c checkpoint: header + fp32 tensors (freq_cis filled with junk: must be ignored).
std::string write_tiny_llama2c(const std::string& name, bool shared, uint64_t seed) {
  const int32_t dim = 16, hidden = 20, layers = 2, heads = 4, kv = 2, vocab = 24, seq = 16;
  const int64_t hs = dim / heads, kvd = hs * kv;
  const int64_t floats = vocab * dim + layers * (2 * dim + 2 * dim * dim + 2 * kvd * dim + 3 * hidden * dim) + dim +
                         seq * hs + (shared ? 0 : vocab * dim);
  at::Generator gen = at::detail::createCPUGenerator(seed);
  at::Tensor w = at::randn({floats}, gen, at::kFloat) * 0.5;
  int32_t h[7] = {dim, hidden, layers, heads, kv, shared ? vocab : -vocab, seq};
  std::string bytes(reinterpret_cast<const char*>(h), 28);
  bytes.append(reinterpret_cast<const char*>(w.data_ptr<float>()), size_t(floats) * 4);
  std::string path = ::testing::TempDir() + name;
  write_file_atomic(path, bytes);
  return path;
}

std::string error_of(const std::function<void()>& f) {
  try {
    f();
  } catch (const Error& e) {
    return e.what();
  }
  return "(no error)";
}

}  // namespace

TEST(Llama2c, LoadsStories260KInHuggingFaceLayout) {
  Model m = load_llama2c(data_path(kStories));
  const ModelConfig& c = m.config;
  EXPECT_EQ(c.hidden_size, 64);
  EXPECT_EQ(c.intermediate_size, 172);
  EXPECT_EQ(c.num_layers, 5);
  EXPECT_EQ(c.num_heads, 8);
  EXPECT_EQ(c.num_kv_heads, 4);
  EXPECT_EQ(c.head_dim, 8);
  EXPECT_EQ(c.vocab_size, 512);
  EXPECT_EQ(c.max_position, 512);
  EXPECT_TRUE(c.tie_word_embeddings);
  EXPECT_FALSE(m.has("lm_head.weight"));
  EXPECT_DOUBLE_EQ(c.rms_norm_eps, 1e-5);
  EXPECT_DOUBLE_EQ(c.rope_theta, 10000.0);
  EXPECT_EQ(m.weight("model.layers.4.self_attn.k_proj.weight").sizes(), at::IntArrayRef({32, 64}));
  EXPECT_EQ(m.weight("model.layers.0.mlp.down_proj.weight").sizes(), at::IntArrayRef({64, 172}));
  EXPECT_EQ(m.weight("model.layers.0.mlp.gate_proj.weight").sizes(), at::IntArrayRef({172, 64}));
  EXPECT_EQ(m.weights.size(), 1u + 5 * 9 + 1);
  int64_t params = 0;
  for (const auto& [n, t] : m.weights) params += t.numel();
  EXPECT_EQ(params, 260032);  // the README's count (freq_cis tables excluded)
  EXPECT_EQ(m.tokenizer_path, data_path("models") + "/tok512.bin");
}

TEST(Llama2c, PermutedWeightsReproduceRunCForward) {
  // Both classifier layouts; the reference runs run.c's interleaved RoPE on the raw floats.
  for (bool shared : {true, false}) {
    std::string path = write_tiny_llama2c(shared ? "tiny_shared.bin" : "tiny_unshared.bin", shared, 5);
    Model m = load_llama2c(path);
    EXPECT_EQ(m.config.tie_word_embeddings, shared);
    EXPECT_EQ(m.has("lm_head.weight"), !shared);
    std::vector<int32_t> toks = {1, 5, 9, 23, 0, 7, 7, 3, 12, 18, 2, 4};
    Llama2cRef ref(path);
    auto want = ref.logits(toks);
    Transformer tf(m);
    at::Tensor got = tf.forward(at::tensor(std::vector<int64_t>(toks.begin(), toks.end())).view({1, -1}))[0];
    double err = 0, scale = 0;
    for (size_t t = 0; t < toks.size(); ++t)
      for (size_t v = 0; v < want[t].size(); ++v) {
        err = std::max(err, std::abs(want[t][v] - got[int64_t(t)][int64_t(v)].item<double>()));
        scale = std::max(scale, std::abs(want[t][v]));
      }
    EXPECT_LT(err / scale, 1e-5) << (shared ? "shared" : "unshared");
  }
}

TEST(Llama2c, Stories260KLogprobsMatchRunCReference) {
  Model m = load_llama2c(data_path(kStories));
  auto tok = load_llama2c_tokenizer(m.tokenizer_path);
  std::vector<int32_t> ids = tok->encode("Once upon a time, there was a big dog named Max. Max liked to run.", true);
  Llama2cRef ref(data_path(kStories));
  std::vector<double> want = ref.logprobs(ids);
  Transformer tf(m);
  at::Tensor lp = at::log_softmax(tf.forward(at::tensor(std::vector<int64_t>(ids.begin(), ids.end())).view({1, -1}))[0], -1);
  ASSERT_EQ(want.size() + 1, ids.size());
  for (size_t t = 0; t < want.size(); ++t) EXPECT_NEAR(lp[int64_t(t)][ids[t + 1]].item<double>(), want[t], 2e-5) << t;
}

TEST(Llama2c, RejectsTruncatedOversizedAndForeignFiles) {
  std::string good = read_file(data_path(kStories));
  std::string dir = ::testing::TempDir();
  write_file_atomic(dir + "trunc.bin", good.substr(0, good.size() - 4));
  write_file_atomic(dir + "over.bin", good + "0000");
  write_file_atomic(dir + "text.bin", "Once upon a time there was a file that was not a model at all.");
  write_file_atomic(dir + "short.bin", "abc");
  std::string e = error_of([&] { load_llama2c(dir + "trunc.bin"); });
  EXPECT_NE(e.find(dir + "trunc.bin"), std::string::npos) << e;
  EXPECT_NE(e.find("truncated"), std::string::npos) << e;
  e = error_of([&] { load_llama2c(dir + "over.bin"); });
  EXPECT_NE(e.find("oversized"), std::string::npos) << e;
  e = error_of([&] { load_llama2c(dir + "text.bin"); });
  EXPECT_NE(e.find("text.bin: "), std::string::npos) << e;
  e = error_of([&] { load_llama2c(dir + "short.bin"); });
  EXPECT_NE(e.find("too short"), std::string::npos) << e;
  e = error_of([&] { load_llama2c(dir + "missing.bin"); });
  EXPECT_NE(e.find("no such"), std::string::npos) << e;
}

// ---- tokenizer ------------------------------------------------------------------------------
// Hand derivations from tok512.bin's vocabulary (ids 3..258 are <0x00>..<0xFF>; from id 259 on
// the merges " t"(259, score -0), "he"(260, -1), " a"(261, -2), ... score -(id - 259); single
// characters follow with lower scores, e.g. " "=410, "e"=411, "a"=412, "t"=413, "o"=414, "n"=416,
// "i"=417, "l"=421, "m"=423, "u"=425, "p"=427, "c"=429, "b"=430, "O"=441, "é"=485).
//
// "Once upon a time": dummy prefix + characters
//   [' ' O n c e ' ' u p o n ' ' a ' ' t i m e]
// Pairs present in the vocabulary: " O"(319,-60) "ce"(331,-72) " u"(318,-59) "on"(289,-30)
// " a"(261,-2) " t"(259,-0) "im"(288,-29); absent: On nc e_ up po n_ a_ ti me.
// Merges by best score: " t" -> " a" -> "im" (new "ime" 369; " tim" absent) -> "on" ("pon" absent)
// -> " u" (new " up" 350) -> " O" (new " On" 321) -> " On" -> "ce" (new " Once" 403)
// -> " up" (new " upon" 407) -> "ime" (new " time" 378) -> " time" -> " Once" -> " upon".
// Result: " Once"(403) " upon"(407) " a"(261) " time"(378).
//
// "llll": [' ' l l l l]; " l"(278,-19) first -> [" l" l l l]; " ll" is absent, the two "ll"(306)
// candidates tie and run.c takes the leftmost -> [" l" "ll" l] = 278 306 421 ("lll" absent).
//
// "a\nb": [' ' a <0x0A> b] = [410 412 13 430]; " a" merges; " a<0x0A>" and "<0x0A>b" are absent.
// "😀" (F0 9F 98 80) is not a token: byte fallback 0xF0+3=243, 0x9F+3=162, 0x98+3=155, 0x80+3=131.
// "é" is a whole-codepoint token: [410 485] (" é" absent).
TEST(Llama2cTokenizer, HandDerivedEncodings) {
  auto tok = load_llama2c_tokenizer(data_path(kTok));
  using V = std::vector<int32_t>;
  EXPECT_EQ(tok->encode("Once upon a time", true), (V{1, 403, 407, 261, 378}));
  EXPECT_EQ(tok->encode("Once upon a time", false), (V{403, 407, 261, 378}));
  EXPECT_EQ(tok->encode("llll", false), (V{278, 306, 421}));
  EXPECT_EQ(tok->encode("a\nb", false), (V{261, 13, 430}));
  EXPECT_EQ(tok->encode("\xF0\x9F\x98\x80", false), (V{410, 243, 162, 155, 131}));
  EXPECT_EQ(tok->encode("\xC3\xA9", false), (V{410, 485}));
  EXPECT_EQ(tok->encode("", true), (V{1}));  // no dummy prefix for empty text
  EXPECT_EQ(tok->encode("", false), (V{}));
  EXPECT_EQ(tok->vocab_size(), 512);
  EXPECT_EQ(tok->bos_id(), 1);
  EXPECT_EQ(tok->eos_id(), 2);
  EXPECT_TRUE(tok->adds_bos());
  EXPECT_EQ(tok->kind(), "llama2c");
}

TEST(Llama2cTokenizer, DecodeStripsSpaceAfterBosAndDecodesBytes) {
  auto tok = load_llama2c_tokenizer(data_path(kTok));
  EXPECT_EQ(tok->decode({1, 403, 407, 261, 378}), "Once upon a time");
  EXPECT_EQ(tok->decode({403, 407}), " Once upon");  // no BOS: the space stays
  EXPECT_EQ(tok->decode({1, 410, 243, 162, 155, 131, 2}), "\xF0\x9F\x98\x80");
  EXPECT_EQ(tok->piece(13), "\n");
  EXPECT_EQ(tok->piece(378), " time");
  for (const std::string s : {"Hello, world! Tom's dog ran.\n\nThe end.", "caf\xC3\xA9 \xE4\xB8\xAD x"})
    EXPECT_EQ(tok->decode(tok->encode(s, true)), s);
}

TEST(Llama2cTokenizer, RejectsWrongAndTruncatedFiles) {
  std::string dir = ::testing::TempDir();
  std::string good = read_file(data_path(kTok));
  write_file_atomic(dir + "tok_trunc.bin", good.substr(0, good.size() - 3));
  std::string e = error_of([&] { load_llama2c_tokenizer(dir + "tok_trunc.bin"); });
  EXPECT_NE(e.find("tok_trunc.bin: truncated"), std::string::npos) << e;
  e = error_of([&] { load_llama2c_tokenizer(data_path(kStories)); });  // a model, not a tokenizer
  EXPECT_NE(e.find("stories260K.bin: not a llama2.c tokenizer"), std::string::npos) << e;
  e = error_of([&] { load_llama2c_tokenizer(data_path("text/ptb_test.txt")); });
  EXPECT_NE(e.find("not a llama2.c tokenizer"), std::string::npos) << e;
  e = error_of([&] { load_llama2c_tokenizer(data_path("models/llama2_tokenizer.model")); });
  EXPECT_NE(e.find("not a llama2.c tokenizer"), std::string::npos) << e;
}

// ---- generation -----------------------------------------------------------------------------
TEST(Generate, GreedyStories260KFromBos) {
  Model m = load_llama2c(data_path(kStories));
  auto tok = load_llama2c_tokenizer(m.tokenizer_path);
  Transformer tf(m);
  GenerateOptions o;
  o.max_new_tokens = 60;
  std::string streamed;
  GenerateResult r = generate(tf, *tok, o, [&](const std::string& s) { streamed += s; });
  const std::string want =
      "Once upon a time, there was a little girl named Lily. She loved to play outside in the park. One day, she "
      "saw a big, red ball";
  EXPECT_EQ(r.text.substr(0, want.size()), want);
  EXPECT_EQ(streamed, r.text);
  EXPECT_EQ(r.prompt_ids, (std::vector<int32_t>{1}));
  EXPECT_EQ(r.new_ids.size(), 60u);
  // Greedy = argmax of the full-sequence logits at every step.
  std::vector<int64_t> all = {1};
  all.insert(all.end(), r.new_ids.begin(), r.new_ids.end());
  at::Tensor am = tf.forward(at::tensor(all).view({1, -1}))[0].argmax(-1);
  for (size_t t = 0; t < r.new_ids.size(); ++t) EXPECT_EQ(am[int64_t(t)].item<int64_t>(), r.new_ids[t]) << t;
}

TEST(Generate, SamplingIsSeededAndTopPKeepsTheNucleus) {
  at::Tensor logits = at::log(at::tensor({0.5, 0.3, 0.15, 0.05}));
  EXPECT_EQ(sample_next(logits, 0, 0.9, 0.99), 0);
  // top-p 0.7: keeps {0, 1} (0.5 < 0.7 <= 0.8); coin 0.99 picks the last kept one.
  EXPECT_EQ(sample_next(logits, 1.0, 0.7, 0.99), 1);
  EXPECT_EQ(sample_next(logits, 1.0, 0.7, 0.0), 0);
  // full distribution: cumulative 0.5, 0.8, 0.95, 1.0
  EXPECT_EQ(sample_next(logits, 1.0, 1.0, 0.9), 2);
  EXPECT_EQ(sample_next(logits, 1.0, 1.0, 0.97), 3);

  Model m = load_llama2c(data_path(kStories));
  auto tok = load_llama2c_tokenizer(m.tokenizer_path);
  Transformer tf(m);
  GenerateOptions o;
  o.prompt = "Tom had a dog";
  o.max_new_tokens = 30;
  o.temperature = 1.0;
  o.seed = 7;
  GenerateResult a = generate(tf, *tok, o), b = generate(tf, *tok, o);
  EXPECT_EQ(a.new_ids, b.new_ids);
  EXPECT_EQ(a.text.rfind("Tom had a dog", 0), 0u) << a.text;
  o.seed = 8;
  EXPECT_NE(generate(tf, *tok, o).new_ids, a.new_ids);
}

// Perplexity (src/eval/perplexity.h, REFERENCE.md §6) and the eval/generate commands.
#include <gtest/gtest.h>

#include <nlohmann/json.hpp>

#include <cmath>

#include "core/atomic_file.h"
#include "core/error.h"
#include "eval/perplexity.h"
#include "llama2c_ref.h"
#include "model/llama2c.h"
#include "runtime_test_util.h"

using namespace wush;
using namespace wush::testing;

namespace {

const std::string kStories = "models/stories260K.bin";

// The first n stories of the TinyStories validation file, "<|endoftext|>"-separated.
std::string first_stories(size_t n) {
  std::string text = read_file(data_path("text/tinystories_val_1000.txt")), out;
  size_t pos = 0;
  for (size_t i = 0; i < n; ++i) {
    size_t end = text.find("<|endoftext|>", pos);
    out += text.substr(pos, end - pos) + "<|endoftext|>";
    pos = end + 13;
  }
  return out;
}

int64_t scored(const std::vector<TokenSeq>& seqs) {
  int64_t n = 0;
  for (const auto& s : seqs) n += int64_t(s.size()) - 1;
  return n;
}

}  // namespace

TEST(Perplexity, StorySequencesSplitStripAndCut) {
  auto tok = load_tokenizer(data_path("models/tok512.bin"));
  const std::string text = "  Tom ran.\n<|endoftext|>\n \n<|endoftext|>Lily sat. <|endoftext|>";
  auto seqs = story_sequences(text, *tok, 512);
  ASSERT_EQ(seqs.size(), 2u);  // the blank piece and the empty tail are skipped
  EXPECT_EQ(seqs[0], tok->encode("Tom ran.", true));
  EXPECT_EQ(seqs[1], tok->encode("Lily sat.", true));
  EXPECT_EQ(seqs[0][0], 1);
  auto cut = story_sequences(text, *tok, 3);
  EXPECT_EQ(cut[0], TokenSeq(seqs[0].begin(), seqs[0].begin() + 3));  // BOS counts toward the cut
  EXPECT_EQ(default_ppl_mode(text), "stories");
  EXPECT_EQ(default_ppl_mode("plain text"), "windows");
}

TEST(Perplexity, WindowSequencesDropTheRemainder) {
  auto tok = load_tokenizer(data_path("models/tok512.bin"));
  std::string text = read_file(data_path("text/ptb_test.txt")).substr(0, 5000);
  TokenSeq all = tok->encode(text, true);
  auto w = window_sequences(text, *tok, 100);
  ASSERT_EQ(w.size(), all.size() / 100);
  EXPECT_EQ(w[0][0], 1);  // one BOS, at the start of the file
  for (size_t i = 0; i < w.size(); ++i)
    EXPECT_EQ(w[i], TokenSeq(all.begin() + int64_t(i * 100), all.begin() + int64_t(i * 100 + 100)));
}

// --max-sequences N (scripts/accuracy's CPU setting): exactly the first N windows / stories of the
// full cut, and all of them when N exceeds the count.
TEST(Perplexity, MaxSequencesKeepsTheFirstN) {
  auto tok = load_tokenizer(data_path("models/tok512.bin"));
  const std::string text = read_file(data_path("text/ptb_test.txt")).substr(0, 5000);
  PplOptions opt;
  opt.mode = "windows";
  opt.seqlen = 100;
  std::string mode;
  const auto all = ppl_sequences(*tok, text, opt, 512, "ptb", &mode);
  ASSERT_GT(all.size(), 5u);
  opt.max_sequences = 3;
  const auto first = ppl_sequences(*tok, text, opt, 512, "ptb", &mode);
  ASSERT_EQ(first.size(), 3u);
  for (size_t i = 0; i < 3; ++i) EXPECT_EQ(first[i], all[i]);
  opt.max_sequences = int64_t(all.size()) + 10;
  EXPECT_EQ(ppl_sequences(*tok, text, opt, 512, "ptb", &mode).size(), all.size());
  opt.mode = "stories";
  opt.max_sequences = 2;
  EXPECT_EQ(ppl_sequences(*tok, first_stories(5), opt, 512, "val", &mode).size(), 2u);
  opt.max_sequences = -1;
  EXPECT_THROW(ppl_sequences(*tok, text, opt, 512, "ptb", &mode), Error);
}

// Token counts of the README's reference facts (tokenization only: fast).
TEST(Perplexity, ReferenceTokenCounts) {
  auto tok = load_tokenizer(data_path("models/tok512.bin"));
  auto stories = story_sequences(read_file(data_path("text/tinystories_val_1000.txt")), *tok, 512);
  EXPECT_EQ(stories.size(), 1000u);
  EXPECT_EQ(scored(stories), 369992);
  auto windows = window_sequences(read_file(data_path("text/wikitext2_test.raw")), *tok, 512);
  EXPECT_EQ(scored(windows), 807380);
}

// The first stories of the validation file against run.c's forward in float64.
TEST(Perplexity, FirstStoriesMatchFloat64RunCReference) {
  Model m = load_llama2c(data_path(kStories));
  auto tok = load_tokenizer(m.tokenizer_path);
  Transformer tf(m);
  const std::string text = first_stories(12);
  Llama2cRef ref(data_path(kStories));
  double nll = 0;
  int64_t n = 0;
  for (const TokenSeq& s : story_sequences(text, *tok, 512))
    for (double lp : ref.logprobs(s)) nll -= lp, ++n;
  for (int64_t bs : {1, 5}) {
    PplOptions o;
    o.batch_size = bs;
    PplResult r = perplexity(tf, *tok, text, o, "first12");
    EXPECT_EQ(r.mode, "stories");
    EXPECT_EQ(r.sequences, 12);
    EXPECT_EQ(r.tokens, n);
    EXPECT_NEAR(r.nll, nll / double(n), 1e-6) << "batch " << bs;
    EXPECT_NEAR(r.ppl, std::exp(nll / double(n)), 1e-5) << "batch " << bs;
  }
}

TEST(Perplexity, TokenLogprobsKeepInputOrderAndSkipShortSequences) {
  Model m = load_llama2c(data_path(kStories));
  Transformer tf(m);
  std::vector<TokenSeq> seqs = {{1, 403, 407}, {1}, {1, 403, 407, 261, 378}, {}};
  auto lp = token_logprobs(tf, seqs, 2);
  ASSERT_EQ(lp.size(), 4u);
  EXPECT_EQ(lp[0].size(), 2u);
  EXPECT_TRUE(lp[1].empty());
  EXPECT_EQ(lp[2].size(), 4u);
  EXPECT_TRUE(lp[3].empty());
  EXPECT_NEAR(lp[0][0], lp[2][0], 1e-6);  // same prefix, padded differently
  EXPECT_NEAR(lp[0][1], lp[2][1], 1e-6);
  EXPECT_THROW(token_logprobs(tf, {{1, 600}}, 1), Error);  // id outside the vocabulary
}

// ---- CLI ------------------------------------------------------------------------------------
TEST(EvalCli, JsonContractOnFirstStories) {
  std::string txt = ::testing::TempDir() + "first30.txt", js = ::testing::TempDir() + "first30.json";
  write_file_atomic(txt, first_stories(30));
  std::string out, err;
  ASSERT_EQ(run_cli("-q --threads 1 eval --model " + data_path(kStories) + " --ppl " + txt + " --json " + js, &out, &err), 0)
      << err;
  auto j = nlohmann::json::parse(read_file(js));
  const auto& r = j.at("ppl").at("first30");
  // The library on the same text.
  Model m = load_llama2c(data_path(kStories));
  auto tok = load_tokenizer(m.tokenizer_path);
  Transformer tf(m);
  PplResult want = perplexity(tf, *tok, first_stories(30), {}, "first30");
  EXPECT_EQ(r.at("tokens").get<int64_t>(), want.tokens);
  EXPECT_NEAR(r.at("nll").get<double>(), want.nll, 1e-6);
  EXPECT_NEAR(r.at("ppl").get<double>(), want.ppl, 1e-5);
  EXPECT_EQ(r.at("mode").get<std::string>(), "stories");
  EXPECT_NE(out.find("first30"), std::string::npos) << out;
}

TEST(GenerateCli, GreedyFromBos) {
  std::string out, err;
  ASSERT_EQ(run_cli("-q --threads 1 generate --model " + data_path(kStories) + " --max-new-tokens 40", &out, &err), 0)
      << err;
  EXPECT_EQ(out.rfind("Once upon a time, there was a little girl named Lily. She loved to play outside in the park.", 0),
            0u)
      << out;
}

TEST(EvalCli, BadInputsGiveOneLineErrors) {
  const std::string dir = ::testing::TempDir();
  std::string good = read_file(data_path(kStories));
  write_file_atomic(dir + "trunc260K.bin", good.substr(0, 100000));
  const std::string model = " --model " + data_path(kStories);
  struct Case {
    std::string args, must_contain;
  } cases[] = {
      {"eval" + model + " --ppl " + dir + "no_such.txt", "no_such.txt: no such text file"},
      {"eval --model " + dir + "trunc260K.bin --ppl " + data_path("text/ptb_test.txt"), "trunc260K.bin: truncated"},
      {"eval" + model + " --tokenizer " + data_path("text/ptb_test.txt") + " --ppl " + data_path("text/ptb_test.txt"),
       "ptb_test.txt: not a llama2.c tokenizer"},
      {"generate" + model + " --device tpu", "--device 'tpu' is not a device"},
      {"eval" + model + " --dtype fp8 --ppl " + data_path("text/ptb_test.txt"), "--dtype 'fp8'"},
      {"eval" + model + " --seqlen 4096 --ppl " + data_path("text/ptb_test.txt"), "--seqlen 4096"},
  };
  for (const Case& c : cases) {
    std::string out, err;
    EXPECT_EQ(run_cli("-q " + c.args, &out, &err), 1) << c.args;
    EXPECT_EQ(err.rfind("wush: error: ", 0), 0u) << err;
    EXPECT_EQ(std::count(err.begin(), err.end(), '\n'), 1) << err;
    EXPECT_NE(err.find(c.must_contain), std::string::npos) << err;
  }
}

// The README's reference fact, end to end (about 11 s on one idle core).
TEST(EvalCli, FullTinyStoriesValidationMatchesLlama2cReference) {
  std::string js = ::testing::TempDir() + "ts1000.json", out, err;
  ASSERT_EQ(run_cli("-q --threads 1 eval --model " + data_path(kStories) + " --ppl " +
                        data_path("text/tinystories_val_1000.txt") + " --ppl-mode stories --json " + js,
                    &out, &err),
            0)
      << err;
  const nlohmann::json j = nlohmann::json::parse(read_file(js));
  const auto& r = j.at("ppl").at("tinystories_val_1000");
  EXPECT_EQ(r.at("tokens").get<int64_t>(), 369992);
  EXPECT_NEAR(r.at("nll").get<double>(), 1.513458, 1e-5);
  EXPECT_NEAR(r.at("ppl").get<double>(), 4.54241, 1e-4);
}

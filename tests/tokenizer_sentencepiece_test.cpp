// SentencePiece .model through the wush_spm module (dlopen'ed beside libtorch in this binary),
// against SentencePiece's own ids (data/README.md) and well-known Llama-2 ids.
#include <gtest/gtest.h>

#include "core/error.h"
#include "model/tokenizer.h"
#include "tokenizer_test_util.h"

using wush_test::data_path;
using wush_test::ids_of;

namespace {
const wush::Tokenizer& gutenberg_spm() {
  static auto t = wush::load_tokenizer(data_path("models/gutenberg-llama-16M/tokenizer.model"));
  return *t;
}
}  // namespace

// reference_encodings.json "spm": SentencePiece ids without BOS; "<s>" is plain text there, as
// SentencePiece never matches control symbols in the input.
TEST(TokenizerSentencePiece, GutenbergMatchesReferenceEncodings) {
  WUSH_TEST_NEEDS_GUTENBERG();
  WUSH_TEST_NEEDS_SENTENCEPIECE();
  const auto ref = wush_test::load_json("tokenizers/reference_encodings.json");
  ASSERT_EQ(ref["spm"].size(), 14u);
  for (const auto& c : ref["spm"]) EXPECT_EQ(gutenberg_spm().encode(c["text"], false), ids_of(c["ids"])) << c["text"];
  const std::string text = wush_test::first_chars(
      wush::read_file(data_path("text/" + ref["text_file"].get<std::string>())), ref["text_chars"]);
  const auto want = ids_of(ref["spm_text_ids"]);
  const auto got = gutenberg_spm().encode(text, false);
  EXPECT_EQ(got.size(), want.size());
  EXPECT_EQ(wush_test::first_diff(got, want), want.size());
}

TEST(TokenizerSentencePiece, GutenbergReferenceFactsAndBos) {
  WUSH_TEST_NEEDS_GUTENBERG();
  WUSH_TEST_NEEDS_SENTENCEPIECE();
  const auto facts = wush_test::load_json("models/gutenberg-llama-16M/reference_facts.json");
  for (const auto& c : facts["tokenizer_tests"])
    EXPECT_EQ(gutenberg_spm().encode(c["text"], false), ids_of(c["ids"])) << c["text"];
  const auto& t = gutenberg_spm();
  EXPECT_EQ(t.kind(), "sentencepiece");
  EXPECT_EQ(t.vocab_size(), 8192);
  EXPECT_EQ(t.bos_id(), facts["bos"].get<int>());
  EXPECT_EQ(t.eos_id(), facts["eos"].get<int>());
  EXPECT_TRUE(t.adds_bos());
  EXPECT_EQ(t.encode("Hello world", true), (std::vector<int32_t>{1, 376, 454, 8128, 953}));
  // greedy_text is SentencePiece's decode of greedy_ids (BOS dropped)
  EXPECT_EQ(t.decode(ids_of(facts["greedy_ids"])), facts["greedy_text"].get<std::string>());
}

// data/README.md: the tokenizer.json gives SentencePiece's ids on 200,000 characters.
TEST(TokenizerSentencePiece, GutenbergJsonAgreesOn200000Chars) {
  WUSH_TEST_NEEDS_GUTENBERG();
  WUSH_TEST_NEEDS_SENTENCEPIECE();
  const std::string text =
      wush_test::first_chars(wush::read_file(data_path("text/gutenberg_eval.txt")), 200000);
  auto json = wush::load_tokenizer(data_path("models/gutenberg-llama-16M/tokenizer.json"));
  const auto a = gutenberg_spm().encode(text, true), b = json->encode(text, true);
  EXPECT_GT(a.size(), 40000u);
  EXPECT_EQ(a.size(), b.size());
  EXPECT_EQ(wush_test::first_diff(a, b), a.size());
}

// Llama-2's published ids: BOS 1, EOS 2, "▁Hello" 15043, "▁world" 3186, "▁" 29871, and the
// byte tokens <0x00>.. from id 3 (so "\n" = <0x0A> = 13).
TEST(TokenizerSentencePiece, Llama2KnownIds) {
  WUSH_TEST_NEEDS_SENTENCEPIECE();
  auto t = wush::load_tokenizer(data_path("models/llama2_tokenizer.model"));
  EXPECT_EQ(t->vocab_size(), 32000);
  EXPECT_EQ(t->bos_id(), 1);
  EXPECT_EQ(t->eos_id(), 2);
  EXPECT_EQ(t->encode("Hello", true), (std::vector<int32_t>{1, 15043}));
  EXPECT_EQ(t->encode("Hello world", true), (std::vector<int32_t>{1, 15043, 3186}));
  EXPECT_EQ(t->encode("\n", false), (std::vector<int32_t>{29871, 13}));
  EXPECT_EQ(t->piece(15043), " Hello");
  EXPECT_EQ(t->piece(13), "\n");
  EXPECT_EQ(t->piece(1), "");
  EXPECT_EQ(t->decode({1, 15043, 3186, 2}), "Hello world");
}

TEST(TokenizerSentencePiece, DecodeInvertsEncode) {
  WUSH_TEST_NEEDS_GUTENBERG();
  WUSH_TEST_NEEDS_SENTENCEPIECE();
  auto llama2 = wush::load_tokenizer(data_path("models/llama2_tokenizer.model"));
  const std::vector<std::string> texts = {"Hello world", "naïve café — “quotes”", "日本語のテキスト 🙂👍",
                                          "Ελληνικά и кириллица\tmixed\n\nlines", "emoji 👩‍👩‍👧 zwj",
                                          "12345 67.8", "x"};
  for (const wush::Tokenizer* t : {&gutenberg_spm(), static_cast<const wush::Tokenizer*>(llama2.get())})
    for (const std::string& s : texts) {
      EXPECT_EQ(t->decode(t->encode(s, true)), s) << s;
      std::string streamed;  // pieces concatenate to the text with SentencePiece's dummy space
      for (int32_t id : t->encode(s, false)) streamed += t->piece(id);
      EXPECT_EQ(streamed, " " + s);
    }
}

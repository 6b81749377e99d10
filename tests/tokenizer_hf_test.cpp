// Hugging Face tokenizer.json BPE against independent references: tiktoken's ids for Llama-3 and
// SentencePiece's / transformers' ids for the SentencePiece-style files (data/README.md).
#include <gtest/gtest.h>

#include "core/error.h"
#include "model/tokenizer.h"
#include "model/tokenizer_loaders.h"
#include "tokenizer_test_util.h"

using wush_test::data_path;
using wush_test::ids_of;

namespace {

const wush::Tokenizer& llama3() {
  static auto t = wush::load_tokenizer(data_path("tokenizers/llama3/tokenizer.json"));
  return *t;
}
const wush::Tokenizer& gutenberg_json() {
  static auto t = wush::load_tokenizer(data_path("models/gutenberg-llama-16M/tokenizer.json"));
  return *t;
}

}  // namespace

// reference_encodings.json: tiktoken ids without BOS, special-token text encoded as plain text
// (none of its strings contains a Llama-3 special token).
TEST(TokenizerHf, Llama3MatchesTiktokenOnTestStrings) {
  const auto ref = wush_test::load_json("tokenizers/reference_encodings.json");
  ASSERT_EQ(ref["llama3"].size(), 14u);
  for (const auto& c : ref["llama3"]) {
    const std::string text = c["text"];
    EXPECT_EQ(llama3().encode(text, false), ids_of(c["ids"])) << text;
  }
}

TEST(TokenizerHf, Llama3MatchesTiktokenOn20000Chars) {
  const auto ref = wush_test::load_json("tokenizers/reference_encodings.json");
  const std::string text = wush_test::first_chars(
      wush::read_file(data_path("text/" + ref["text_file"].get<std::string>())), ref["text_chars"]);
  const auto want = ids_of(ref["llama3_text_ids"]);
  const auto got = llama3().encode(text, false);
  EXPECT_EQ(got.size(), want.size());
  EXPECT_EQ(wush_test::first_diff(got, want), want.size());
}

TEST(TokenizerHf, Llama3SpecialTokensAndBos) {
  const auto& t = llama3();
  EXPECT_EQ(t.kind(), "hf-bpe");
  EXPECT_EQ(t.vocab_size(), 128256);
  EXPECT_EQ(t.bos_id(), 128000);
  EXPECT_EQ(t.eos_id(), 128001);  // <|end_of_text|>
  EXPECT_TRUE(t.adds_bos());
  // TemplateProcessing prepends <|begin_of_text|>; special tokens in the text are matched first.
  EXPECT_EQ(t.encode("Hello world", true), (std::vector<int32_t>{128000, 9906, 1917}));
  EXPECT_EQ(t.encode("<|begin_of_text|>Hello<|end_of_text|>", false),
            (std::vector<int32_t>{128000, 9906, 128001}));
  // decode drops special tokens; piece() keeps a token's leading space
  EXPECT_EQ(t.decode({128000, 9906, 1917}), "Hello world");
  EXPECT_EQ(t.piece(1917), " world");
  EXPECT_EQ(t.piece(128000), "");
}

// gutenberg-llama-16M/reference_facts.json tokenizer_tests (transformers, no BOS) and the
// SentencePiece ids of reference_encodings.json, except "<s> not special </s>": the
// tokenizer.json marks <s> and </s> as special added tokens, which the tokenizers library splits
// out of the text (SentencePiece encodes them as plain text).
TEST(TokenizerHf, GutenbergJsonMatchesReferenceIds) {
  WUSH_TEST_NEEDS_GUTENBERG();
  const auto facts = wush_test::load_json("models/gutenberg-llama-16M/reference_facts.json");
  ASSERT_EQ(facts["tokenizer_tests"].size(), 11u);
  for (const auto& c : facts["tokenizer_tests"])
    EXPECT_EQ(gutenberg_json().encode(c["text"], false), ids_of(c["ids"])) << c["text"];
  const auto ref = wush_test::load_json("tokenizers/reference_encodings.json");
  for (const auto& c : ref["spm"]) {
    const std::string text = c["text"];
    if (text.find("<s>") != std::string::npos) continue;
    EXPECT_EQ(gutenberg_json().encode(text, false), ids_of(c["ids"])) << text;
  }
  std::vector<int32_t> want = {1};
  for (int32_t id : gutenberg_json().encode(" not special ", false)) want.push_back(id);
  want.push_back(2);
  EXPECT_EQ(gutenberg_json().encode("<s> not special </s>", false), want);
}

TEST(TokenizerHf, GutenbergJsonBosEosAndDecode) {
  WUSH_TEST_NEEDS_GUTENBERG();
  const auto& t = gutenberg_json();
  EXPECT_EQ(t.bos_id(), 1);
  EXPECT_EQ(t.eos_id(), 2);
  EXPECT_EQ(t.vocab_size(), 8192);
  EXPECT_EQ(t.encode("Hello world", true), (std::vector<int32_t>{1, 376, 454, 8128, 953}));
  // Replace ▁ -> " ", ByteFallback, Fuse, Strip one leading space
  EXPECT_EQ(t.decode({1, 376, 454, 8128, 953}), "Hello world");
  EXPECT_EQ(t.piece(13), "\n");  // <0x0A>
}

TEST(TokenizerHf, TinyStoriesMatchesReferenceIds) {
  auto t = wush::load_tokenizer(data_path("models/tinystories656K"));
  const auto facts = wush_test::load_json("models/tinystories656K/reference_facts.json");
  ASSERT_EQ(facts["tokenizer_tests"].size(), 7u);
  for (const auto& c : facts["tokenizer_tests"])
    EXPECT_EQ(t->encode(c["text"], false), ids_of(c["ids"])) << c["text"];
  EXPECT_EQ(t->bos_id(), 1);  // <|start_story|>
  EXPECT_EQ(t->eos_id(), 2);  // <|end_story|> (tokenizer_config.json)
  // greedy_text is the decode of greedy_ids with special tokens kept; ours drops them
  const std::string greedy = facts["greedy_text"];
  const std::string bos = "<|start_story|>";
  ASSERT_EQ(greedy.compare(0, bos.size(), bos), 0);
  EXPECT_EQ(t->decode(ids_of(facts["greedy_ids"])), greedy.substr(bos.size()));
}

// Round trip on text the vocabularies cover only partly (byte fallback, byte-level bytes).
// TinyStories has no byte tokens (unknown characters are dropped) and transformers' Metaspace
// "first" drops a leading space: only its plain text survives.
TEST(TokenizerHf, DecodeInvertsEncode) {
  WUSH_TEST_NEEDS_GUTENBERG();
  const std::vector<std::string> texts = {
      "Hello world", " leading and trailing  ", "naïve café — “quotes”", "日本語のテキスト 🙂👍",
      "Ελληνικά и кириллица\tmixed\n\nlines", "emoji 👩‍👩‍👧 zwj", "x", "a\u00a0b\u200bc", "12345 67.8"};
  auto tiny = wush::load_tokenizer(data_path("models/tinystories656K/tokenizer.json"));
  const std::string story = "Once upon a time, there was a little girl named Lily.\nShe saw a big, red ball!";
  EXPECT_EQ(tiny->decode(tiny->encode(story, true)), story);
  EXPECT_EQ(tiny->decode(tiny->encode("caf\u00e9\t", true)), "caf");
  for (const wush::Tokenizer* t : {&llama3(), &gutenberg_json()})
    for (const std::string& s : texts) EXPECT_EQ(t->decode(t->encode(s, true)), s) << t->kind() << ": " << s;
  for (const std::string& s : texts) {  // byte-level: the pieces concatenate to the text
    std::string streamed;
    for (int32_t id : llama3().encode(s, false)) streamed += llama3().piece(id);
    EXPECT_EQ(streamed, s);
  }
}

// A byte-level BPE built here from a tiny vocab and merges, ids computed by hand.
TEST(TokenizerHf, ByteLevelToyVocab) {
  // Byte-level chars: 'a' 'b' 'c' are themselves, ' ' is "Ġ" (U+0120), '\n' is "Ċ" (U+010A).
  const std::string json = R"({
    "added_tokens": [{"id": 9, "content": "<bos>", "special": true, "normalized": false}],
    "normalizer": null,
    "pre_tokenizer": {"type": "Sequence", "pretokenizers": [
      {"type": "Split", "pattern": {"Regex": " ?[a-z]+|\\s+"}, "behavior": "Isolated", "invert": false},
      {"type": "ByteLevel", "add_prefix_space": false, "use_regex": false}]},
    "post_processor": {"type": "TemplateProcessing",
      "single": [{"SpecialToken": {"id": "<bos>", "type_id": 0}}, {"Sequence": {"id": "A", "type_id": 0}}],
      "special_tokens": {"<bos>": {"id": "<bos>", "ids": [9], "tokens": ["<bos>"]}}},
    "decoder": {"type": "ByteLevel"},
    "model": {"type": "BPE", "byte_fallback": false, "ignore_merges": false,
      "vocab": {"a": 0, "b": 1, "c": 2, "Ġ": 3, "Ċ": 4, "ab": 5, "Ġab": 6, "abc": 7, "bc": 8},
      "merges": [["a", "b"], ["Ġ", "ab"], ["b", "c"], ["ab", "c"]]}})";
  auto t = wush::parse_hf_tokenizer(json, "toy.json", "");
  // "abc": a b c -> (a,b) rank 0 -> ab c -> (ab,c) rank 3 -> abc
  EXPECT_EQ(t->encode("abc", false), (std::vector<int32_t>{7}));
  // " abc": Ġ a b c -> Ġ ab c; (Ġ,ab) rank 1 beats (ab,c) rank 3 -> Ġab c
  EXPECT_EQ(t->encode(" abc", false), (std::vector<int32_t>{6, 2}));
  // "bca": b c a -> (b,c) rank 2 -> bc a; "\n" -> Ċ; BOS from the template
  EXPECT_EQ(t->encode("bca\n", true), (std::vector<int32_t>{9, 8, 0, 4}));
  // the added token is split out before pre-tokenization
  EXPECT_EQ(t->encode("a<bos>b", false), (std::vector<int32_t>{0, 9, 1}));
  EXPECT_EQ(t->decode({6, 2, 4, 8}), " abc\nbc");
  EXPECT_EQ(t->bos_id(), 9);
  EXPECT_EQ(t->vocab_size(), 10);
}

TEST(TokenizerHf, UnsupportedComponentIsNamed) {
  const std::string json = R"({"normalizer": {"type": "BertNormalizer"}, "model": {"type": "BPE", "vocab": {"a": 0}, "merges": []}})";
  try {
    wush::parse_hf_tokenizer(json, "odd.json", "");
    FAIL() << "no throw";
  } catch (const wush::Error& e) {
    EXPECT_NE(std::string(e.what()).find("odd.json"), std::string::npos) << e.what();
    EXPECT_NE(std::string(e.what()).find("normalizer 'BertNormalizer'"), std::string::npos) << e.what();
  }
  EXPECT_THROW(wush::parse_hf_tokenizer(R"({"model": {"type": "Unigram", "vocab": []}})", "u.json", ""),
               wush::Error);
}

// NFC (Qwen's normalizer): "e" + U+0301 composes to U+00E9 before the BPE sees it.
TEST(TokenizerHf, NfcNormalizer) {
  const std::string json = R"({"normalizer": {"type": "NFC"},
    "model": {"type": "BPE", "vocab": {"\u00e9": 0, "e": 1, "\u0301": 2, "x": 3}, "merges": []}})";
  auto t = wush::parse_hf_tokenizer(json, "nfc.json", "");
  EXPECT_EQ(t->encode("xe\u0301", false), (std::vector<int32_t>{3, 0}));
  EXPECT_EQ(t->encode("x\u00e9", false), (std::vector<int32_t>{3, 0}));
  EXPECT_EQ(t->decode({3, 1, 2}), "xe\u0301");
}

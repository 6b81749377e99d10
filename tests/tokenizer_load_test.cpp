// load_tokenizer(): dispatch by path and clear errors for files that are not tokenizers.
#include <gtest/gtest.h>


#include "core/atomic_file.h"
#include "core/error.h"
#include "core/paths.h"
#include "model/tokenizer.h"
#include "tokenizer_test_util.h"

using wush_test::data_path;

namespace {
// The wush::Error message of load_tokenizer(path), "" if it loads.
std::string load_error(const std::string& path) {
  try {
    wush::load_tokenizer(path);
  } catch (const wush::Error& e) {
    return e.what();
  }
  return "";
}

std::string temp_file(const std::string& name, const std::string& data) {
  std::string dir = wush::path_join(wush::temp_dir(), "wush_tokenizer_load_test");
  wush::make_dirs(dir);
  std::string path = wush::path_join(dir, name);
  wush::write_file_atomic(path, data);
  return path;
}
}  // namespace

TEST(TokenizerLoad, DispatchesByPath) {
  WUSH_TEST_NEEDS_GUTENBERG();
  WUSH_TEST_NEEDS_SENTENCEPIECE();
  EXPECT_EQ(wush::load_tokenizer(data_path("models/gutenberg-llama-16M"))->kind(), "hf-bpe");  // json first
  EXPECT_EQ(wush::load_tokenizer(data_path("models/gutenberg-llama-16M/tokenizer.model"))->kind(), "sentencepiece");
  EXPECT_EQ(wush::load_tokenizer(data_path("tokenizers/llama3/tokenizer.json"))->kind(), "hf-bpe");
  // a SentencePiece model without the .model suffix is recognised by its protobuf header
  std::string copy = temp_file("spm_without_suffix", wush::read_file(data_path("models/llama2_tokenizer.model")));
  EXPECT_EQ(wush::load_tokenizer(copy)->kind(), "sentencepiece");
  // a directory with only tokenizer.model
  std::string dir = wush::path_join(wush::path_join(wush::temp_dir(), "wush_tokenizer_load_test"), "spm_dir");
  wush::make_dirs(dir);
  wush::write_file_atomic(wush::path_join(dir, "tokenizer.model"), wush::read_file(copy));
  EXPECT_EQ(wush::load_tokenizer(dir)->encode("Hello", true), (std::vector<int32_t>{1, 15043}));
}

TEST(TokenizerLoad, BadFilesNameTheFile) {
  WUSH_TEST_NEEDS_GUTENBERG();
  WUSH_TEST_NEEDS_SENTENCEPIECE();
  const std::string shard = data_path("models/gutenberg-llama-16M/model-00003-of-00003.safetensors");
  std::string e = load_error(shard);
  EXPECT_NE(e.find(shard), std::string::npos) << e;
  EXPECT_NE(e.find("safetensors"), std::string::npos) << e;

  const std::string json = wush::read_file(data_path("models/tinystories656K/tokenizer.json"));
  std::string truncated = temp_file("truncated.json", json.substr(0, json.size() / 2));
  e = load_error(truncated);
  EXPECT_NE(e.find(truncated), std::string::npos) << e;
  EXPECT_NE(e.find("not valid JSON"), std::string::npos) << e;

  const std::string config = data_path("models/gutenberg-llama-16M/config.json");
  e = load_error(config);
  EXPECT_NE(e.find(config), std::string::npos) << e;
  EXPECT_NE(e.find("no \"model\""), std::string::npos) << e;

  std::string garbage = temp_file("garbage.model", std::string("\x0a\x05hello\x0a\xff\xff", 10));
  e = load_error(garbage);
  EXPECT_NE(e.find(garbage), std::string::npos) << e;
  EXPECT_NE(e.find("SentencePiece"), std::string::npos) << e;

  std::string empty = temp_file("empty.bin", "");
  EXPECT_NE(load_error(empty).find(empty), std::string::npos);

  const std::string missing = data_path("models/no-such-tokenizer.json");
  EXPECT_NE(load_error(missing).find(missing), std::string::npos);

  std::string no_tok = wush::path_join(wush::path_join(wush::temp_dir(), "wush_tokenizer_load_test"), "empty_dir");
  wush::make_dirs(no_tok);
  e = load_error(no_tok);
  EXPECT_NE(e.find("no tokenizer.json or tokenizer.model"), std::string::npos) << e;
}

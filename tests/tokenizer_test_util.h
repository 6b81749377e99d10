// Shared helpers of the tokenizer tests: data paths and the reference files of ../shared/data.
#pragma once
#include <gtest/gtest.h>

#include <nlohmann/json.hpp>
#include <string>
#include <vector>

#include "core/atomic_file.h"
#include "core/runtime.h"
#include "model/tokenizer.h"

// SentencePiece runs in a module loaded with RTLD_DEEPBIND, which AddressSanitizer refuses.
#if defined(__SANITIZE_ADDRESS__)
#define WUSH_TEST_NEEDS_SENTENCEPIECE() GTEST_SKIP() << "SentencePiece module unavailable under ASan"
#else
#define WUSH_TEST_NEEDS_SENTENCEPIECE() (void)0
#endif

// Skips the test, naming the path, when an optional data set is absent (the GPU machine carries
// ../shared/data without models/gutenberg-llama-16M: docs/results/gpu.md).
#define WUSH_TEST_NEEDS_DATA(rel)                                                      \
  do {                                                                                 \
    if (!wush::path_exists(wush_test::data_path(rel))) GTEST_SKIP() << "no " << (rel); \
  } while (0)
#define WUSH_TEST_NEEDS_GUTENBERG() WUSH_TEST_NEEDS_DATA("models/gutenberg-llama-16M/tokenizer.json")

namespace wush_test {

inline std::string data_path(const std::string& rel) {
  std::string dir = wush::default_data_dir();
  EXPECT_FALSE(dir.empty()) << "no data directory (../shared/data or $WUSH_DATA)";
  return dir + "/" + rel;
}

inline nlohmann::json load_json(const std::string& rel) {
  return nlohmann::json::parse(wush::read_file(data_path(rel)));
}

inline std::vector<int32_t> ids_of(const nlohmann::json& j) { return j.get<std::vector<int32_t>>(); }

// The first n Unicode characters (code points, as Python counts them) of UTF-8 text.
inline std::string first_chars(const std::string& s, size_t n) {
  size_t i = 0;
  for (size_t c = 0; c < n && i < s.size(); ++c) {
    ++i;
    while (i < s.size() && (static_cast<unsigned char>(s[i]) & 0xC0) == 0x80) ++i;
  }
  return s.substr(0, i);
}

// Index of the first difference of two id lists (or the shorter length), for failure messages.
inline size_t first_diff(const std::vector<int32_t>& a, const std::vector<int32_t>& b) {
  size_t i = 0;
  while (i < a.size() && i < b.size() && a[i] == b[i]) ++i;
  return i;
}

}  // namespace wush_test

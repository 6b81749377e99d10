// A PCRE2 regex (UTF + Unicode properties, JIT) for the pre-tokenizer Split of tokenizer.json.
#pragma once
#include <string>
#include <utility>
#include <vector>

namespace wush {

class Regex {
 public:
  // origin names the file in errors (bad pattern).
  Regex(const std::string& pattern, const std::string& origin);
  ~Regex();
  Regex(const Regex&) = delete;
  Regex& operator=(const Regex&) = delete;
  // Every non-overlapping match [begin, end) of s, left to right (empty matches skipped).
  // s must be valid UTF-8 (wush::Error otherwise).
  std::vector<std::pair<size_t, size_t>> find_all(const std::string& s) const;

 private:
  void* code_ = nullptr;  // pcre2_code_8
  std::string pattern_, origin_;
};

}  // namespace wush

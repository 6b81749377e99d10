#define PCRE2_CODE_UNIT_WIDTH 8
#include "model/regex_split.h"

#include <pcre2.h>

#include "core/error.h"

namespace wush {
namespace {
std::string pcre2_message(int code) {
  PCRE2_UCHAR buf[256];
  pcre2_get_error_message(code, buf, sizeof(buf));
  return reinterpret_cast<char*>(buf);
}
}  // namespace

Regex::Regex(const std::string& pattern, const std::string& origin) : pattern_(pattern), origin_(origin) {
  int err = 0;
  PCRE2_SIZE offset = 0;
  // UCP: \s, \d, \w and POSIX classes follow Unicode properties, as in the Rust regex engines
  // the reference tokenizers (tiktoken, Hugging Face) use.
  pcre2_code* code = pcre2_compile(reinterpret_cast<PCRE2_SPTR>(pattern.data()), pattern.size(),
                                   PCRE2_UTF | PCRE2_UCP, &err, &offset, nullptr);
  WUSH_CHECK(code, "%s: pre-tokenizer regex does not compile at offset %zu (%s): %s", origin.c_str(),
             static_cast<size_t>(offset), pcre2_message(err).c_str(), pattern.c_str());
  pcre2_jit_compile(code, PCRE2_JIT_COMPLETE);  // best effort: falls back to the interpreter
  code_ = code;
}

Regex::~Regex() { pcre2_code_free(static_cast<pcre2_code*>(code_)); }

std::vector<std::pair<size_t, size_t>> Regex::find_all(const std::string& s) const {
  std::vector<std::pair<size_t, size_t>> out;
  auto* code = static_cast<pcre2_code*>(code_);
  pcre2_match_data* md = pcre2_match_data_create_from_pattern(code, nullptr);
  auto subject = reinterpret_cast<PCRE2_SPTR>(s.data());
  size_t pos = 0;
  uint32_t options = 0;  // UTF validity is checked on the first call only
  while (pos <= s.size()) {
    int rc = pcre2_match(code, subject, s.size(), pos, options, md, nullptr);
    if (rc == PCRE2_ERROR_NOMATCH) break;
    if (rc < 0) {
      pcre2_match_data_free(md);
      WUSH_FAIL("%s: pre-tokenizer regex failed on the input text: %s", origin_.c_str(),
                pcre2_message(rc).c_str());
    }
    options = PCRE2_NO_UTF_CHECK;
    PCRE2_SIZE* ov = pcre2_get_ovector_pointer(md);
    size_t b = ov[0], e = ov[1];
    if (e > b) {
      out.emplace_back(b, e);
      pos = e;
    } else {  // empty match: step one UTF-8 char
      pos = b + 1;
      while (pos < s.size() && (static_cast<unsigned char>(s[pos]) & 0xC0) == 0x80) ++pos;
      if (b >= s.size()) break;
    }
  }
  pcre2_match_data_free(md);
  return out;
}

}  // namespace wush

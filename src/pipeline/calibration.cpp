#include "pipeline/calibration.h"

#include <algorithm>
#include <cstdio>
#include <random>

#include "core/atomic_file.h"
#include "core/error.h"

namespace wush {

static std::string strip(const std::string& s) {
  size_t a = s.find_first_not_of(" \t\r\n"), b = s.find_last_not_of(" \t\r\n");
  return a == std::string::npos ? "" : s.substr(a, b - a + 1);
}

std::vector<int32_t> tokenize_corpus(const Tokenizer& tok, const std::string& text) {
  static const std::string sep = "<|endoftext|>";
  std::vector<int32_t> out;
  if (text.find(sep) == std::string::npos) return tok.encode(text, true);
  size_t pos = 0;
  while (pos <= text.size()) {
    size_t e = text.find(sep, pos);
    std::string story = strip(text.substr(pos, e == std::string::npos ? std::string::npos : e - pos));
    if (!story.empty()) {
      auto ids = tok.encode(story, true);
      out.insert(out.end(), ids.begin(), ids.end());
    }
    if (e == std::string::npos) break;
    pos = e + sep.size();
  }
  return out;
}

CalibrationSet load_calibration(const Tokenizer& tok, const std::string& file, const CalibrationOptions& opt) {
  WUSH_CHECK(opt.nsamples > 0, "--nsamples must be positive, got %lld", (long long)opt.nsamples);
  WUSH_CHECK(opt.seqlen > 1, "--seqlen must be at least 2, got %lld", (long long)opt.seqlen);
  std::string text = read_file(file);
  WUSH_CHECK(!strip(text).empty(), "%s: calibration file is empty", file.c_str());
  const size_t nul = text.find('\0');
  WUSH_CHECK(nul == std::string::npos, "%s: not a text file (NUL byte at offset %zu); --calib wants a *_calib.txt text",
             file.c_str(), nul);
  std::vector<int32_t> ids = tokenize_corpus(tok, text);
  int64_t avail = int64_t(ids.size()) / opt.seqlen;
  WUSH_CHECK(avail > 0, "%s: only %zu tokens, fewer than one window of --seqlen %lld", file.c_str(),
             ids.size(), (long long)opt.seqlen);
  CalibrationSet cs;
  cs.file = file;
  cs.windows_available = avail;
  std::vector<int64_t> pick(avail);
  for (int64_t i = 0; i < avail; ++i) pick[i] = i;
  if (opt.seed) {
    std::mt19937_64 rng(*opt.seed);
    std::shuffle(pick.begin(), pick.end(), rng);
  }
  int64_t n = std::min(avail, opt.nsamples);
  if (n < opt.nsamples)
    cs.note = strfmt("%s: only %lld windows of %lld tokens, fewer than --nsamples %lld: using all",
                     file.c_str(), (long long)avail, (long long)opt.seqlen, (long long)opt.nsamples);
  pick.resize(n);
  if (opt.seed) std::sort(pick.begin(), pick.end());
  cs.tokens = at::empty({n, opt.seqlen}, at::kLong);
  auto acc = cs.tokens.accessor<int64_t, 2>();
  for (int64_t i = 0; i < n; ++i)
    for (int64_t t = 0; t < opt.seqlen; ++t) acc[i][t] = ids[pick[i] * opt.seqlen + t];
  return cs;
}

}  // namespace wush

#include "model/hf_pipeline.h"

#include <cctype>

#include <unicode/normalizer2.h>
#include <unicode/unistr.h>

#include "core/error.h"
#include "model/bpe.h"

namespace wush {
namespace {

using nlohmann::json;

std::string replace_all(const std::string& s, const std::string& from, const std::string& to) {
  if (from.empty()) return s;
  std::string out;
  out.reserve(s.size());
  size_t i = 0;
  for (size_t j; (j = s.find(from, i)) != std::string::npos; i = j + from.size()) {
    out.append(s, i, j - i);
    out += to;
  }
  out.append(s, i, std::string::npos);
  return out;
}

std::string type_of(const json& j, const char* stage, const std::string& origin) {
  WUSH_CHECK(j.is_object() && j.contains("type"), "%s: %s entry without a \"type\"", origin.c_str(), stage);
  return j.at("type").get<std::string>();
}

[[noreturn]] void unsupported(const char* stage, const std::string& what, const std::string& origin) {
  WUSH_FAIL("%s: unsupported %s '%s' (wush supports the BPE tokenizers of GPT-2/Llama-3/Qwen and "
            "SentencePiece-style BPE, see src/model/hf_pipeline.h)", origin.c_str(), stage, what.c_str());
}

// The pattern of Split / Replace: {"String": s} or {"Regex": r}; as a PCRE2 pattern.
std::string pattern_regex(const json& p, const std::string& origin) {
  if (p.contains("Regex")) return p.at("Regex").get<std::string>();
  if (p.contains("String")) return "\\Q" + p.at("String").get<std::string>() + "\\E";
  WUSH_FAIL("%s: pattern without \"String\" or \"Regex\": %s", origin.c_str(), p.dump().c_str());
}

std::string string_pattern(const json& p, const char* stage, const std::string& origin) {
  if (!p.contains("String")) unsupported(stage, "Replace with a Regex pattern", origin);
  return p.at("String").get<std::string>();
}

// Unicode normalization form `form` ("NFC", "NFD", "NFKC", "NFKD") of UTF-8 text, by ICU.
std::string unicode_normalize(const std::string& s, const std::string& form) {
  bool ascii = true;  // ASCII text is in every normalization form
  for (unsigned char c : s) ascii = ascii && c < 0x80;
  if (ascii) return s;
  UErrorCode err = U_ZERO_ERROR;
  const icu::Normalizer2* n = form == "NFC"    ? icu::Normalizer2::getNFCInstance(err)
                              : form == "NFD"  ? icu::Normalizer2::getNFDInstance(err)
                              : form == "NFKC" ? icu::Normalizer2::getNFKCInstance(err)
                                               : icu::Normalizer2::getNFKDInstance(err);
  WUSH_CHECK(U_SUCCESS(err), "ICU %s normalizer unavailable: %s", form.c_str(), u_errorName(err));
  icu::UnicodeString out = n->normalize(icu::UnicodeString::fromUTF8(s), err);
  WUSH_CHECK(U_SUCCESS(err), "ICU %s normalization failed: %s", form.c_str(), u_errorName(err));
  std::string utf8;
  out.toUTF8String(utf8);
  return utf8;
}

const char* const kGpt2Pattern =
    R"('s|'t|'re|'ve|'m|'ll|'d| ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+|\s+(?!\S)|\s+)";

}  // namespace

// ---- normalizer --------------------------------------------------------------------------------
HfNormalizer::HfNormalizer(const json& j, const std::string& origin) {
  if (!j.is_null()) add(j, origin);
}

void HfNormalizer::add(const json& j, const std::string& origin) {
  const std::string type = type_of(j, "normalizer", origin);
  if (type == "Sequence") {
    for (const json& n : j.at("normalizers")) add(n, origin);
  } else if (type == "Prepend") {
    steps_.push_back({Step::Prepend, j.at("prepend").get<std::string>(), ""});
  } else if (type == "Replace") {
    steps_.push_back({Step::Replace, string_pattern(j.at("pattern"), "normalizer", origin),
                      j.at("content").get<std::string>()});
  } else if (type == "NFC" || type == "NFD" || type == "NFKC" || type == "NFKD") {
    steps_.push_back({Step::Unicode, type, ""});
  } else {
    unsupported("normalizer", type, origin);
  }
}

std::string HfNormalizer::apply(const std::string& s) const {
  std::string out = s;
  for (const Step& st : steps_) {
    if (st.kind == Step::Prepend) {
      if (!out.empty()) out = st.a + out;  // Prepend leaves an empty string empty
    } else if (st.kind == Step::Unicode) {
      out = unicode_normalize(out, st.a);
    } else {
      out = replace_all(out, st.a, st.b);
    }
  }
  return out;
}

// ---- pre-tokenizer -----------------------------------------------------------------------------
HfPreTokenizer::HfPreTokenizer(const json& j, const std::string& origin) {
  if (!j.is_null()) add(j, origin);
}

void HfPreTokenizer::add(const json& j, const std::string& origin) {
  const std::string type = type_of(j, "pre_tokenizer", origin);
  Step st{};
  if (type == "Sequence") {
    for (const json& p : j.at("pretokenizers")) add(p, origin);
    return;
  } else if (type == "Split") {
    if (j.value("invert", false)) unsupported("pre_tokenizer", "Split with invert", origin);
    st.kind = Step::Split;
    st.regex = std::make_shared<Regex>(pattern_regex(j.at("pattern"), origin), origin);
    const std::string b = j.at("behavior").get<std::string>();
    if (b == "Isolated") st.behavior = Step::Isolated;
    else if (b == "Removed") st.behavior = Step::Removed;
    else if (b == "MergedWithPrevious") st.behavior = Step::MergedWithPrevious;
    else if (b == "MergedWithNext") st.behavior = Step::MergedWithNext;
    else unsupported("pre_tokenizer", "Split behavior " + b, origin);
  } else if (type == "ByteLevel") {
    byte_level_ = true;
    if (j.value("add_prefix_space", false)) {
      Step prefix{};
      prefix.kind = Step::ByteLevelPrefix;
      steps_.push_back(prefix);
    }
    if (!j.value("use_regex", true)) return;
    st.kind = Step::Split;
    st.regex = std::make_shared<Regex>(kGpt2Pattern, origin);
  } else if (type == "Metaspace") {
    st.kind = Step::Metaspace;
    st.replacement = j.value("replacement", std::string("\xE2\x96\x81"));
    std::string scheme = j.contains("prepend_scheme") ? j.at("prepend_scheme").get<std::string>()
                         : j.value("add_prefix_space", true) ? "always" : "never";
    if (scheme == "always") st.prepend = Step::Always;
    else if (scheme == "first") st.prepend = Step::First;
    else if (scheme == "never") st.prepend = Step::Never;
    else unsupported("pre_tokenizer", "Metaspace prepend_scheme " + scheme, origin);
    st.split_words = j.value("split", true);
  } else {
    unsupported("pre_tokenizer", type, origin);
  }
  steps_.push_back(std::move(st));
}

void HfPreTokenizer::split_by(const Step& st, const std::string& s, std::vector<std::string>& out) {
  size_t last = 0;
  std::string pending;  // MergedWithNext: the match waiting for the text after it
  auto emit = [&](std::string piece) {
    if (!piece.empty()) out.push_back(std::move(piece));
  };
  for (auto [b, e] : st.regex->find_all(s)) {
    std::string gap = s.substr(last, b - last), match = s.substr(b, e - b);
    switch (st.behavior) {
      case Step::Isolated: emit(gap); emit(match); break;
      case Step::Removed: emit(gap); break;
      case Step::MergedWithPrevious: emit(gap + match); break;
      case Step::MergedWithNext: emit(pending + gap); pending = match; break;
    }
    last = e;
  }
  emit(pending + s.substr(last));
}

std::vector<std::string> HfPreTokenizer::split(const std::string& s, bool at_start) const {
  std::vector<std::string> words{s}, next;
  for (const Step& st : steps_) {
    next.clear();
    for (size_t w = 0; w < words.size(); ++w) {
      const std::string& word = words[w];
      if (st.kind == Step::Split) {
        split_by(st, word, next);
      } else if (st.kind == Step::ByteLevelPrefix) {
        next.push_back(word.empty() || word[0] == ' ' ? word : " " + word);
      } else {  // Metaspace: spaces -> replacement, prefix, then split before each replacement
        std::string m = replace_all(word, " ", st.replacement);
        bool first = at_start && w == 0;
        bool prepend = st.prepend == Step::Always || (st.prepend == Step::First && first);
        if (prepend && m.compare(0, st.replacement.size(), st.replacement) != 0) m = st.replacement + m;
        if (!st.split_words) {
          next.push_back(std::move(m));
          continue;
        }
        size_t begin = 0;
        for (size_t i = st.replacement.size(); (i = m.find(st.replacement, i)) != std::string::npos;
             i += st.replacement.size()) {
          next.push_back(m.substr(begin, i - begin));
          begin = i;
        }
        if (begin < m.size()) next.push_back(m.substr(begin));
      }
    }
    words.swap(next);
  }
  return words;
}

// ---- decoder -----------------------------------------------------------------------------------
HfDecoder::HfDecoder(const json& j, const std::string& origin) {
  if (!j.is_null()) add(j, origin);
}

void HfDecoder::add(const json& j, const std::string& origin) {
  const std::string type = type_of(j, "decoder", origin);
  Step st{};
  if (type == "Sequence") {
    for (const json& d : j.at("decoders")) add(d, origin);
    return;
  } else if (type == "ByteLevel") {
    st.kind = Step::ByteLevel;
  } else if (type == "Replace") {
    st.kind = Step::Replace;
    st.a = string_pattern(j.at("pattern"), "decoder", origin);
    st.b = j.at("content").get<std::string>();
  } else if (type == "ByteFallback") {
    st.kind = Step::ByteFallback;
  } else if (type == "Fuse") {
    st.kind = Step::Fuse;
  } else if (type == "Strip") {
    st.kind = Step::Strip;
    st.a = j.at("content").get<std::string>();
    st.start = j.value("start", 0);
    st.stop = j.value("stop", 0);
  } else if (type == "Metaspace") {
    st.kind = Step::Metaspace;
    st.a = j.value("replacement", std::string("\xE2\x96\x81"));
    std::string scheme = j.contains("prepend_scheme") ? j.at("prepend_scheme").get<std::string>()
                         : j.value("add_prefix_space", true) ? "always" : "never";
    st.prepend = scheme != "never";
  } else {
    unsupported("decoder", type, origin);
  }
  steps_.push_back(std::move(st));
}

std::string HfDecoder::decode(std::vector<std::string> tokens, bool continuation) const {
  for (const Step& st : steps_) {
    switch (st.kind) {
      case Step::ByteLevel:  // chars of GPT-2's byte map -> bytes; a token with others stays as is
        for (std::string& t : tokens) {
          std::string bytes;
          bool ok = true;
          for (size_t i = 0; i < t.size() && ok;) {
            size_t len = utf8_char_len(t, i);
            int b = byte_level_byte(utf8_decode(t, i, len));
            ok = b >= 0;
            bytes += static_cast<char>(b);
            i += len;
          }
          if (ok) t.swap(bytes);
        }
        break;
      case Step::Replace:
        for (std::string& t : tokens) t = replace_all(t, st.a, st.b);
        break;
      case Step::ByteFallback:  // "<0xXX>" -> that byte (raw: partial UTF-8 streams correctly)
        for (std::string& t : tokens) {
          if (t.size() == 6 && t.compare(0, 3, "<0x") == 0 && t[5] == '>' &&
              std::isxdigit(static_cast<unsigned char>(t[3])) && std::isxdigit(static_cast<unsigned char>(t[4])))
            t = std::string(1, static_cast<char>(std::stoi(t.substr(3, 2), nullptr, 16)));
        }
        break;
      case Step::Fuse: {
        std::string all;
        for (const std::string& t : tokens) all += t;
        tokens.assign(1, all);
        break;
      }
      case Step::Strip:  // the dummy-prefix space: a first-token rule
        if (continuation) break;
        for (std::string& t : tokens) {
          size_t b = 0, e = t.size();
          for (int k = 0; k < st.start && t.compare(b, st.a.size(), st.a) == 0 && b < e; ++k) b += st.a.size();
          for (int k = 0; k < st.stop && e >= b + st.a.size() && t.compare(e - st.a.size(), st.a.size(), st.a) == 0; ++k)
            e -= st.a.size();
          t = t.substr(b, e - b);
        }
        break;
      case Step::Metaspace:
        for (size_t i = 0; i < tokens.size(); ++i) {
          tokens[i] = replace_all(tokens[i], st.a, " ");
          if (i == 0 && !continuation && st.prepend && !tokens[i].empty() && tokens[i][0] == ' ')
            tokens[i].erase(0, 1);
        }
        break;
    }
  }
  std::string out;
  for (const std::string& t : tokens) out += t;
  return out;
}

}  // namespace wush

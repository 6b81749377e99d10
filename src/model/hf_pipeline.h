// The text stages of a Hugging Face tokenizer.json around its BPE model: normalizer, pre-tokenizer
// and decoder, each parsed from its JSON object ("Sequence" flattened into steps). Supported:
//   normalizer:    Prepend, Replace (String pattern), NFC, NFD, NFKC, NFKD (ICU), Sequence
//   pre_tokenizer: Split (Regex/String pattern; Isolated, Removed, MergedWithPrevious,
//                  MergedWithNext), ByteLevel, Metaspace, Sequence
//   decoder:       ByteLevel, Replace (String pattern), ByteFallback, Fuse, Strip, Metaspace, Sequence
// Anything else is refused with a wush::Error naming the file and the component.
#pragma once
#include <memory>
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

#include "model/regex_split.h"

namespace wush {

class HfNormalizer {
 public:
  HfNormalizer(const nlohmann::json& j, const std::string& origin);  // j may be null (identity)
  std::string apply(const std::string& s) const;
  bool identity() const { return steps_.empty(); }

 private:
  struct Step {
    enum Kind { Prepend, Replace, Unicode } kind;
    std::string a, b;  // Prepend: a = prefix; Replace: a -> b; Unicode: a = form ("NFC", ...)
  };
  void add(const nlohmann::json& j, const std::string& origin);
  std::vector<Step> steps_;
};

class HfPreTokenizer {
 public:
  HfPreTokenizer(const nlohmann::json& j, const std::string& origin);  // j may be null
  // Splits one normalized piece into words. at_start: the piece begins the input text
  // (Metaspace prepend_scheme "first").
  std::vector<std::string> split(const std::string& s, bool at_start) const;
  // A ByteLevel step is present: words are BPE'd as bytes through GPT-2's byte map.
  bool byte_level() const { return byte_level_; }

 private:
  struct Step {
    enum Kind { Split, ByteLevelPrefix, Metaspace } kind;
    std::shared_ptr<Regex> regex;  // Split
    enum Behavior { Isolated, Removed, MergedWithPrevious, MergedWithNext } behavior = Isolated;
    std::string replacement;       // Metaspace
    enum Prepend { Always, First, Never } prepend = Always;
    bool split_words = true;       // Metaspace "split"
  };
  void add(const nlohmann::json& j, const std::string& origin);
  static void split_by(const Step& st, const std::string& s, std::vector<std::string>& out);
  std::vector<Step> steps_;
  bool byte_level_ = false;
};

class HfDecoder {
 public:
  HfDecoder(const nlohmann::json& j, const std::string& origin);  // j may be null (concatenate)
  // Token strings (as in the vocab) -> text. continuation: the tokens continue a sequence, so the
  // first-token rules (Strip of the dummy-prefix space, Metaspace's leading space) do not apply.
  std::string decode(std::vector<std::string> tokens, bool continuation) const;

 private:
  struct Step {
    enum Kind { ByteLevel, Replace, ByteFallback, Fuse, Strip, Metaspace } kind;
    std::string a, b;  // Replace: a -> b; Strip: a = content; Metaspace: a = replacement
    int start = 0, stop = 0;
    bool prepend = true;  // Metaspace: strip the first token's leading space
  };
  void add(const nlohmann::json& j, const std::string& origin);
  std::vector<Step> steps_;
};

}  // namespace wush

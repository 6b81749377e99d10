// Hugging Face tokenizer.json with a BPE model, the two kinds in use:
//  - byte-level (GPT-2, Llama-3, Qwen): Split regex pre-tokenizer + ByteLevel; words are BPE'd
//    over bytes mapped through GPT-2's byte <-> unicode table;
//  - SentencePiece-style (Llama-2 conversions, gutenberg-llama-16M, TinyStories): "▁" normalizer or
//    Metaspace, BPE over UTF-8 chars with <0xXX> byte fallback and unk.
// Encoding follows the tokenizers library: added tokens are split out first (leftmost-longest;
// normalized=false ones on the raw text, normalized=true ones, with their content normalized, on
// the normalized text), then normalizer -> pre-tokenizer -> BPE per word (ignore_merges: a word
// in the vocab is one token) -> post-processor (TemplateProcessing: BOS/EOS around the ids).
#include <nlohmann/json.hpp>

#include "core/atomic_file.h"
#include "core/error.h"
#include "model/bpe.h"
#include "model/hf_pipeline.h"
#include "model/tokenizer_loaders.h"

namespace wush {
namespace {

using nlohmann::json;

// Added tokens found in a text: leftmost match wins, the longest at that position.
class AddedTokenMatcher {
 public:
  void add(const std::string& content, int32_t id) {
    if (content.empty()) return;
    auto& list = by_first_[static_cast<unsigned char>(content[0])];
    list.emplace_back(content, id);
    std::stable_sort(list.begin(), list.end(),
                     [](const auto& a, const auto& b) { return a.first.size() > b.first.size(); });
    any_ = true;
  }
  // Calls text_fn(piece) for text between matches and id_fn(id) for each match, in order.
  template <class TextFn, class IdFn>
  void split(const std::string& s, TextFn text_fn, IdFn id_fn) const {
    size_t last = 0;
    if (any_) {
      for (size_t i = 0; i < s.size();) {
        const std::pair<std::string, int32_t>* hit = nullptr;
        for (const auto& cand : by_first_[static_cast<unsigned char>(s[i])])
          if (s.compare(i, cand.first.size(), cand.first) == 0) {
            hit = &cand;
            break;
          }
        if (!hit) {
          ++i;
          continue;
        }
        if (i > last) text_fn(s.substr(last, i - last), last == 0);
        id_fn(hit->second);
        i += hit->first.size();
        last = i;
      }
    }
    if (last < s.size()) text_fn(last == 0 ? s : s.substr(last), last == 0);
  }

 private:
  std::vector<std::pair<std::string, int32_t>> by_first_[256];
  bool any_ = false;
};

std::string token_name(const json& j) {  // tokenizer_config.json: "x" or {"content": "x"}
  if (j.is_string()) return j.get<std::string>();
  if (j.is_object() && j.contains("content")) return j.at("content").get<std::string>();
  return "";
}

class HfBpeTokenizer : public Tokenizer {
 public:
  HfBpeTokenizer(const json& j, const std::string& origin, const json& cfg)
      : origin_(origin),
        normalizer_(j.value("normalizer", json()), origin),
        pre_(j.value("pre_tokenizer", json()), origin),
        decoder_(j.value("decoder", json()), origin) {
    load_model(j.at("model"));
    load_added_tokens(j.value("added_tokens", json::array()));
    load_post_processor(j.value("post_processor", json()));
    find_bos_eos(cfg);
  }

  std::vector<int32_t> encode(const std::string& text, bool add_bos) const override {
    std::vector<int32_t> ids;
    if (add_bos) ids = prefix_;
    auto push_id = [&](int32_t id) { ids.push_back(id); };
    raw_added_.split(
        text,
        [&](const std::string& raw, bool at_start) {
          normalized_added_.split(
              normalizer_.apply(raw),
              [&](const std::string& piece, bool piece_first) {
                for (const std::string& word : pre_.split(piece, at_start && piece_first))
                  encode_word(word, ids);
              },
              push_id);
        },
        push_id);
    if (add_bos) ids.insert(ids.end(), suffix_.begin(), suffix_.end());
    return ids;
  }

  std::string decode(const std::vector<int32_t>& ids) const override {
    std::vector<std::string> toks;
    toks.reserve(ids.size());
    for (int32_t id : ids) {
      check_id(id);
      if (!special_[id]) toks.push_back(tokens_[id]);
    }
    return decoder_.decode(std::move(toks), false);
  }
  std::string piece(int32_t id) const override {
    check_id(id);
    return special_[id] ? std::string() : decoder_.decode({tokens_[id]}, true);
  }
  int32_t vocab_size() const override { return static_cast<int32_t>(tokens_.size()); }
  int32_t bos_id() const override { return bos_; }
  int32_t eos_id() const override { return eos_; }
  bool adds_bos() const override { return !prefix_.empty() || !suffix_.empty(); }
  std::string kind() const override { return "hf-bpe"; }

 private:
  void check_id(int32_t id) const {
    WUSH_CHECK(id >= 0 && id < vocab_size(), "%s: token id %d out of range [0, %d)", origin_.c_str(), id,
               vocab_size());
  }

  void set_token(int32_t id, const std::string& s) {
    WUSH_CHECK(id >= 0 && id < (1 << 30), "%s: token '%s' has invalid id %d", origin_.c_str(), s.c_str(), id);
    if (static_cast<size_t>(id) >= tokens_.size()) {
      tokens_.resize(id + 1);
      special_.resize(id + 1, false);
    }
    tokens_[id] = s;
  }

  int32_t vocab_id(const std::string& s) const {
    auto it = vocab_.find(s);
    return it == vocab_.end() ? -1 : it->second;
  }

  void load_model(const json& m) {
    const std::string type = m.value("type", std::string("BPE"));
    WUSH_CHECK(type == "BPE", "%s: unsupported model type '%s' (only BPE)", origin_.c_str(), type.c_str());
    auto nonempty = [&](const char* k) { return m.contains(k) && !m[k].is_null() && m[k] != ""; };
    for (const char* k : {"continuing_subword_prefix", "end_of_word_suffix"})
      WUSH_CHECK(!nonempty(k), "%s: unsupported BPE option %s", origin_.c_str(), k);
    WUSH_CHECK(!m.contains("dropout") || m["dropout"].is_null() || m["dropout"].get<double>() == 0.0,
               "%s: unsupported BPE option dropout (training-time only)", origin_.c_str());
    byte_fallback_ = m.value("byte_fallback", false);
    ignore_merges_ = m.value("ignore_merges", false);
    fuse_unk_ = m.value("fuse_unk", false);
    for (const auto& [tok, id] : m.at("vocab").items()) {
      vocab_[tok] = id.get<int32_t>();
      set_token(id.get<int32_t>(), tok);
    }
    WUSH_CHECK(!vocab_.empty(), "%s: empty BPE vocab", origin_.c_str());
    if (m.contains("unk_token") && m["unk_token"].is_string()) {
      unk_ = vocab_id(m["unk_token"].get<std::string>());
      WUSH_CHECK(unk_ >= 0, "%s: unk_token '%s' is not in the vocab", origin_.c_str(),
                 m["unk_token"].get<std::string>().c_str());
    }
    int32_t rank = 0;
    for (const json& mg : m.at("merges")) {
      std::string a, b;
      if (mg.is_array() && mg.size() == 2) {
        a = mg[0].get<std::string>();
        b = mg[1].get<std::string>();
      } else {  // older files: "a b"
        const std::string s = mg.get<std::string>();
        size_t sp = s.find(' ', 1);
        WUSH_CHECK(sp != std::string::npos, "%s: merge %d '%s' is not 'left right'", origin_.c_str(), rank, s.c_str());
        a = s.substr(0, sp);
        b = s.substr(sp + 1);
      }
      int32_t ia = vocab_id(a), ib = vocab_id(b), im = vocab_id(a + b);
      WUSH_CHECK(ia >= 0 && ib >= 0 && im >= 0, "%s: merge %d ('%s' '%s') uses a token not in the vocab",
                 origin_.c_str(), rank, a.c_str(), b.c_str());
      merges_.add(ia, ib, im, rank++);
    }
    const auto& chars = byte_level_chars();
    for (int b = 0; b < 256; ++b) {
      byte_level_ids_[b] = vocab_id(chars[b]);
      char hex[8];
      std::snprintf(hex, sizeof(hex), "<0x%02X>", b);
      fallback_ids_[b] = vocab_id(hex);
    }
  }

  void load_added_tokens(const json& list) {
    for (const json& t : list) {
      const std::string content = t.at("content").get<std::string>();
      const int32_t id = t.at("id").get<int32_t>();
      for (const char* k : {"single_word", "lstrip", "rstrip"})
        WUSH_CHECK(!t.value(k, false), "%s: unsupported added-token option %s on '%s'", origin_.c_str(), k,
                   content.c_str());
      set_token(id, content);
      special_[id] = t.value("special", false);
      added_[content] = id;
      if (t.value("normalized", !special_[id]))
        normalized_added_.add(normalizer_.apply(content), id);
      else
        raw_added_.add(content, id);
    }
  }

  int32_t special_id(const json& specials, const std::string& name, std::vector<int32_t>& out) {
    WUSH_CHECK(specials.contains(name), "%s: post_processor uses special token '%s' it does not define",
               origin_.c_str(), name.c_str());
    for (const json& id : specials.at(name).at("ids")) out.push_back(id.get<int32_t>());
    return out.back();
  }

  void load_post_processor(const json& p) {
    if (p.is_null()) return;
    const std::string type = p.at("type").get<std::string>();
    if (type == "Sequence") {
      for (const json& q : p.at("processors")) load_post_processor(q);
    } else if (type == "TemplateProcessing") {
      bool seen_a = false;
      for (const json& item : p.at("single")) {
        if (item.contains("Sequence")) {
          seen_a = true;
        } else {
          special_id(p.at("special_tokens"), item.at("SpecialToken").at("id").get<std::string>(),
                     seen_a ? suffix_ : prefix_);
        }
      }
    } else if (type != "ByteLevel") {  // ByteLevel only adjusts offsets
      WUSH_FAIL("%s: unsupported post_processor '%s'", origin_.c_str(), type.c_str());
    }
  }

  int32_t id_of(const std::string& name) const {
    auto it = added_.find(name);
    return it != added_.end() ? it->second : vocab_id(name);
  }

  // BOS: the post-processor's single prefix token, else tokenizer_config.json's bos_token.
  // EOS: tokenizer_config.json's eos_token, else a token with a conventional EOS name.
  void find_bos_eos(const json& cfg) {
    if (prefix_.size() == 1) bos_ = prefix_[0];
    else if (cfg.contains("bos_token")) bos_ = id_of(token_name(cfg["bos_token"]));
    if (cfg.contains("eos_token")) eos_ = id_of(token_name(cfg["eos_token"]));
    for (const char* name : {"</s>", "<|end_of_text|>", "<|endoftext|>", "<eos>"})
      if (eos_ < 0) eos_ = id_of(name);
  }

  // One pre-tokenized word -> ids appended to out.
  void encode_word(const std::string& word, std::vector<int32_t>& out) const {
    std::vector<int32_t> ids;
    if (pre_.byte_level()) {
      const auto& chars = byte_level_chars();
      if (ignore_merges_) {
        std::string key;
        for (unsigned char c : word) key += chars[c];
        int32_t id = vocab_id(key);
        if (id >= 0) return out.push_back(id);
      }
      for (unsigned char c : word) push_symbol(byte_level_ids_[c], ids);
    } else {
      if (ignore_merges_) {
        int32_t id = vocab_id(word);
        if (id >= 0) return out.push_back(id);
      }
      for (size_t i = 0; i < word.size();) {
        size_t len = utf8_char_len(word, i);
        int32_t id = vocab_id(word.substr(i, len));
        bool bytes_ok = byte_fallback_;
        for (size_t k = 0; k < len && bytes_ok && id < 0; ++k)
          bytes_ok = fallback_ids_[static_cast<unsigned char>(word[i + k])] >= 0;
        if (id >= 0) {
          ids.push_back(id);
        } else if (bytes_ok) {
          for (size_t k = 0; k < len; ++k) ids.push_back(fallback_ids_[static_cast<unsigned char>(word[i + k])]);
        } else {
          push_symbol(-1, ids);
        }
        i += len;
      }
    }
    merges_.apply(ids);
    out.insert(out.end(), ids.begin(), ids.end());
  }

  // A symbol not in the vocab becomes unk (consecutive ones fused if fuse_unk), or is dropped
  // when the model has no unk token, as the tokenizers library does.
  void push_symbol(int32_t id, std::vector<int32_t>& ids) const {
    if (id >= 0) return ids.push_back(id);
    if (unk_ < 0) return;
    if (fuse_unk_ && !ids.empty() && ids.back() == unk_) return;
    ids.push_back(unk_);
  }

  std::string origin_;
  HfNormalizer normalizer_;
  HfPreTokenizer pre_;
  HfDecoder decoder_;
  std::unordered_map<std::string, int32_t> vocab_, added_;
  std::vector<std::string> tokens_;  // id -> token string (model vocab and added tokens)
  std::vector<bool> special_;        // added tokens with "special": true (decode skips them)
  BpeMerges merges_;
  AddedTokenMatcher raw_added_, normalized_added_;
  int32_t byte_level_ids_[256], fallback_ids_[256];
  std::vector<int32_t> prefix_, suffix_;  // TemplateProcessing around the sequence
  int32_t unk_ = -1, bos_ = -1, eos_ = -1;
  bool byte_fallback_ = false, ignore_merges_ = false, fuse_unk_ = false;
};

json read_tokenizer_config(const std::string& dir) {
  const std::string path = dir + "/tokenizer_config.json";
  if (dir.empty() || !path_exists(path)) return json::object();
  try {
    json cfg = json::parse(read_file(path));
    return cfg.is_object() ? cfg : json::object();
  } catch (const json::exception& e) {
    WUSH_FAIL("%s: malformed JSON: %s", path.c_str(), e.what());
  }
}

// transformers v5 does not run a Llama tokenizer.json as written: its LlamaTokenizer class keeps
// the vocab, merges and added tokens and replaces the rest (models/llama/tokenization_llama.py):
// no normalizer, pre-tokenizer Metaspace("▁", prepend_scheme "first" unless legacy, split=false),
// decoder Replace ▁ -> " ", ByteFallback, Fuse, Strip(1), and a BPE without unk_token (unknown
// characters without byte tokens are dropped). TinyStories-656K's reference ids and perplexity
// are transformers'. When a tokenizer.model sits beside the file (gutenberg-llama-16M), the model
// is SentencePiece's and the file's own pipeline reproduces SentencePiece: keep the file.
void apply_transformers_llama_class(json& j, const json& cfg, const std::string& dir) {
  const std::string cls = cfg.value("tokenizer_class", std::string());
  if (cls != "LlamaTokenizer" && cls != "LlamaTokenizerFast") return;
  if (dir.empty() || path_exists(dir + "/tokenizer.model")) return;
  const bool prefix = !cfg.contains("add_prefix_space") || cfg["add_prefix_space"].is_null() ||
                      cfg["add_prefix_space"].get<bool>();
  const bool legacy = cfg.contains("legacy") && cfg["legacy"].is_boolean() && cfg["legacy"].get<bool>();
  const std::string scheme = !prefix ? "never" : legacy ? "always" : "first";
  j["normalizer"] = nullptr;
  j["pre_tokenizer"] = {{"type", "Metaspace"}, {"replacement", "\xE2\x96\x81"}, {"prepend_scheme", scheme},
                        {"split", false}};
  json decoders = json::array({{{"type", "Replace"}, {"pattern", {{"String", "\xE2\x96\x81"}}}, {"content", " "}},
                               {{"type", "ByteFallback"}},
                               {{"type", "Fuse"}}});
  if (prefix) decoders.push_back({{"type", "Strip"}, {"content", " "}, {"start", 1}, {"stop", 0}});
  j["decoder"] = {{"type", "Sequence"}, {"decoders", decoders}};
  j["model"]["unk_token"] = nullptr;
}

std::string dir_of(const std::string& path) {
  size_t slash = path.rfind('/');
  return slash == std::string::npos ? std::string(".") : path.substr(0, slash);
}

}  // namespace

std::unique_ptr<Tokenizer> parse_hf_tokenizer(const std::string& json_text, const std::string& origin,
                                              const std::string& dir) {
  json j;
  try {
    j = json::parse(json_text);
  } catch (const json::exception& e) {
    WUSH_FAIL("%s: not valid JSON (truncated or corrupt tokenizer.json?): %s", origin.c_str(), e.what());
  }
  WUSH_CHECK(j.is_object() && j.contains("model") && j["model"].is_object(),
             "%s: not a Hugging Face tokenizer.json (no \"model\" object)", origin.c_str());
  try {
    const json cfg = read_tokenizer_config(dir);
    apply_transformers_llama_class(j, cfg, dir);
    return std::make_unique<HfBpeTokenizer>(j, origin, cfg);
  } catch (const json::exception& e) {
    WUSH_FAIL("%s: malformed tokenizer.json: %s", origin.c_str(), e.what());
  }
}

std::unique_ptr<Tokenizer> load_hf_tokenizer(const std::string& path) {
  return parse_hf_tokenizer(read_file(path), path, dir_of(path));
}

}  // namespace wush

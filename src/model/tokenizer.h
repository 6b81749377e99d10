// Tokenizers: llama2.c tok512.bin, SentencePiece .model, Hugging Face tokenizer.json (BPE,
// byte-level or SentencePiece-style with byte fallback). One interface; load_tokenizer() picks by file.
#pragma once
#include <cstdint>
#include <memory>
#include <string>
#include <vector>

namespace wush {

class Tokenizer {
 public:
  virtual ~Tokenizer() = default;
  // Text -> ids. add_bos: prepend BOS if this tokenizer has one and adds it by default
  // (SentencePiece and llama2.c do; byte-level BPE of Qwen does not: then add_bos is ignored).
  virtual std::vector<int32_t> encode(const std::string& text, bool add_bos) const = 0;
  virtual std::string decode(const std::vector<int32_t>& ids) const = 0;
  // The text of one token as it continues a sequence (for streaming generation).
  virtual std::string piece(int32_t id) const = 0;
  virtual int32_t vocab_size() const = 0;
  virtual int32_t bos_id() const = 0;  // -1 if none
  virtual int32_t eos_id() const = 0;  // -1 if none
  virtual bool adds_bos() const = 0;   // whether encode(text, true) prepends BOS
  virtual std::string kind() const = 0;  // "llama2c", "sentencepiece", "hf-bpe"
};

// path: a tokenizer file (tok512.bin, *.model, tokenizer.json) or a model directory (prefers
// tokenizer.json, then tokenizer.model). Wrong or corrupt file -> wush::Error naming it.
std::unique_ptr<Tokenizer> load_tokenizer(const std::string& path);

// llama2.c tokenizer (tok512.bin): score-ordered BPE merges with byte fallback, dummy-prefix
// space, as run.c's encode() does. Implemented in llama2c_tokenizer.cpp.
std::unique_ptr<Tokenizer> load_llama2c_tokenizer(const std::string& path);

}  // namespace wush

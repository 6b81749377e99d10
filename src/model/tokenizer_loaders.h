// Internal: the per-format tokenizer loaders behind load_tokenizer() (tokenizer.cpp dispatches).
#pragma once
#include <memory>
#include <string>

#include "model/tokenizer.h"

namespace wush {

// SentencePiece .model through the wush_spm module (sentencepiece_tokenizer.cpp).
std::unique_ptr<Tokenizer> load_sentencepiece_tokenizer(const std::string& path);

// Hugging Face tokenizer.json (hf_tokenizer.cpp). The text form takes the JSON itself; `origin`
// names it in errors, and `dir` (may be "") is where tokenizer_config.json is looked up: BOS/EOS
// names the tokenizer.json does not carry, and the tokenizer class transformers would run
// (hf_tokenizer.cpp, apply_transformers_llama_class).
std::unique_ptr<Tokenizer> load_hf_tokenizer(const std::string& path);
std::unique_ptr<Tokenizer> parse_hf_tokenizer(const std::string& json_text, const std::string& origin,
                                              const std::string& dir);

}  // namespace wush

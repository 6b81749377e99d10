// load_tokenizer(): picks the tokenizer implementation from the path (tokenizer.h).
//   directory      -> its tokenizer.json, else its tokenizer.model
//   *.json         -> Hugging Face tokenizer.json (hf_tokenizer.cpp)
//   *.model        -> SentencePiece (sentencepiece_tokenizer.cpp)
//   anything else  -> sniffed: JSON, SentencePiece protobuf, else a llama2.c tokenizer (tok512.bin)
// A safetensors weight file is refused by name; the llama2.c loader validates what remains.
#include <cstring>

#include "core/atomic_file.h"
#include "core/error.h"
#include "model/tokenizer.h"
#include "model/tokenizer_loaders.h"

namespace wush {
namespace {

bool ends_with(const std::string& s, const std::string& suffix) {
  return s.size() >= suffix.size() && s.compare(s.size() - suffix.size(), suffix.size(), suffix) == 0;
}

// The first bytes of a file (fewer if it is shorter).
std::string file_head(const std::string& path, size_t n) {
  FILE* f = std::fopen(path.c_str(), "rb");
  WUSH_CHECK(f, "%s: cannot open tokenizer file: %s", path.c_str(), std::strerror(errno));
  std::string head(n, '\0');
  size_t got = std::fread(&head[0], 1, n, f);
  std::fclose(f);
  head.resize(got);
  return head;
}

// A safetensors file starts with a little-endian u64 header length, then the JSON header "{".
bool looks_like_safetensors(const std::string& head) {
  if (head.size() < 9 || head[8] != '{') return false;
  uint64_t len = 0;
  std::memcpy(&len, head.data(), 8);
  return len > 1 && len < (uint64_t(1) << 32);
}

// A SentencePiece ModelProto starts with field 1 (repeated SentencePiece pieces, length-delimited:
// tag 0x0A, varint length), whose first field is again the piece string (tag 0x0A).
bool looks_like_sentencepiece(const std::string& head) {
  if (head.size() < 3 || static_cast<unsigned char>(head[0]) != 0x0A) return false;
  size_t i = 1;
  while (i < head.size() && i < 6 && (static_cast<unsigned char>(head[i]) & 0x80)) ++i;
  return i + 1 < head.size() && static_cast<unsigned char>(head[i + 1]) == 0x0A;
}

bool looks_like_json(const std::string& head) {
  size_t i = head.find_first_not_of(" \t\r\n");
  return i != std::string::npos && head[i] == '{';
}

std::unique_ptr<Tokenizer> load_file(const std::string& path) {
  if (ends_with(path, ".json")) return load_hf_tokenizer(path);
  if (ends_with(path, ".model")) return load_sentencepiece_tokenizer(path);
  const std::string head = file_head(path, 64);
  WUSH_CHECK(!head.empty(), "%s: empty file, not a tokenizer", path.c_str());
  WUSH_CHECK(!looks_like_safetensors(head),
             "%s: a safetensors weight file, not a tokenizer (give tokenizer.json, tokenizer.model, "
             "tok512.bin or the model directory)", path.c_str());
  if (looks_like_json(head)) return load_hf_tokenizer(path);
  if (looks_like_sentencepiece(head)) return load_sentencepiece_tokenizer(path);
  return load_llama2c_tokenizer(path);
}

}  // namespace

std::unique_ptr<Tokenizer> load_tokenizer(const std::string& path) {
  WUSH_CHECK(path_exists(path), "%s: tokenizer path does not exist", path.c_str());
  if (!is_directory(path)) return load_file(path);
  for (const char* name : {"tokenizer.json", "tokenizer.model"}) {
    std::string file = path + "/" + name;
    if (path_exists(file)) return load_file(file);
  }
  WUSH_FAIL("%s: directory has no tokenizer.json or tokenizer.model", path.c_str());
}

}  // namespace wush

// Byte-pair-encoding merge core shared by the Hugging Face tokenizer.json BPE: the merge table
// (pair of token ids -> rank and merged id) and the merge loop, plus GPT-2's byte <-> unicode map
// used by byte-level BPE vocabularies (GPT-2, Llama-3, Qwen).
#pragma once
#include <array>
#include <cstdint>
#include <string>
#include <unordered_map>
#include <vector>

namespace wush {

class BpeMerges {
 public:
  // Rank = position in the merges list (lower merges first).
  void add(int32_t left, int32_t right, int32_t merged, int32_t rank);
  size_t size() const { return table_.size(); }
  // Merges `ids` in place: repeatedly the adjacent pair of lowest rank, the leftmost one on ties
  // (as Hugging Face's BPE word merge does). O(n log n) with a heap over a linked list, so one
  // word of 10^5 symbols (SentencePiece-style files have no pre-tokenizer) stays fast.
  void apply(std::vector<int32_t>& ids) const;

 private:
  struct Merge {
    int32_t rank, merged;
  };
  static uint64_t key(int32_t a, int32_t b) { return (uint64_t(uint32_t(a)) << 32) | uint32_t(b); }
  const Merge* find(int32_t a, int32_t b) const {
    auto it = table_.find(key(a, b));
    return it == table_.end() ? nullptr : &it->second;
  }
  std::unordered_map<uint64_t, Merge> table_;
};

// GPT-2 bytes_to_unicode(): printable Latin-1 bytes map to themselves, the other 68 bytes to
// U+0100.. in byte order. byte_level_char(b) is the UTF-8 of that char.
const std::array<std::string, 256>& byte_level_chars();
// The byte a byte-level char (code point) stands for, or -1.
int byte_level_byte(uint32_t code_point);

// UTF-8 helpers. utf8_char_len: length of the sequence starting at s[i] (1 for an invalid lead
// byte or a truncated sequence, so that invalid bytes become single "chars").
size_t utf8_char_len(const std::string& s, size_t i);
// Decodes the char at s[i] of length len (as returned by utf8_char_len); invalid -> 0xFFFFFFFF.
uint32_t utf8_decode(const std::string& s, size_t i, size_t len);

}  // namespace wush

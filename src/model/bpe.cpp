#include "model/bpe.h"

#include <queue>

#include "core/error.h"

namespace wush {

void BpeMerges::add(int32_t left, int32_t right, int32_t merged, int32_t rank) {
  // A repeated pair keeps its first (lowest) rank, as in Hugging Face.
  table_.emplace(key(left, right), Merge{rank, merged});
}

void BpeMerges::apply(std::vector<int32_t>& ids) const {
  const int32_t n = static_cast<int32_t>(ids.size());
  if (n < 2) return;
  struct Cand {
    int32_t rank, pos, left, right, merged;
    bool operator>(const Cand& o) const { return rank != o.rank ? rank > o.rank : pos > o.pos; }
  };
  std::priority_queue<Cand, std::vector<Cand>, std::greater<Cand>> heap;
  std::vector<int32_t> prev(n), next(n);
  for (int32_t i = 0; i < n; ++i) {
    prev[i] = i - 1;
    next[i] = i + 1;
  }
  auto push = [&](int32_t pos) {
    if (pos < 0 || next[pos] >= n) return;
    int32_t r = next[pos];
    if (const Merge* m = find(ids[pos], ids[r])) heap.push({m->rank, pos, ids[pos], ids[r], m->merged});
  };
  for (int32_t i = 0; i + 1 < n; ++i) push(i);
  while (!heap.empty()) {
    Cand c = heap.top();
    heap.pop();
    // Stale entries: the symbol at pos or its right neighbour changed since the push.
    if (ids[c.pos] != c.left) continue;
    int32_t r = next[c.pos];
    if (r >= n || ids[r] != c.right) continue;
    ids[c.pos] = c.merged;
    ids[r] = -1;
    next[c.pos] = next[r];
    if (next[r] < n) prev[next[r]] = c.pos;
    if (prev[c.pos] >= 0) push(prev[c.pos]);
    push(c.pos);
  }
  size_t out = 0;
  for (int32_t i = 0; i < n; i = next[i]) ids[out++] = ids[i];
  ids.resize(out);
}

namespace {
std::string utf8_encode(uint32_t cp) {
  std::string s;
  if (cp < 0x80) {
    s += static_cast<char>(cp);
  } else if (cp < 0x800) {
    s += static_cast<char>(0xC0 | (cp >> 6));
    s += static_cast<char>(0x80 | (cp & 0x3F));
  } else {
    WUSH_ASSERT(cp < 0x10000);
    s += static_cast<char>(0xE0 | (cp >> 12));
    s += static_cast<char>(0x80 | ((cp >> 6) & 0x3F));
    s += static_cast<char>(0x80 | (cp & 0x3F));
  }
  return s;
}

// code point of each byte under GPT-2's bytes_to_unicode()
std::array<uint32_t, 256> byte_level_code_points() {
  std::array<uint32_t, 256> cps{};
  uint32_t extra = 0;
  for (int b = 0; b < 256; ++b) {
    bool printable = (b >= '!' && b <= '~') || (b >= 0xA1 && b <= 0xAC) || (b >= 0xAE && b <= 0xFF);
    cps[b] = printable ? uint32_t(b) : 256 + extra++;
  }
  return cps;
}
}  // namespace

const std::array<std::string, 256>& byte_level_chars() {
  static const std::array<std::string, 256> chars = [] {
    std::array<std::string, 256> c;
    auto cps = byte_level_code_points();
    for (int b = 0; b < 256; ++b) c[b] = utf8_encode(cps[b]);
    return c;
  }();
  return chars;
}

int byte_level_byte(uint32_t code_point) {
  static const std::vector<int> inverse = [] {
    std::vector<int> inv(512, -1);
    auto cps = byte_level_code_points();
    for (int b = 0; b < 256; ++b) inv[cps[b]] = b;
    return inv;
  }();
  return code_point < inverse.size() ? inverse[code_point] : -1;
}

size_t utf8_char_len(const std::string& s, size_t i) {
  unsigned char c = static_cast<unsigned char>(s[i]);
  size_t len = c < 0x80 ? 1 : (c >> 5) == 0x6 ? 2 : (c >> 4) == 0xE ? 3 : (c >> 3) == 0x1E ? 4 : 1;
  if (i + len > s.size()) return 1;
  for (size_t k = 1; k < len; ++k)
    if ((static_cast<unsigned char>(s[i + k]) & 0xC0) != 0x80) return 1;
  return len;
}

uint32_t utf8_decode(const std::string& s, size_t i, size_t len) {
  unsigned char c = static_cast<unsigned char>(s[i]);
  if (len == 1) return c < 0x80 ? c : 0xFFFFFFFFu;
  uint32_t cp = c & (0x7F >> len);
  for (size_t k = 1; k < len; ++k) cp = (cp << 6) | (static_cast<unsigned char>(s[i + k]) & 0x3F);
  return cp;
}

}  // namespace wush

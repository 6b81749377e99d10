// llama2.c tokenizer (tok512.bin, ../shared/data/README.md "models/"): int32 max_token_length, then
// per token float32 score, int32 len, len bytes; ids are file order. BOS=1, EOS=2, byte tokens
// "<0x00>".."<0xFF>" are ids 3..258.
//
// encode() computes exactly what llama2.c run.c's encode() computes:
//   1. a dummy-prefix " " token when the text is non-empty;
//   2. the text split into UTF-8 codepoints (a lead byte plus at most 3 continuation bytes), each
//      looked up as a whole token, else one byte token per byte (id = byte + 3);
//   3. repeatedly merge the adjacent pair whose concatenation is a token with the highest score
//      (the leftmost pair on ties; pairs scoring <= -1e10 never merge) until no pair merges.
// run.c rescans all pairs after every merge (quadratic); here a heap ordered by (score desc,
// position asc) over a linked list makes the same choice at every step in O(n log n), which
// matters for whole-file encodes (WikiText-2 is 1.3 MB). Unlike C strings, a NUL byte in the text
// is encoded as byte token 3 instead of ending the text.
#include <cstring>
#include <queue>
#include <unordered_map>

#include "core/atomic_file.h"
#include "core/error.h"
#include "model/tokenizer.h"

namespace wush {

namespace {

constexpr int32_t kBos = 1, kEos = 2, kByteBase = 3;

class Llama2cTokenizer : public Tokenizer {
 public:
  explicit Llama2cTokenizer(const std::string& path) {
    WUSH_CHECK(path_exists(path), "%s: no such tokenizer file", path.c_str());
    const std::string d = read_file(path);
    size_t pos = 0;
    auto read_i32 = [&](const char* what) {
      WUSH_CHECK(pos + 4 <= d.size(), "%s: truncated llama2.c tokenizer (ends inside the %s of token %zu)",
                 path.c_str(), what, vocab_.size());
      int32_t v;
      std::memcpy(&v, d.data() + pos, 4);
      pos += 4;
      return v;
    };
    max_len_ = read_i32("header");
    WUSH_CHECK(max_len_ > 0 && max_len_ <= 4096,
               "%s: not a llama2.c tokenizer (max_token_length %d is not in 1..4096)", path.c_str(), max_len_);
    while (pos < d.size()) {
      float score;
      int32_t s = read_i32("score");
      std::memcpy(&score, &s, 4);
      int32_t len = read_i32("length");
      WUSH_CHECK(len >= 1 && len <= max_len_,
                 "%s: not a llama2.c tokenizer (token %zu has length %d, outside 1..max_token_length=%d)",
                 path.c_str(), vocab_.size(), len, max_len_);
      WUSH_CHECK(pos + size_t(len) <= d.size(), "%s: truncated llama2.c tokenizer (ends inside token %zu)",
                 path.c_str(), vocab_.size());
      vocab_.emplace_back(d.data() + pos, size_t(len));
      scores_.push_back(score);
      pos += size_t(len);
    }
    WUSH_CHECK(vocab_.size() >= size_t(kByteBase + 256),
               "%s: not a llama2.c tokenizer (%zu tokens; needs <unk>, BOS, EOS and 256 byte tokens)",
               path.c_str(), vocab_.size());
    for (int b = 0; b < 256; ++b) {
      char want[8];
      std::snprintf(want, sizeof want, "<0x%02X>", b);
      WUSH_CHECK(vocab_[size_t(kByteBase + b)] == want, "%s: not a llama2.c tokenizer (token %d is '%s', expected '%s')",
                 path.c_str(), kByteBase + b, vocab_[size_t(kByteBase + b)].c_str(), want);
    }
    for (size_t i = 0; i < vocab_.size(); ++i) ids_.emplace(vocab_[i], int32_t(i));  // first id wins on duplicates
  }

  std::vector<int32_t> encode(const std::string& text, bool add_bos) const override {
    std::vector<int32_t> t;
    t.reserve(text.size() + 2);
    if (!text.empty()) t.push_back(lookup_or_byte(" "));
    // Codepoints: run.c's loop, byte for byte.
    std::string buf;
    for (size_t i = 0; i < text.size(); ++i) {
      unsigned char c = static_cast<unsigned char>(text[i]);
      if ((c & 0xC0) != 0x80) buf.clear();
      buf.push_back(char(c));
      bool next_is_cont = i + 1 < text.size() && (static_cast<unsigned char>(text[i + 1]) & 0xC0) == 0x80;
      if (next_is_cont && buf.size() < 4) continue;
      auto it = ids_.find(buf);
      if (it != ids_.end()) {
        t.push_back(it->second);
      } else {
        for (unsigned char b : buf) t.push_back(kByteBase + b);
      }
      buf.clear();
    }
    merge(t);
    if (add_bos) t.insert(t.begin(), kBos);
    return t;
  }

  std::string decode(const std::vector<int32_t>& ids) const override {
    std::string out;
    int32_t prev = -1;
    for (int32_t id : ids) {
      if (id != kBos && id != kEos) {
        std::string p = piece(id);
        // run.c decode(): the leading space of the token after BOS is dropped.
        if (prev == kBos && !p.empty() && p[0] == ' ') p.erase(0, 1);
        out += p;
      }
      prev = id;
    }
    return out;
  }

  std::string piece(int32_t id) const override {
    WUSH_CHECK(id >= 0 && id < vocab_size(), "token id %d outside the llama2.c vocabulary (0..%d)", id,
               vocab_size() - 1);
    if (id == kBos || id == kEos) return "";
    if (id >= kByteBase && id < kByteBase + 256) return std::string(1, char(id - kByteBase));
    return vocab_[size_t(id)];
  }

  int32_t vocab_size() const override { return int32_t(vocab_.size()); }
  int32_t bos_id() const override { return kBos; }
  int32_t eos_id() const override { return kEos; }
  bool adds_bos() const override { return true; }
  std::string kind() const override { return "llama2c"; }

 private:
  int32_t lookup_or_byte(const std::string& s) const {
    auto it = ids_.find(s);
    return it != ids_.end() ? it->second : kByteBase + static_cast<unsigned char>(s[0]);
  }

  // Step 3 of the file comment on t, in place.
  void merge(std::vector<int32_t>& t) const {
    const int64_t n = int64_t(t.size());
    if (n < 2) return;
    std::vector<int64_t> next(static_cast<size_t>(n)), prev(static_cast<size_t>(n));
    std::vector<char> alive(size_t(n), 1);
    for (int64_t i = 0; i < n; ++i) next[size_t(i)] = i + 1, prev[size_t(i)] = i - 1;
    struct Cand {
      float score;
      int64_t left, right;
      int32_t lt, rt, merged;
      bool operator<(const Cand& o) const {  // priority_queue pops the largest: best score, then leftmost
        return score != o.score ? score < o.score : left > o.left;
      }
    };
    std::priority_queue<Cand> heap;
    auto push = [&](int64_t l) {
      if (l < 0 || next[size_t(l)] >= n) return;
      int64_t r = next[size_t(l)];
      auto it = ids_.find(vocab_[size_t(t[size_t(l)])] + vocab_[size_t(t[size_t(r)])]);
      if (it == ids_.end() || !(scores_[size_t(it->second)] > -1e10f)) return;
      heap.push({scores_[size_t(it->second)], l, r, t[size_t(l)], t[size_t(r)], it->second});
    };
    for (int64_t i = 0; i + 1 < n; ++i) push(i);
    while (!heap.empty()) {
      Cand c = heap.top();
      heap.pop();
      // Stale entry: a side merged since (tokens only grow, so an unchanged pair is the same pair).
      if (!alive[size_t(c.left)] || !alive[size_t(c.right)] || next[size_t(c.left)] != c.right ||
          t[size_t(c.left)] != c.lt || t[size_t(c.right)] != c.rt)
        continue;
      t[size_t(c.left)] = c.merged;
      alive[size_t(c.right)] = 0;
      next[size_t(c.left)] = next[size_t(c.right)];
      if (next[size_t(c.left)] < n) prev[size_t(next[size_t(c.left)])] = c.left;
      push(prev[size_t(c.left)]);
      push(c.left);
    }
    std::vector<int32_t> out;
    for (int64_t i = 0; i < n; i = next[size_t(i)]) out.push_back(t[size_t(i)]);
    t.swap(out);
  }

  std::vector<std::string> vocab_;
  std::vector<float> scores_;
  std::unordered_map<std::string, int32_t> ids_;
  int32_t max_len_ = 0;
};

}  // namespace

std::unique_ptr<Tokenizer> load_llama2c_tokenizer(const std::string& path) {
  return std::make_unique<Llama2cTokenizer>(path);
}

}  // namespace wush

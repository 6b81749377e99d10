// GGUF export for llama.cpp (REFERENCE.md §8 exports; the GGUF v3 layout of ggml's docs/gguf.md):
// header (magic "GGUF", version 3, tensor and key-value counts), key-value metadata (Llama
// hyper-parameters, the SentencePiece vocabulary), tensor infos (name, dims innermost first, ggml
// type, offset), then the 32-byte aligned data. The seven linears are MXFP4 (ggml type 39): per
// 32 weights one E8M0 byte and 16 bytes whose low nibble is weight j and high nibble weight j+16.
// q_proj / k_proj rows are permuted as llama.cpp's converter does (gguf_rope_row_order).
#include <cstring>
#include <map>
#include <type_traits>
#include <utility>

#include "core/atomic_file.h"
#include "core/error.h"
#include "pipeline/export.h"

namespace wush {
namespace {

enum GgufType : uint32_t { U32 = 4, I32 = 5, F32 = 6, BOOL = 7, STRING = 8, ARRAY = 9 };
enum GgmlType : uint32_t { GGML_F32 = 0, GGML_F16 = 1, GGML_MXFP4 = 39 };
constexpr uint64_t kAlign = 32;

struct Buf {
  std::string b;
  template <class T> void put(T v) { b.append(reinterpret_cast<const char*>(&v), sizeof v); }
  void str(const std::string& s) {
    put<uint64_t>(s.size());
    b += s;
  }
};

// Key-value section, built as bytes plus a count.
struct Kv {
  Buf buf;
  uint64_t n = 0;
  void key(const std::string& k, uint32_t type) {
    buf.str(k);
    buf.put<uint32_t>(type);
    ++n;
  }
  void u32(const std::string& k, uint32_t v) {
    key(k, U32);
    buf.put<uint32_t>(v);
  }
  void f32(const std::string& k, float v) {
    key(k, F32);
    buf.put<float>(v);
  }
  void boolean(const std::string& k, bool v) {
    key(k, BOOL);
    buf.put<uint8_t>(v ? 1 : 0);
  }
  void string(const std::string& k, const std::string& v) {
    key(k, STRING);
    buf.str(v);
  }
  template <class T> void array(const std::string& k, uint32_t type, const std::vector<T>& v) {
    key(k, ARRAY);
    buf.put<uint32_t>(type);
    buf.put<uint64_t>(v.size());
    for (const T& x : v) {
      if constexpr (std::is_same<T, std::string>::value) buf.str(x);
      else buf.put<T>(x);
    }
  }
};

// The vocabulary of a SentencePiece tokenizer.model (a protobuf ModelProto: field 1 = repeated
// SentencePiece {1: piece, 2: score (float), 3: type (enum, default NORMAL = 1)}). GGUF's
// token_type uses SentencePiece's enum values.
struct Vocab {
  std::vector<std::string> pieces;
  std::vector<float> scores;
  std::vector<int32_t> types;
};

struct Proto {
  const uint8_t* p;
  const uint8_t* end;
  const std::string& file;
  uint64_t varint() {
    uint64_t v = 0;
    for (int shift = 0; shift < 64; shift += 7) {
      WUSH_CHECK(p < end, "%s: truncated protobuf varint", file.c_str());
      const uint8_t c = *p++;
      v |= uint64_t(c & 0x7f) << shift;
      if (!(c & 0x80)) return v;
    }
    WUSH_FAIL("%s: protobuf varint longer than 10 bytes", file.c_str());
  }
  void need(uint64_t n) { WUSH_CHECK(uint64_t(end - p) >= n, "%s: truncated protobuf field", file.c_str()); }
  void skip(uint32_t wire) {
    if (wire == 0) varint();
    else if (wire == 1) need(8), p += 8;
    else if (wire == 5) need(4), p += 4;
    else if (wire == 2) { const uint64_t n = varint(); need(n); p += n; }
    else WUSH_FAIL("%s: unsupported protobuf wire type %u", file.c_str(), wire);
  }
};

Vocab read_spm_vocab(const std::string& path) {
  const std::string data = read_file(path);
  Vocab v;
  Proto m{reinterpret_cast<const uint8_t*>(data.data()), reinterpret_cast<const uint8_t*>(data.data()) + data.size(), path};
  while (m.p < m.end) {
    const uint64_t tag = m.varint();
    if (tag >> 3 != 1 || (tag & 7) != 2) {
      m.skip(uint32_t(tag & 7));
      continue;
    }
    const uint64_t n = m.varint();
    m.need(n);
    Proto s{m.p, m.p + n, path};
    m.p += n;
    std::string piece;
    float score = 0;
    int32_t type = 1;
    while (s.p < s.end) {
      const uint64_t t = s.varint();
      if (t == (1 << 3 | 2)) {
        const uint64_t len = s.varint();
        s.need(len);
        piece.assign(reinterpret_cast<const char*>(s.p), len);
        s.p += len;
      } else if (t == (2 << 3 | 5)) {
        s.need(4);
        std::memcpy(&score, s.p, 4);
        s.p += 4;
      } else if (t == (3 << 3 | 0)) {
        type = int32_t(s.varint());
      } else {
        s.skip(uint32_t(t & 7));
      }
    }
    v.pieces.push_back(piece);
    v.scores.push_back(score);
    v.types.push_back(type);
  }
  WUSH_CHECK(!v.pieces.empty(), "%s: no SentencePiece pieces (not a tokenizer.model)", path.c_str());
  return v;
}

std::string spm_model_path(const Model& base) {
  for (const std::string& p : {base.path + "/tokenizer.model", base.tokenizer_path})
    if (p.size() > 6 && p.substr(p.size() - 6) == ".model" && path_exists(p)) return p;
  return "";
}

// HF name -> GGUF name for a Llama model ("" = unknown).
std::string gguf_name(const std::string& n) {
  if (n == "model.embed_tokens.weight") return "token_embd.weight";
  if (n == "model.norm.weight") return "output_norm.weight";
  if (n == "lm_head.weight") return "output.weight";
  const std::string pre = "model.layers.";
  if (n.compare(0, pre.size(), pre) != 0) return "";
  const size_t dot = n.find('.', pre.size());
  const std::string l = n.substr(pre.size(), dot - pre.size()), rest = n.substr(dot + 1);
  static const std::map<std::string, std::string> m = {
      {"input_layernorm.weight", "attn_norm.weight"}, {"post_attention_layernorm.weight", "ffn_norm.weight"},
      {"self_attn.q_proj", "attn_q.weight"},          {"self_attn.k_proj", "attn_k.weight"},
      {"self_attn.v_proj", "attn_v.weight"},          {"self_attn.o_proj", "attn_output.weight"},
      {"mlp.gate_proj", "ffn_gate.weight"},           {"mlp.up_proj", "ffn_up.weight"},
      {"mlp.down_proj", "ffn_down.weight"}};
  auto it = m.find(rest);
  return it == m.end() ? "" : "blk." + l + "." + it->second;
}

struct OutTensor {
  std::string name;
  std::vector<uint64_t> ne;  // innermost first
  uint32_t type;
  std::string data;
};

// MXFP4 blocks of a quantized linear [R, C] (codes packed low nibble = even column, E8M0 scales).
std::string mxfp4_blocks(const QuantLinear& q, const at::Tensor& rows) {
  at::Tensor codes = q.weight.codes.index_select(0, rows).contiguous();
  at::Tensor sc = q.weight.scales.index_select(0, rows).contiguous();
  const int64_t R = codes.size(0), C = codes.size(1) * 2, nb = C / 32;
  const uint8_t* c = codes.data_ptr<uint8_t>();
  const float* s = sc.data_ptr<float>();
  std::string out(size_t(R * nb * 17), '\0');
  for (int64_t r = 0; r < R; ++r)
    for (int64_t b = 0; b < nb; ++b) {
      char* blk = &out[size_t((r * nb + b) * 17)];
      const float x = s[r * nb + b];
      int e = 0;
      if (x > 0) {
        std::frexp(x, &e);
        e = e - 1 + 127;
      }
      WUSH_ASSERT(e >= 0 && e <= 254);
      blk[0] = char(e);  // 0 for an all-zero group: its codes are zero anyway
      auto nib = [&](int64_t j) { const uint8_t byte = c[r * (C / 2) + (b * 32 + j) / 2]; return j % 2 ? byte >> 4 : byte & 15; };
      for (int j = 0; j < 16; ++j) blk[1 + j] = char(nib(j) | (nib(j + 16) << 4));
    }
  return out;
}

std::string dense_bytes(const at::Tensor& t, uint32_t type) {
  at::Tensor c = (type == GGML_F16 ? t.to(at::kHalf) : t.to(at::kFloat)).contiguous();
  return std::string(static_cast<const char*>(c.data_ptr()), size_t(c.nbytes()));
}

}  // namespace

std::vector<std::string> export_gguf(const QuantizedModel& qm, const std::string& dst, const ExportOptions& o) {
  const std::string why = export_refusal(qm, ExportTarget::Gguf);
  WUSH_CHECK(why.empty(), "export %s: %s", dst.c_str(), why.c_str());
  WUSH_CHECK(o.force || !path_exists(dst), "%s: already exists (pass --force to replace it)", dst.c_str());
  const ModelConfig& c = qm.base.config;
  const std::string spm = spm_model_path(qm.base);
  WUSH_CHECK(!spm.empty(), "export %s: GGUF needs the model's SentencePiece tokenizer.model (none beside %s)",
             dst.c_str(), qm.base.path.c_str());
  Vocab v = read_spm_vocab(spm);
  WUSH_CHECK(int64_t(v.pieces.size()) == c.vocab_size, "%s: %zu pieces, but the model has vocab_size %lld",
             spm.c_str(), v.pieces.size(), (long long)c.vocab_size);

  Kv kv;
  kv.string("general.architecture", "llama");
  kv.string("general.name", c.raw.is_object() ? c.raw.value("_name_or_path", std::string("wush")) : "wush");
  kv.u32("general.alignment", uint32_t(kAlign));
  const std::pair<const char*, int64_t> dims[] = {
      {"llama.context_length", c.max_position},          {"llama.embedding_length", c.hidden_size},
      {"llama.block_count", c.num_layers},               {"llama.feed_forward_length", c.intermediate_size},
      {"llama.attention.head_count", c.num_heads},       {"llama.attention.head_count_kv", c.num_kv_heads},
      {"llama.attention.key_length", c.head_dim},        {"llama.attention.value_length", c.head_dim},
      {"llama.rope.dimension_count", c.head_dim}};
  for (const auto& [key, value] : dims) kv.u32(key, uint32_t(value));
  kv.f32("llama.rope.freq_base", float(c.rope_theta));
  kv.f32("llama.attention.layer_norm_rms_epsilon", float(c.rms_norm_eps));
  kv.u32("llama.vocab_size", uint32_t(c.vocab_size));
  kv.string("tokenizer.ggml.model", "llama");
  kv.array("tokenizer.ggml.tokens", STRING, v.pieces);
  kv.array("tokenizer.ggml.scores", F32, v.scores);
  kv.array("tokenizer.ggml.token_type", I32, v.types);
  kv.u32("tokenizer.ggml.bos_token_id", uint32_t(c.bos_token_id));
  kv.u32("tokenizer.ggml.eos_token_id", uint32_t(c.eos_token_id));
  for (size_t i = 0; i < v.types.size(); ++i)
    if (v.types[i] == 2) {
      kv.u32("tokenizer.ggml.unknown_token_id", uint32_t(i));
      break;
    }
  kv.boolean("tokenizer.ggml.add_bos_token", true);
  kv.boolean("tokenizer.ggml.add_eos_token", false);

  std::vector<OutTensor> ts;
  for (const auto& [name, w] : qm.base.weights) {
    const std::string g = gguf_name(name);
    WUSH_CHECK(!g.empty(), "export %s: no GGUF name for tensor '%s' of a Llama model", dst.c_str(), name.c_str());
    std::vector<uint64_t> ne;
    for (int64_t d = w.dim() - 1; d >= 0; --d) ne.push_back(uint64_t(w.size(d)));
    const uint32_t type = w.dim() == 1 ? GGML_F32 : GGML_F16;
    ts.push_back({g, ne, type, dense_bytes(w, type)});
  }
  for (const auto& [p, q] : *qm.linears) {
    const int64_t R = q.weight.codes.size(0);
    at::Tensor rows = at::arange(R, at::kLong);
    if (p.find("q_proj") != std::string::npos) rows = gguf_rope_row_order(c.num_heads, c.head_dim);
    if (p.find("k_proj") != std::string::npos) rows = gguf_rope_row_order(c.num_kv_heads, c.head_dim);
    ts.push_back({gguf_name(p), {uint64_t(q.in_features), uint64_t(R)}, GGML_MXFP4, mxfp4_blocks(q, rows)});
  }

  Buf out;
  out.b = "GGUF";
  out.put<uint32_t>(3);
  out.put<uint64_t>(ts.size());
  out.put<uint64_t>(kv.n);
  out.b += kv.buf.b;
  uint64_t off = 0;
  for (const auto& t : ts) {
    out.str(t.name);
    out.put<uint32_t>(uint32_t(t.ne.size()));
    for (uint64_t d : t.ne) out.put<uint64_t>(d);
    out.put<uint32_t>(t.type);
    out.put<uint64_t>(off);
    off += (t.data.size() + kAlign - 1) / kAlign * kAlign;
  }
  out.b.resize((out.b.size() + kAlign - 1) / kAlign * kAlign, '\0');
  for (const auto& t : ts) {
    out.b += t.data;
    out.b.resize((out.b.size() + kAlign - 1) / kAlign * kAlign, '\0');
  }
  write_file_atomic(dst, out.b);
  std::vector<std::string> notes;
  if (qm.recipe.quantize_acts)
    notes.push_back("llama.cpp runs MXFP4 weights with high-precision activations: the W4A4 activation quantization is not in GGUF");
  return notes;
}

}  // namespace wush

// Exports (REFERENCE.md §8; docs/FORMAT.md "Exports"): each export is read back by an independent
// reader written here from the published description (compressed-tensors: weight_packed with the
// low nibble first, E8M0 bytes as uint8 / E4M3 scales, W = E2M1 * weight_scale / weight_global_scale;
// GGUF v3: header, typed key-values, tensor infos, 32-byte aligned data, MXFP4 blocks of one E8M0
// byte + 16 bytes holding weights j and j+16, llama.cpp's q/k row permutation) and every
// dequantized weight is compared with the wush checkpoint's. What engines cannot represent is
// refused with the reason.
#include <gtest/gtest.h>

#include <cstring>

#include "core/atomic_file.h"
#include "model/safetensors.h"
#include "modelio_test_util.h"
#include "pipeline/checkpoint.h"
#include "pipeline/export.h"
#include "runtime_test_util.h"

namespace {

const float kE2M1[8] = {0, 0.5, 1, 1.5, 2, 3, 4, 6};

float e2m1(int c) { return (c & 8 ? -1.0f : 1.0f) * kE2M1[c & 7]; }
float e8m0(uint8_t e) { return std::ldexp(1.0f, int(e) - 127); }
float e4m3(uint8_t b) {
  const int e = (b >> 3) & 15, m = b & 7;
  const double v = e == 0 ? m / 8.0 * std::ldexp(1.0, -6) : (1 + m / 8.0) * std::ldexp(1.0, e - 7);
  return float(b & 0x80 ? -v : v);
}

const wush::Model& model(const std::string& rel) {
  static std::map<std::string, wush::Model> cache;
  auto it = cache.find(rel);
  if (it == cache.end()) it = cache.emplace(rel, wush::load_model(wush::testing::data_path(rel))).first;
  return it->second;
}

// Quantized (data-free RTN), saved and loaded back: exports start from a checkpoint as the CLI does.
wush::QuantizedModel checkpoint(const std::string& model_rel, const std::string& recipe, const wush::test::TempDir& d) {
  wush::QuantizeOptions o;
  o.recipe = wush::parse_recipe(recipe);
  wush::CheckpointOptions co;
  co.force = true;
  wush::save_quantized(wush::quantize_model(model(model_rel), at::Tensor(), o), d / "ckpt", co);
  return wush::load_quantized(d / "ckpt");
}

std::string refusal(const wush::QuantizedModel& qm, wush::ExportTarget t) {
  std::string why = wush::export_refusal(qm, t);
  EXPECT_FALSE(why.empty());
  return why;
}

// ---- GGUF, read from the spec ------------------------------------------------------------------
struct GgufReader {
  std::string b;
  size_t p = 0;
  template <class T> T get() {
    EXPECT_LE(p + sizeof(T), b.size());
    T v;
    std::memcpy(&v, b.data() + p, sizeof v);
    p += sizeof v;
    return v;
  }
  std::string str() {
    const uint64_t n = get<uint64_t>();
    std::string s = b.substr(p, n);
    p += n;
    return s;
  }
};

struct GgufValue {
  uint32_t type = 0;
  uint64_t u = 0;
  float f = 0;
  std::string s;
  uint32_t elem = 0;
  uint64_t count = 0;
};

struct GgufTensor {
  std::vector<uint64_t> ne;
  uint32_t type;
  uint64_t offset;
};

struct Gguf {
  std::map<std::string, GgufValue> kv;
  std::map<std::string, GgufTensor> tensors;
  std::string bytes;
  size_t data_start = 0;
};

Gguf read_gguf(const std::string& path) {
  GgufReader r{wush::read_file(path)};
  Gguf g;
  EXPECT_EQ(r.b.substr(0, 4), "GGUF");
  r.p = 4;
  EXPECT_EQ(r.get<uint32_t>(), 3u);
  const uint64_t nt = r.get<uint64_t>(), nkv = r.get<uint64_t>();
  // value sizes of the fixed-size GGUF types 0..12 (8 = string, 9 = array)
  const int size[13] = {1, 1, 2, 2, 4, 4, 4, 1, 0, 0, 8, 8, 8};
  auto scalar = [&](uint32_t type, GgufValue& v) {
    if (type == 8) {
      v.s = r.str();
    } else if (type == 6) {
      v.f = r.get<float>();
    } else {
      EXPECT_LT(type, 13u);
      std::memcpy(&v.u, r.b.data() + r.p, size_t(size[type]));
      r.p += size_t(size[type]);
    }
  };
  for (uint64_t i = 0; i < nkv; ++i) {
    const std::string key = r.str();
    GgufValue v;
    v.type = r.get<uint32_t>();
    if (v.type == 9) {
      v.elem = r.get<uint32_t>();
      v.count = r.get<uint64_t>();
      GgufValue e;
      for (uint64_t j = 0; j < v.count; ++j) scalar(v.elem, e);
    } else {
      scalar(v.type, v);
    }
    g.kv[key] = v;
  }
  for (uint64_t i = 0; i < nt; ++i) {
    const std::string name = r.str();
    GgufTensor t;
    t.ne.resize(r.get<uint32_t>());
    for (auto& d : t.ne) d = r.get<uint64_t>();
    t.type = r.get<uint32_t>();
    t.offset = r.get<uint64_t>();
    EXPECT_EQ(t.offset % 32, 0u) << name;
    g.tensors[name] = t;
  }
  g.data_start = (r.p + 31) / 32 * 32;
  g.bytes = std::move(r.b);
  return g;
}

// One row of an MXFP4 tensor [ne1 rows of ne0]: blocks of 17 bytes, value = E2M1 * 2^(e - 127).
std::vector<float> gguf_mxfp4_row(const Gguf& g, const GgufTensor& t, int64_t row) {
  const int64_t nb = int64_t(t.ne[0]) / 32;
  const auto* base = reinterpret_cast<const uint8_t*>(g.bytes.data() + g.data_start + t.offset) + row * nb * 17;
  std::vector<float> out(size_t(t.ne[0]));
  for (int64_t b = 0; b < nb; ++b) {
    const uint8_t* blk = base + b * 17;
    for (int j = 0; j < 16; ++j) {
      out[size_t(b * 32 + j)] = e2m1(blk[1 + j] & 15) * e8m0(blk[0]);
      out[size_t(b * 32 + j + 16)] = e2m1(blk[1 + j] >> 4) * e8m0(blk[0]);
    }
  }
  return out;
}

template <class T> const T* gguf_data(const Gguf& g, const std::string& n) {
  return reinterpret_cast<const T*>(g.bytes.data() + g.data_start + g.tensors.at(n).offset);
}

}  // namespace

TEST(Export, GgufRoundTripsEveryWeight) {
  // The GPU machine carries ../shared/data without this model (docs/results/gpu.md).
  if (!wush::path_exists(wush::testing::data_path("models/gutenberg-llama-16M/config.json")))
    GTEST_SKIP() << "no models/gutenberg-llama-16M";
  wush::test::TempDir d("gguf");
  wush::QuantizedModel qm = checkpoint("models/gutenberg-llama-16M", "identity:mxfp4-ocp:rtn", d);
  auto notes = wush::export_gguf(qm, d / "m.gguf");
  EXPECT_EQ(notes.size(), 1u);  // W4A4 acts run in high precision in llama.cpp
  Gguf g = read_gguf(d / "m.gguf");
  const wush::ModelConfig& c = qm.base.config;
  EXPECT_EQ(g.kv.at("general.architecture").s, "llama");
  EXPECT_EQ(g.kv.at("llama.block_count").u, uint64_t(c.num_layers));
  EXPECT_EQ(g.kv.at("llama.embedding_length").u, 384u);
  EXPECT_EQ(g.kv.at("llama.feed_forward_length").u, 1024u);
  EXPECT_EQ(g.kv.at("llama.attention.head_count").u, 6u);
  EXPECT_EQ(g.kv.at("llama.attention.head_count_kv").u, 2u);
  EXPECT_EQ(g.kv.at("llama.rope.dimension_count").u, 64u);
  EXPECT_FLOAT_EQ(g.kv.at("llama.attention.layer_norm_rms_epsilon").f, float(c.rms_norm_eps));
  EXPECT_EQ(g.kv.at("tokenizer.ggml.model").s, "llama");
  EXPECT_EQ(g.kv.at("tokenizer.ggml.tokens").count, 8192u);
  EXPECT_EQ(g.kv.at("tokenizer.ggml.scores").count, 8192u);
  EXPECT_EQ(g.kv.at("tokenizer.ggml.token_type").elem, 5u);  // INT32
  EXPECT_EQ(g.kv.at("tokenizer.ggml.bos_token_id").u, 1u);
  // Every linear: type 39, dims innermost first, values equal the checkpoint's dequantized W~;
  // q/k rows in llama.cpp's order: GGUF row h*D + 2i + s holds HF row h*D + s*D/2 + i.
  const char* names[7] = {"attn_q", "attn_k", "attn_v", "attn_output", "ffn_gate", "ffn_up", "ffn_down"};
  int checked = 0;
  for (int64_t l = 0; l < c.num_layers; ++l)
    for (int i = 0; i < 7; ++i) {
      const std::string n = "blk." + std::to_string(l) + "." + names[i] + ".weight";
      const GgufTensor& t = g.tensors.at(n);
      const at::Tensor W = qm.linears->at(wush::linear_prefix(l, i)).dense;
      ASSERT_EQ(t.type, 39u) << n;
      ASSERT_EQ(t.ne, (std::vector<uint64_t>{uint64_t(W.size(1)), uint64_t(W.size(0))})) << n;
      const int64_t D = c.head_dim;
      for (int64_t row = 0; row < W.size(0); ++row) {
        int64_t hf = row;
        if (i < 2) {
          const int64_t h = row / D, w = row % D;
          hf = h * D + (w % 2) * (D / 2) + w / 2;
        }
        std::vector<float> got = gguf_mxfp4_row(g, t, row);
        at::Tensor want = W[hf].contiguous();
        ASSERT_EQ(std::memcmp(got.data(), want.data_ptr<float>(), got.size() * 4), 0) << n << " row " << row;
      }
      ++checked;
    }
  EXPECT_EQ(checked, 7 * c.num_layers);
  // Norms F32 exactly; the embedding F16.
  const at::Tensor norm = qm.base.weights.at("model.layers.3.input_layernorm.weight").to(at::kFloat);
  EXPECT_EQ(g.tensors.at("blk.3.attn_norm.weight").type, 0u);
  EXPECT_EQ(std::memcmp(gguf_data<float>(g, "blk.3.attn_norm.weight"), norm.contiguous().data_ptr<float>(), 384 * 4), 0);
  const GgufTensor& emb = g.tensors.at("token_embd.weight");
  EXPECT_EQ(emb.type, 1u);
  EXPECT_EQ(emb.ne, (std::vector<uint64_t>{384, 8192}));
  at::Tensor e16 = qm.base.weights.at("model.embed_tokens.weight").to(at::kHalf).contiguous();
  EXPECT_EQ(std::memcmp(gguf_data<uint16_t>(g, "token_embd.weight"), e16.data_ptr(), size_t(e16.nbytes())), 0);
}

TEST(Export, CompressedTensorsRoundTripsEveryWeight) {
  for (const char* recipe : {"identity:mxfp4-ocp:rtn", "hadamard:nvfp4:rtn", "hadamard:mxfp4-ocp:rtn:w4a16"}) {
    SCOPED_TRACE(recipe);
    wush::test::TempDir d("ct");
    wush::QuantizedModel qm = checkpoint("models/tinystories656K", recipe, d);
    wush::export_compressed_tensors(qm, d / "ct");
    auto cfg = nlohmann::json::parse(wush::read_file(d / "ct/config.json"));
    const auto& qc = cfg.at("quantization_config");
    const bool nv = qm.recipe.format == wush::Format::NVFP4;
    EXPECT_EQ(qc.at("quant_method"), "compressed-tensors");
    EXPECT_EQ(qc.at("format"), nv ? "nvfp4-pack-quantized" : "mxfp4-pack-quantized");
    const auto& w = qc.at("config_groups").at("group_0").at("weights");
    EXPECT_EQ(w.at("num_bits"), 4);
    EXPECT_EQ(w.at("type"), "float");
    EXPECT_EQ(w.at("group_size"), nv ? 16 : 32);
    EXPECT_EQ(w.at("strategy"), nv ? "tensor_group" : "group");
    EXPECT_EQ(qc.at("config_groups").at("group_0").at("input_activations").is_null(), !qm.recipe.quantize_acts);
    EXPECT_EQ(qc.contains("transform_config"), qm.recipe.transform == "hadamard");
    if (qm.recipe.transform == "hadamard")
      EXPECT_EQ(qc["transform_config"]["config_groups"]["v"]["head_dim"], nv ? 16 : 32);
    auto t = wush::read_safetensors(d / "ct/model.safetensors");
    for (const auto& [p, q] : *qm.linears) {
      EXPECT_FALSE(t.count(p + ".weight")) << p;
      const at::Tensor packed = t.at(p + ".weight_packed").data, sc = t.at(p + ".weight_scale").data;
      EXPECT_EQ(t.at(p + ".weight_scale").dtype, nv ? "F8_E4M3" : "U8");
      const int64_t R = packed.size(0), C = packed.size(1) * 2, G = C / sc.size(1);
      float gs = 1;
      if (nv) gs = t.at(p + ".weight_global_scale").data[0].item<float>();
      const uint8_t* pk = packed.contiguous().data_ptr<uint8_t>();
      const uint8_t* s = sc.contiguous().data_ptr<uint8_t>();
      const at::Tensor W = q.dense.contiguous();
      const float* want = W.data_ptr<float>();
      double worst = 0;
      for (int64_t r = 0; r < R; ++r)
        for (int64_t k = 0; k < C; ++k) {
          const uint8_t b = pk[r * C / 2 + k / 2];
          const float e = e2m1(k % 2 ? b >> 4 : b & 15);
          const float got = nv ? e * (e4m3(s[r * (C / G) + k / G]) / gs) : e * e8m0(s[r * (C / G) + k / G]);
          const float ref = want[r * C + k];
          worst = std::max(worst, std::fabs(double(got) - ref) / std::max(std::fabs(double(ref)), 1e-30));
        }
      // MXFP4: exact. NVFP4: compressed-tensors divides by its global scale, §8 multiplies by 1/g:
      // the two roundings agree to the last bit of fp32.
      if (nv) EXPECT_LE(worst, 2.5e-7) << p;
      else EXPECT_EQ(worst, 0.0) << p;
    }
  }
}

TEST(Export, RefusesWhatTheEnginesCannotRepresent) {
  wush::test::TempDir d("refuse");
  using wush::ExportTarget;
  {
    wush::QuantizedModel qm = checkpoint("models/tinystories656K", "identity:mxfp4:rtn", d);
    EXPECT_NE(refusal(qm, ExportTarget::CompressedTensors).find("1/3 global scale"), std::string::npos);
    EXPECT_NE(refusal(qm, ExportTarget::Gguf).find("--mxfp4-rule ocp"), std::string::npos);
    wush::test::expect_error([&] { wush::export_compressed_tensors(qm, d / "x"); }, {"1/3 global scale"});
    EXPECT_FALSE(wush::path_exists(d / "x"));
  }
  {
    wush::QuantizedModel qm = checkpoint("models/tinystories656K", "random:nvfp4:rtn", d);
    EXPECT_NE(refusal(qm, ExportTarget::CompressedTensors).find("per-block transforms"), std::string::npos);
  }
  {
    wush::QuantizedModel qm = checkpoint("models/tinystories656K", "hadamard:mxfp4-ocp:rtn", d);
    EXPECT_EQ(wush::export_refusal(qm, ExportTarget::CompressedTensors), "");
    EXPECT_NE(refusal(qm, ExportTarget::Gguf).find("only the identity transform"), std::string::npos);
    // k_proj without the Hadamard that q_proj and v_proj have: one fused GEMM cannot apply both.
    qm.linears->at("model.layers.1.self_attn.k_proj").T = at::Tensor();
    EXPECT_NE(refusal(qm, ExportTarget::CompressedTensors).find("non-shared transform in the fused group"),
              std::string::npos);
  }
  {
    wush::QuantizedModel qm = checkpoint("models/tinystories656K", "identity:mxint4:rtn", d);
    EXPECT_NE(refusal(qm, ExportTarget::CompressedTensors).find("no mxint4"), std::string::npos);
  }
  {
    wush::QuantizedModel qm = checkpoint("models/stories260K.bin", "identity:mxfp4-ocp:rtn", d);
    EXPECT_NE(refusal(qm, ExportTarget::CompressedTensors).find("zero-padded"), std::string::npos);
  }
  {  // GGUF needs a SentencePiece vocabulary: tinystories656K has only tokenizer.json
    wush::QuantizedModel qm = checkpoint("models/tinystories656K", "identity:mxfp4-ocp:rtn", d);
    wush::test::expect_error([&] { wush::export_gguf(qm, d / "t.gguf"); }, {"tokenizer.model"});
  }
}

TEST(Export, RopeRowOrderInterleavesTheHalves) {
  // head_dim 4, two heads: HF rows [a0 a1 | b0 b1] per head -> llama.cpp [a0 b0 a1 b1]
  EXPECT_TRUE(at::equal(wush::gguf_rope_row_order(2, 4), at::tensor({0, 2, 1, 3, 4, 6, 5, 7}, at::kLong)));
}

TEST(Export, CliQuantizesOcpMxfp4AndExplainsARefusal) {
  wush::test::TempDir d("cli_export");
  const std::string model = wush::testing::data_path("models/tinystories656K");
  std::string out, err;
  ASSERT_EQ(wush::testing::run_cli("quantize --model " + model + " --recipe identity:mxfp4:rtn --mxfp4-rule ocp --out " +
                                       (d / "q"),
                                   &out, &err),
            0)
      << err;
  auto cfg = nlohmann::json::parse(wush::read_file(d / "q/config.json"));
  EXPECT_EQ(cfg["quantization_config"]["format"], "mxfp4-ocp");
  EXPECT_EQ(wush::testing::run_cli("export --to compressed-tensors " + (d / "q") + " " + (d / "ct"), &out, &err), 0) << err;
  EXPECT_TRUE(wush::path_exists(d / "ct/config.json"));
  EXPECT_NE(wush::testing::run_cli("export --to gguf " + (d / "q") + " " + (d / "q.gguf"), &out, &err), 0);
  EXPECT_NE(err.find("tokenizer.model"), std::string::npos) << err;
  EXPECT_NE(wush::testing::run_cli("quantize --model " + model + " --recipe identity:nvfp4:rtn --mxfp4-rule ocp --out " +
                                       (d / "n"),
                                   &out, &err),
            0);
  EXPECT_NE(err.find("--mxfp4-rule ocp applies to MXFP4"), std::string::npos) << err;
}

// The native checkpoint is REFERENCE.md §8 tensor for tensor: every tensor's name, dtype and shape
// of a small checkpoint against a table written from §8 (stories260K: dim 64, hidden 172 zero-padded
// to a multiple of G, 8 heads of 8, 4 KV heads, 5 layers), the global scales' values, the shard
// names and index, and the multiply-in-decode convention (NVFP4: E2M1 * scale * fl(0.1), not / 10).
#include <gtest/gtest.h>

#include <set>

#include "core/atomic_file.h"
#include "model/safetensors.h"
#include "modelio_test_util.h"
#include "pipeline/checkpoint.h"
#include "runtime_test_util.h"

namespace {

using Shape = std::vector<int64_t>;
struct Row {
  std::string name, dtype;
  Shape shape;
};

// §8's table for one linear of R outputs and Cp (padded) inputs, group G.
void linear_rows(std::vector<Row>& t, const std::string& p, int64_t R, int64_t Cp, int64_t G, const char* scale_dtype,
                 bool padded) {
  t.push_back({p + ".e2m1", "U8", {R, Cp / 2}});
  t.push_back({p + ".scale_quant", scale_dtype, {R, Cp / G}});
  t.push_back({p + ".transform", "BF16", {Cp / G, G, G}});
  t.push_back({p + ".weight_global_scale", "F32", {}});
  t.push_back({p + ".activation_global_scale", "F32", {}});
  t.push_back({p + ".activation_scale_scale", "F32", {}});
  if (padded) t.push_back({p + ".in_features", "I64", {}});  // wush extension (docs/FORMAT.md)
}

std::vector<Row> stories_table(int64_t G, const char* scale_dtype) {
  std::vector<Row> t = {{"model.embed_tokens.weight", "F32", {512, 64}}, {"model.norm.weight", "F32", {64}}};
  for (int l = 0; l < 5; ++l) {
    const std::string b = "model.layers." + std::to_string(l) + ".";
    t.push_back({b + "input_layernorm.weight", "F32", {64}});
    t.push_back({b + "post_attention_layernorm.weight", "F32", {64}});
    linear_rows(t, b + "self_attn.q_proj", 64, 64, G, scale_dtype, false);
    linear_rows(t, b + "self_attn.k_proj", 32, 64, G, scale_dtype, false);
    linear_rows(t, b + "self_attn.v_proj", 32, 64, G, scale_dtype, false);
    linear_rows(t, b + "self_attn.o_proj", 64, 64, G, scale_dtype, false);
    linear_rows(t, b + "mlp.gate_proj", 172, 64, G, scale_dtype, false);
    linear_rows(t, b + "mlp.up_proj", 172, 64, G, scale_dtype, false);
    linear_rows(t, b + "mlp.down_proj", 64, (172 + G - 1) / G * G, G, scale_dtype, true);  // 192 or 176
  }
  return t;
}

wush::QuantizedModel quantized_stories(const std::string& recipe) {
  static wush::Model m = wush::load_model(wush::testing::data_path("models/stories260K.bin"));
  wush::QuantizeOptions o;
  o.recipe = wush::parse_recipe(recipe);
  return wush::quantize_model(m, at::Tensor(), o);
}

void expect_table(const std::map<std::string, wush::SafeTensor>& got, const std::vector<Row>& want) {
  EXPECT_EQ(got.size(), want.size());
  for (const Row& r : want) {
    auto it = got.find(r.name);
    ASSERT_NE(it, got.end()) << r.name;
    EXPECT_EQ(it->second.dtype, r.dtype) << r.name;
    EXPECT_EQ(it->second.shape(), r.shape) << r.name;
  }
}

float scalar(const std::map<std::string, wush::SafeTensor>& t, const std::string& n) { return t.at(n).data.item<float>(); }

}  // namespace

TEST(CheckpointLayout, EveryTensorMatchesTheReferenceTable) {
  struct Case {
    const char* recipe;
    int64_t G;
    const char* scale;
    float wg, ag, ass;
  };
  for (const Case& c : {Case{"hadamard:mxfp4:rtn", 32, "F8_E8M0", 1.0f / 3.0f, 1.0f / 3.0f, 4.0f},
                        Case{"identity:nvfp4:rtn", 16, "F8_E4M3", 0.1f, 0.1f, 6.0f}}) {
    SCOPED_TRACE(c.recipe);
    wush::test::TempDir dir("layout");
    wush::CheckpointOptions co;
    co.force = true;
    co.always_index = true;
    co.max_shard_bytes = 64 << 10;  // several shards
    wush::save_quantized(quantized_stories(c.recipe), dir / "ckpt", co);
    std::map<std::string, std::string> meta;
    auto t = wush::read_safetensors(dir / "ckpt/model.safetensors.index.json", &meta);
    EXPECT_EQ(meta, (std::map<std::string, std::string>{{"format", "pt"}}));
    expect_table(t, stories_table(c.G, c.scale));
    const std::string p = "model.layers.4.mlp.up_proj";
    EXPECT_EQ(scalar(t, p + ".weight_global_scale"), c.wg);
    EXPECT_EQ(scalar(t, p + ".activation_global_scale"), c.ag);
    EXPECT_EQ(scalar(t, p + ".activation_scale_scale"), c.ass);
    EXPECT_EQ(t.at("model.layers.0.mlp.down_proj.in_features").data.item<int64_t>(), 172);
    // Shards are model-0000i-of-0000n.safetensors, every one listed in the index.
    auto idx = nlohmann::json::parse(wush::read_file(dir / "ckpt/model.safetensors.index.json"));
    std::set<std::string> shards;
    for (auto& [n, f] : idx["weight_map"].items()) shards.insert(f.get<std::string>());
    ASSERT_GT(shards.size(), 1u);
    char first[64];
    std::snprintf(first, sizeof first, "model-00001-of-%05zu.safetensors", shards.size());
    EXPECT_EQ(*shards.begin(), first);
    auto cfg = nlohmann::json::parse(wush::read_file(dir / "ckpt/config.json"));
    EXPECT_EQ(cfg["quantization_config"]["quant_method"], "wush");
    EXPECT_EQ(cfg["quantization_config"]["group_size"], c.G);
  }
}

// §8: W~ = E2M1(code) * scale * weight_global_scale, the global scale multiplied in. For NVFP4 that
// differs from q * s / 10 in the last bit for about a fifth of the (code, scale) pairs: the loaded
// model must decode exactly as the layout says.
TEST(CheckpointLayout, NvFp4DecodeMultipliesTheGlobalScale) {
  wush::test::TempDir dir("nvdecode");
  wush::QuantizedModel qm = quantized_stories("hadamard:nvfp4:rtn");
  wush::save_quantized(qm, dir / "ckpt", {});
  auto t = wush::read_safetensors(dir / "ckpt/model.safetensors");
  wush::QuantizedModel back = wush::load_quantized(dir / "ckpt");
  const std::string p = "model.layers.2.mlp.gate_proj";
  at::Tensor codes = t.at(p + ".e2m1").data, sc = t.at(p + ".scale_quant").data;
  const float wg = scalar(t, p + ".weight_global_scale");
  ASSERT_EQ(wg, 0.1f);
  const float e2m1[8] = {0, 0.5, 1, 1.5, 2, 3, 4, 6};
  auto e4m3 = [](uint8_t b) {  // OCP E4M3, written out here
    const int e = (b >> 3) & 15, m = b & 7;
    const double v = e == 0 ? m / 8.0 * std::ldexp(1.0, -6) : (1 + m / 8.0) * std::ldexp(1.0, e - 7);
    return float(b & 0x80 ? -v : v);
  };
  at::Tensor dense = back.linears->at(p).dense, fresh = qm.linears->at(p).dense;
  int64_t differs_from_division = 0;
  for (int64_t r = 0; r < codes.size(0); ++r)
    for (int64_t k = 0; k < codes.size(1) * 2; ++k) {
      const uint8_t byte = codes[r][k / 2].item<uint8_t>(), c = k % 2 ? byte >> 4 : byte & 15;
      const float q = (c & 8 ? -1.0f : 1.0f) * e2m1[c & 7];
      const float s = e4m3(sc[r][k / 16].item<uint8_t>());
      const float want = (q * s) * wg;
      ASSERT_EQ(dense[r][k].item<float>(), want) << r << "," << k;
      ASSERT_EQ(fresh[r][k].item<float>(), want) << "in-memory model decodes like the file";
      differs_from_division += want != float(double(q * s) / 10.0);
    }
  EXPECT_GT(differs_from_division, 0) << "the test would not see a q*s/g decode";
}

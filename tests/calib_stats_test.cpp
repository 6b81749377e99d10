// Calibration statistics (REFERENCE.md §2, §3, §9): chunked fp32-per-chunk accumulation equals
// the one-shot fp64 X^T X; absmax, counts, H; checks; save/load round trip and validation.
#include <gtest/gtest.h>


#include "core/atomic_file.h"
#include "core/error.h"
#include "core/paths.h"
#include "quant/calib_stats.h"
#include "quant/tensor_file.h"
#include "transforms/transform_registry.h"
#include "transform_test_util.h"

using namespace wush;
using wush::testing::rel_err;
using wush::testing::synthetic_layer;

namespace {

std::string tmp_path(const char* name) {
  return wush::path_join(wush::temp_dir(), name);
}

std::string error_of(const std::function<void()>& f) {
  try {
    f();
  } catch (const Error& e) {
    return e.what();
  }
  return "";
}

}  // namespace

// Batches of different shapes ([tokens, C], [B, T, C]) and one batch larger than kChunkTokens.
TEST(CalibStats, ChunkedEqualsOneShotFloat64) {
  const int64_t C = 48;
  auto L = synthetic_layer(LayerStats::kChunkTokens + 1500, C, 8, 21);
  const at::Tensor X = L.X;  // fp64 reference data
  const int64_t N = X.size(0);
  at::Tensor ref = at::mm(X.t(), X);
  CalibStats f32, f64;
  const int64_t a = 100, b = 3 * 200;  // [100, C], then [3, 200, C], then the rest (> 4096)
  for (auto* s : {&f32, &f64}) {
    const auto dt = s == &f32 ? at::kFloat : at::kDouble;
    s->add("l", X.narrow(0, 0, a).to(dt));
    s->add("l", X.narrow(0, a, b).reshape({3, 200, C}).to(dt));
    s->add("l", X.narrow(0, a + b, N - a - b).to(dt));
  }
  const LayerStats& s32 = f32.at("l");
  EXPECT_EQ(s32.count(), N);
  EXPECT_EQ(s32.xtx().scalar_type(), at::kDouble);
  // fp32 inputs: the reference is X rounded to fp32 then multiplied in fp64
  at::Tensor X32 = X.to(at::kFloat).to(at::kDouble);
  EXPECT_LT(rel_err(s32.xtx(), at::mm(X32.t(), X32)), 2e-6);
  EXPECT_LT(rel_err(f64.at("l").xtx(), ref), 1e-13);
  EXPECT_LT(rel_err(f64.at("l").H(), ref / double(N)), 1e-13);
  EXPECT_TRUE(at::equal(s32.absmax(), X.abs().amax(0).to(at::kFloat)));
  at::Tensor H = s32.H();
  EXPECT_TRUE(at::equal(H, H.t()));
  // bf16 activations are accepted (converted to fp32 per chunk)
  CalibStats bf;
  bf.add("l", X.narrow(0, 0, 64).to(at::kBFloat16));
  at::Tensor Xb = X.narrow(0, 0, 64).to(at::kBFloat16).to(at::kDouble);
  EXPECT_LT(rel_err(bf.at("l").xtx(), at::mm(Xb.t(), Xb)), 1e-6);
}

TEST(CalibStats, Checks) {
  CalibStats s;
  s.add("model.layers.0.mlp.down_proj", at::ones({4, 8}));
  std::string e = error_of([&] { s.add("model.layers.0.mlp.down_proj", at::ones({4, 9})); });
  EXPECT_NE(e.find("model.layers.0.mlp.down_proj: activations have 9 channels, earlier batches "
                   "had 8"),
            std::string::npos)
      << e;
  at::Tensor x = at::ones({4, 8});
  x[2][3] = NAN;
  e = error_of([&] { s.add("model.layers.1.self_attn.q_proj", x); });
  EXPECT_NE(e.find("model.layers.1.self_attn.q_proj: activations contain NaN or Inf"),
            std::string::npos)
      << e;
  x[2][3] = -INFINITY;
  EXPECT_THROW(s.add("model.layers.0.mlp.down_proj", x), Error);
  EXPECT_EQ(s.at("model.layers.0.mlp.down_proj").count(), 4);  // failed batches add nothing
  EXPECT_THROW(s.add("l", at::ones({4, 8}, at::kInt)), Error);
  e = error_of([&] { s.at("nope"); });
  EXPECT_NE(e.find("no layer 'nope'"), std::string::npos) << e;
}

TEST(CalibStats, SaveLoadRoundTrip) {
  CalibStats s;
  auto L = synthetic_layer(300, 24, 8, 22);
  s.add("model.layers.0.self_attn.q_proj", L.X.to(at::kFloat));
  s.add("model.layers.0.mlp.down_proj", L.X.narrow(1, 0, 16).to(at::kFloat));
  const std::string path = tmp_path("wush_calib_stats_test.safetensors");
  s.save(path);
  CalibStats r = CalibStats::load(path);
  EXPECT_EQ(r.names(), s.names());
  for (const auto& n : s.names()) {
    EXPECT_TRUE(at::equal(r.at(n).xtx(), s.at(n).xtx())) << n;
    EXPECT_TRUE(at::equal(r.at(n).absmax(), s.at(n).absmax())) << n;
    EXPECT_EQ(r.at(n).count(), s.at(n).count()) << n;
    EXPECT_EQ(r.at(n).name(), n);
  }
  // the loaded statistics feed a transform fit directly
  auto t = make_transform("wush-local");
  t->fit(FitInput::from_stats(r.at("model.layers.0.self_attn.q_proj"), L.W, 8));
  EXPECT_EQ(t->num_blocks(), 3);

  // validation on load
  std::string bytes = read_file(path);
  write_file_atomic(path, bytes.substr(0, bytes.size() / 2));
  EXPECT_THROW(CalibStats::load(path), Error);
  tensor_file::Contents c = tensor_file::decode(bytes, "x");
  c.tensors.erase("model.layers.0.mlp.down_proj.count");
  tensor_file::save(path, c);
  std::string e = error_of([&] { CalibStats::load(path); });
  EXPECT_NE(e.find("layer 'model.layers.0.mlp.down_proj' lacks its absmax or count"),
            std::string::npos)
      << e;
  c = tensor_file::decode(bytes, "x");
  c.tensors["model.layers.0.mlp.down_proj.xtx"][1][1] = NAN;
  tensor_file::save(path, c);
  e = error_of([&] { CalibStats::load(path); });
  EXPECT_NE(e.find("model.layers.0.mlp.down_proj: xtx contains NaN or Inf"), std::string::npos)
      << e;
  c = tensor_file::decode(bytes, "x");
  c.tensors["model.layers.0.mlp.down_proj.absmax"] = at::zeros({15});
  tensor_file::save(path, c);
  e = error_of([&] { CalibStats::load(path); });
  EXPECT_NE(e.find("absmax must have shape [16]"), std::string::npos) << e;
  c = tensor_file::decode(bytes, "x");
  c.metadata["format"] = "other";
  tensor_file::save(path, c);
  e = error_of([&] { CalibStats::load(path); });
  EXPECT_NE(e.find("not a wush calibration statistics file"), std::string::npos) << e;
  wush::remove_file(path);
}

TEST(TensorFile, SafetensorsLayout) {
  tensor_file::Contents c;
  c.tensors["a"] = at::arange(6, at::kDouble).reshape({2, 3});
  c.tensors["b"] = at::scalar_tensor(int64_t(42), at::kLong);
  c.metadata["k"] = "v";
  std::string bytes = tensor_file::encode(c);
  uint64_t n = 0;
  for (int i = 0; i < 8; ++i) n |= uint64_t(uint8_t(bytes[i])) << (8 * i);
  EXPECT_EQ(n % 8, 0u);
  auto h = nlohmann::json::parse(bytes.substr(8, n));
  EXPECT_EQ(h["a"]["dtype"], "F64");
  EXPECT_EQ(h["a"]["shape"], nlohmann::json::array({2, 3}));
  EXPECT_EQ(h["a"]["data_offsets"], nlohmann::json::array({0, 48}));
  EXPECT_EQ(h["b"]["data_offsets"], nlohmann::json::array({48, 56}));
  EXPECT_EQ(h["__metadata__"]["k"], "v");
  EXPECT_EQ(bytes.size(), 8 + n + 56);
  double v;
  std::memcpy(&v, bytes.data() + 8 + n + 5 * 8, 8);
  EXPECT_EQ(v, 5.0);
  tensor_file::Contents d = tensor_file::decode(bytes, "x");
  EXPECT_TRUE(at::equal(d.tensors["a"], c.tensors["a"]));
  EXPECT_EQ(d.tensors["b"].item<int64_t>(), 42);
  EXPECT_EQ(d.metadata, c.metadata);
  std::string bad = bytes;
  bad[0] = char(0xff);  // header length beyond the file
  EXPECT_THROW(tensor_file::decode(bad, "x"), Error);
}

TEST(CalibStats, CudaMatchesCpu) {
  if (!at::hasCUDA()) GTEST_SKIP() << "no CUDA device";
  auto L = synthetic_layer(5000, 64, 8, 23);
  at::Tensor x = L.X.to(at::kFloat);
  CalibStats cpu, gpu;
  cpu.add("l", x);
  gpu.add("l", x.cuda().reshape({10, 500, 64}));
  EXPECT_TRUE(gpu.at("l").xtx().is_cuda());
  EXPECT_EQ(gpu.at("l").count(), 5000);
  at::Tensor X32 = x.to(at::kDouble);
  EXPECT_LT(rel_err(gpu.at("l").xtx().cpu(), at::mm(X32.t(), X32)), 2e-6);
  EXPECT_TRUE(at::equal(gpu.at("l").absmax().cpu(), cpu.at("l").absmax()));
  const std::string path = tmp_path("wush_calib_stats_cuda.safetensors");
  gpu.save(path);
  EXPECT_TRUE(at::equal(CalibStats::load(path).at("l").xtx(), gpu.at("l").xtx().cpu()));
  wush::remove_file(path);
}

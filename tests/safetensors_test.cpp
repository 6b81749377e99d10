// safetensors reader/writer (src/model/safetensors.h) against the format specification
// (github.com/huggingface/safetensors, "Format"): byte-exact output, every dtype, every bad input.
#include <gtest/gtest.h>

#include <nlohmann/json.hpp>

#include "core/atomic_file.h"
#include "core/paths.h"
#include "model/safetensors.h"
#include "modelio_test_util.h"

using namespace wush;
using wush::test::expect_error;
using wush::test::safetensors_bytes;
using wush::test::TempDir;
using wush::test::write_bytes;

namespace {

// Deterministic values of a dtype's holder type; FP8 dtypes as raw bytes 0..255.
SafeTensor sample(const SafeDType& d, const std::vector<int64_t>& shape, int seed) {
  at::manual_seed(seed);
  at::Tensor t;
  if (d.scalar == at::kBool) t = at::randint(0, 2, shape).to(at::kBool);
  else if (d.scalar == at::kByte) t = at::randint(0, 256, shape).to(at::kByte);
  else if (at::isIntegralType(d.scalar, false)) t = at::randint(-100, 100, shape).to(d.scalar);
  else t = at::randn(shape).to(d.scalar);
  return d.scalar == at::kByte ? SafeTensor::raw(t, d.name) : SafeTensor::of(t);
}

}  // namespace

TEST(SafetensorsTest, RoundTripEveryDtypeAndShape) {
  TempDir dir("st_roundtrip");
  std::vector<std::pair<std::string, SafeTensor>> tensors;
  int seed = 0;
  const std::vector<std::pair<std::string, std::vector<int64_t>>> shapes = {{"3x5", {3, 5}}, {"0d", {}}, {"0x4", {0, 4}}};
  for (const SafeDType& d : safe_dtypes())
    for (const auto& [tag, shape] : shapes) tensors.push_back({std::string(d.name) + "/" + tag, sample(d, shape, seed++)});
  ASSERT_EQ(safe_dtypes().size(), 13u);
  std::string path = dir / "all.safetensors";
  write_safetensors(path, tensors, {{"format", "pt"}, {"note", "x"}});
  std::map<std::string, std::string> meta;
  auto back = read_safetensors(path, &meta);
  EXPECT_EQ(meta, (std::map<std::string, std::string>{{"format", "pt"}, {"note", "x"}}));
  ASSERT_EQ(back.size(), tensors.size());
  for (const auto& [name, t] : tensors) {
    SCOPED_TRACE(name);
    const SafeTensor& r = back.at(name);
    EXPECT_EQ(r.dtype, t.dtype);
    EXPECT_EQ(r.shape(), t.shape());
    EXPECT_EQ(r.data.scalar_type(), t.data.scalar_type());
    EXPECT_EQ(r.nbytes(), t.nbytes());
    // Bit-exact: compare the bytes, not the values (NaN-safe, -0 distinct).
    if (t.nbytes() > 0)  // data_ptr() of an empty tensor may be null: memcmp(nullptr, ..., 0) is UB
      EXPECT_EQ(0, std::memcmp(r.data.contiguous().data_ptr(), t.data.contiguous().data_ptr(), size_t(t.nbytes())));
  }
  EXPECT_EQ(back.at("F8_E8M0/0d").data.dim(), 0);
  EXPECT_EQ(back.at("F32/0x4").data.sizes(), at::IntArrayRef({0, 4}));
}

// The writer's bytes, spelled out by hand from the specification: 8-byte LE length, JSON header
// (keys sorted) padded with spaces to a multiple of 8, then the data in the order given.
TEST(SafetensorsTest, WriterIsByteExact) {
  TempDir dir("st_exact");
  at::Tensor w = at::tensor({1.0f, -2.0f});
  at::Tensor s = at::full({}, 127, at::kByte);                          // E8M0 0x7F = 2^0
  at::Tensor b = at::full({1, 1}, 1.5, at::TensorOptions(at::kBFloat16));  // 0x3FC0
  std::string path = dir / "x.safetensors";
  write_safetensors(path, {{"w", SafeTensor::of(w)}, {"s", SafeTensor::raw(s, "F8_E8M0")}, {"b", SafeTensor::of(b)}});
  const std::string header =
      "{\"__metadata__\":{\"format\":\"pt\"},\"b\":{\"data_offsets\":[9,11],\"dtype\":\"BF16\",\"shape\":[1,1]},"
      "\"s\":{\"data_offsets\":[8,9],\"dtype\":\"F8_E8M0\",\"shape\":[]},"
      "\"w\":{\"data_offsets\":[0,8],\"dtype\":\"F32\",\"shape\":[2]}}  ";  // 198 + 2 spaces = 200
  const std::string expected = std::string("\xC8\0\0\0\0\0\0\0", 8) + header +
                               std::string("\x00\x00\x80\x3F\x00\x00\x00\xC0", 8)  // 1.0f, -2.0f
                               + std::string("\x7F", 1)                           // E8M0
                               + std::string("\xC0\x3F", 2);                      // bf16 1.5
  EXPECT_EQ(wush::test::read_bytes(path), expected);
  // Read back: the BF16 tensor sits at an odd offset (copied for alignment), values intact.
  auto r = read_safetensors(path);
  EXPECT_EQ(r.at("b").data.item<float>(), 1.5f);
  EXPECT_EQ(r.at("s").dtype, "F8_E8M0");
  EXPECT_EQ(r.at("s").data.item<uint8_t>(), 127);
  EXPECT_EQ(r.at("w").data[1].item<float>(), -2.0f);
}

// A file from another writer: no metadata, unpadded header with spaces, keys out of order.
TEST(SafetensorsTest, ReadsHandBuiltFile) {
  TempDir dir("st_hand");
  std::string path = dir / "h.safetensors";
  write_bytes(path, safetensors_bytes(R"({"b": {"dtype": "I16", "shape": [2], "data_offsets": [4, 8]},
                                         "a": {"dtype": "U8", "shape": [2, 2], "data_offsets": [0, 4]}})",
                                      std::string("\x01\x02\x03\x04\x02\x01\xFF\xFF", 8)));
  SafetensorsFile f(path);
  EXPECT_TRUE(f.metadata().empty());
  EXPECT_EQ(f.tensors().at("b").begin, 4u);
  at::Tensor a = f.get("a").data, b = f.get("b").data;
  EXPECT_EQ(a.sizes(), at::IntArrayRef({2, 2}));
  EXPECT_EQ(a[1][0].item<uint8_t>(), 3);
  EXPECT_EQ(b.scalar_type(), at::kShort);
  EXPECT_EQ(b[0].item<int16_t>(), 0x0102);  // little-endian
  EXPECT_EQ(b[1].item<int16_t>(), -1);
}

// Tensors are views of a copy-on-write mapping: no copy, alive after the file object, and writes
// into them never reach the file.
TEST(SafetensorsTest, ZeroCopyMappingOutlivesFileAndIsPrivate) {
  TempDir dir("st_mmap");
  std::string path = dir / "m.safetensors";
  write_safetensors(path, {{"x", SafeTensor::of(at::arange(16, at::kFloat))}});
  at::Tensor x;
  {
    SafetensorsFile f(path);
    x = f.get("x").data;
    EXPECT_EQ(f.get("x").data.data_ptr(), x.data_ptr());  // both views of the one mapping
  }
  EXPECT_EQ(x[15].item<float>(), 15.0f);
  x.mul_(2);
  EXPECT_EQ(x[15].item<float>(), 30.0f);
  EXPECT_EQ(read_safetensors(path).at("x").data[15].item<float>(), 15.0f);
}

TEST(SafetensorsTest, ShardedDirectoryWithIndex) {
  TempDir dir("st_shards");
  std::vector<SafeTensorSpec> specs;
  std::vector<at::Tensor> values;
  for (int i = 0; i < 5; ++i) {
    specs.push_back({"t" + std::to_string(i), "F32", {100}});  // 400 bytes each
    values.push_back(at::full({100}, float(i)));
  }
  auto source = [&](size_t i) { return SafeTensor::of(values[i]); };
  auto files = write_safetensors_dir(dir.path, specs, source, 1000);
  EXPECT_EQ(files, (std::vector<std::string>{"model-00001-of-00003.safetensors", "model-00002-of-00003.safetensors",
                                             "model-00003-of-00003.safetensors", "model.safetensors.index.json"}));
  auto index = nlohmann::json::parse(wush::test::read_bytes(dir / "model.safetensors.index.json"));
  EXPECT_EQ(index["metadata"]["total_size"], 2000);
  EXPECT_EQ(index["weight_map"]["t2"], "model-00002-of-00003.safetensors");
  EXPECT_EQ(index["weight_map"]["t4"], "model-00003-of-00003.safetensors");
  auto all = read_safetensors(dir / "model.safetensors.index.json");
  ASSERT_EQ(all.size(), 5u);
  for (int i = 0; i < 5; ++i) EXPECT_TRUE(at::equal(all.at("t" + std::to_string(i)).data, values[size_t(i)]));

  TempDir one("st_single");
  EXPECT_EQ(write_safetensors_dir(one.path, specs, source), std::vector<std::string>{"model.safetensors"});
  EXPECT_EQ(read_safetensors(one.path).size(), 5u);  // a directory resolves to its weights
  TempDir forced("st_forced");
  EXPECT_EQ(write_safetensors_dir(forced.path, specs, source, kDefaultMaxShardBytes, true).front(),
            "model-00001-of-00001.safetensors");
}

TEST(SafetensorsTest, WriterRejectsMismatchedSource) {
  TempDir dir("st_mismatch");
  std::string path = dir / "bad.safetensors";
  expect_error([&] { write_safetensors(path, {{"x", "F32", {3}}}, [](size_t) { return SafeTensor::of(at::zeros({4})); }); },
               {path, "'x'", "F32 [4]", "declared as F32 [3]"});
  EXPECT_FALSE(wush::path_exists(path));  // nothing half-written
  EXPECT_TRUE(wush::dir_is_empty(dir.path));
  expect_error([&] { SafeTensor::raw(at::zeros({2}), "F8_E4M3"); }, {"F8_E4M3", "uint8"});
  expect_error([&] { SafeTensor::of(at::zeros({2}, at::kComplexFloat)); }, {"no safetensors dtype"});
}

// Every malformed file: one line naming the file and the problem.
TEST(SafetensorsTest, RejectsBadFiles) {
  TempDir dir("st_bad");
  const std::string f32x2 = R"("dtype":"F32","shape":[2])";
  const std::string data8(8, '\0');
  struct Case {
    const char* name;
    std::string bytes;
    std::vector<std::string> message;
  };
  std::string good = safetensors_bytes(R"({"a":{"dtype":"F32","shape":[2],"data_offsets":[0,8]}})", data8);
  std::vector<Case> cases = {
      {"short", std::string("\x10\0\0", 3), {"truncated", "3 bytes"}},
      {"header_beyond", safetensors_bytes("{}", "").replace(0, 1, "\x40"), {"header length 64 exceeds the file"}},
      {"bad_json", safetensors_bytes(R"({"a": {"dtype": "F32",)", ""), {"not valid JSON"}},
      {"not_object", safetensors_bytes("[1, 2]", ""), {"not a JSON object"}},
      {"unknown_dtype", safetensors_bytes(R"({"a":{"dtype":"F7","shape":[2],"data_offsets":[0,8]}})", data8),
       {"'a'", "unknown dtype 'F7'"}},
      {"size_mismatch", safetensors_bytes(R"({"a":{"dtype":"F16","shape":[2],"data_offsets":[0,8]}})", data8),
       {"'a'", "8 bytes in data_offsets", "F16 and shape [2] need 4"}},
      {"outside", safetensors_bytes(R"({"a":{"dtype":"F32","shape":[2],"data_offsets":[4,12]}})", data8),
       {"'a'", "[4, 12]", "outside the data area of 8 bytes"}},
      {"truncated_data", good.substr(0, good.size() - 3), {"'a'", "outside the data area of 5 bytes"}},
      {"overlap", safetensors_bytes(R"({"a":{)" + f32x2 + R"(,"data_offsets":[0,8]},"b":{"dtype":"F32","shape":[1],"data_offsets":[4,8]}})",
                                    data8),
       {"'a' and 'b' overlap"}},
      {"hole", safetensors_bytes(R"({"a":{"dtype":"F32","shape":[1],"data_offsets":[4,8]}})", data8),
       {"bytes [0, 4)", "belong to no tensor"}},
      {"trailing", safetensors_bytes(R"({"a":{"dtype":"F32","shape":[1],"data_offsets":[0,4]}})", data8),
       {"bytes [4, 8)", "belong to no tensor"}},
      {"no_offsets", safetensors_bytes(R"({"a":{"dtype":"F32","shape":[2]}})", data8), {"'a'", "no data_offsets"}},
      {"negative_shape", safetensors_bytes(R"({"a":{"dtype":"F32","shape":[-2],"data_offsets":[0,8]}})", data8),
       {"'a'", "not a non-negative integer"}},
      {"bad_metadata", safetensors_bytes(R"({"__metadata__":{"format":1}})", ""), {"__metadata__ entry 'format'"}},
  };
  for (const Case& c : cases) {
    SCOPED_TRACE(c.name);
    std::string path = dir / (std::string(c.name) + ".safetensors");
    write_bytes(path, c.bytes);
    std::vector<std::string> parts = c.message;
    parts.push_back(path);
    expect_error([&] { SafetensorsFile f(path); }, parts);
  }
  expect_error([&] { SafetensorsFile f(dir / "absent.safetensors"); }, {"absent.safetensors", "no such"});
}

TEST(SafetensorsTest, RejectsInconsistentIndex) {
  TempDir dir("st_badindex");
  write_safetensors(dir / "s1.safetensors", {{"a", SafeTensor::of(at::zeros({2}))}, {"b", SafeTensor::of(at::ones({2}))}});
  auto index_with = [&](const std::string& weight_map) {
    std::string p = dir / "model.safetensors.index.json";
    write_bytes(p, R"({"metadata": {}, "weight_map": )" + weight_map + "}");
    return p;
  };
  std::string p = index_with(R"({"a": "s1.safetensors", "b": "s1.safetensors"})");
  EXPECT_EQ(read_safetensors(p).size(), 2u);
  p = index_with(R"({"a": "s1.safetensors", "b": "s1.safetensors", "c": "s2.safetensors"})");
  expect_error([&] { read_safetensors(p); }, {p, "shard 's2.safetensors'", "'c'", "does not exist"});
  p = index_with(R"({"a": "s1.safetensors", "b": "s1.safetensors", "z": "s1.safetensors"})");
  expect_error([&] { read_safetensors(p); }, {p, "tensor 'z' is missing from shard 's1.safetensors'"});
  p = index_with(R"({"a": "s1.safetensors"})");
  expect_error([&] { read_safetensors(p); }, {p, "holds tensor 'b' that the index does not list"});
  p = index_with(R"([1)");
  expect_error([&] { read_safetensors(p); }, {p, "not valid JSON"});
  p = index_with(R"({})");
  expect_error([&] { read_safetensors(p); }, {p, "weight_map is empty"});
}

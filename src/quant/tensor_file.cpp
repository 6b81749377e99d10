#include "quant/tensor_file.h"

#include <algorithm>
#include <cstring>
#include <nlohmann/json.hpp>

#include "core/atomic_file.h"
#include "core/error.h"

namespace wush::tensor_file {
namespace {

struct DtypeRow {
  at::ScalarType type;
  const char* name;  // safetensors dtype string
};
constexpr DtypeRow kDtypes[] = {{at::kDouble, "F64"},
                                {at::kFloat, "F32"},
                                {at::kBFloat16, "BF16"},
                                {at::kLong, "I64"}};

const char* dtype_name(at::ScalarType t) {
  for (const auto& r : kDtypes)
    if (r.type == t) return r.name;
  WUSH_FAIL("tensor_file: dtype %s is not supported (F64, F32, BF16, I64)", c10::toString(t));
}

at::ScalarType dtype_of(const std::string& name, const std::string& what) {
  for (const auto& r : kDtypes)
    if (name == r.name) return r.type;
  WUSH_FAIL("%s: unsupported dtype '%s' (supported: F64, F32, BF16, I64)", what.c_str(),
            name.c_str());
}

static_assert(sizeof(uint64_t) == 8, "header length is 8 bytes");

}  // namespace

std::string encode(const Contents& c) {
  nlohmann::json header = nlohmann::json::object();
  if (!c.metadata.empty()) header["__metadata__"] = c.metadata;
  std::string data;
  for (const auto& [name, t0] : c.tensors) {
    WUSH_CHECK(name != "__metadata__", "tensor_file: '__metadata__' is reserved");
    at::Tensor t = t0.detach().to(at::kCPU).contiguous();
    size_t nbytes = size_t(t.numel()) * t.element_size();
    size_t begin = data.size();
    data.append(static_cast<const char*>(t.data_ptr()), nbytes);
    header[name] = {{"dtype", dtype_name(t.scalar_type())},
                    {"shape", t.sizes().vec()},
                    {"data_offsets", {begin, begin + nbytes}}};
  }
  std::string h = header.dump();
  h.append((8 - h.size() % 8) % 8, ' ');  // align the data to 8 bytes, as safetensors does
  uint64_t n = h.size();
  std::string out(8, '\0');
  for (int i = 0; i < 8; ++i) out[i] = char((n >> (8 * i)) & 0xff);  // little-endian
  return out + h + data;
}

Contents decode(const std::string& bytes, const std::string& what) {
  WUSH_CHECK(bytes.size() >= 8, "%s: %zu bytes, too short for a tensor file header", what.c_str(),
             bytes.size());
  uint64_t n = 0;
  for (int i = 0; i < 8; ++i) n |= uint64_t(uint8_t(bytes[i])) << (8 * i);
  WUSH_CHECK(n <= bytes.size() - 8, "%s: header length %llu exceeds the file size %zu",
             what.c_str(), (unsigned long long)n, bytes.size());
  nlohmann::json header;
  try {
    header = nlohmann::json::parse(bytes.begin() + 8, bytes.begin() + 8 + n);
  } catch (const std::exception& e) {
    WUSH_FAIL("%s: header is not valid JSON (%s)", what.c_str(), e.what());
  }
  WUSH_CHECK(header.is_object(), "%s: header is not a JSON object", what.c_str());
  const size_t data_begin = 8 + n, data_size = bytes.size() - data_begin;
  Contents c;
  std::vector<std::pair<size_t, size_t>> ranges;
  for (const auto& [name, v] : header.items()) {
    if (name == "__metadata__") {
      WUSH_CHECK(v.is_object(), "%s: __metadata__ is not an object", what.c_str());
      for (const auto& [k, s] : v.items()) {
        WUSH_CHECK(s.is_string(), "%s: __metadata__.%s is not a string", what.c_str(), k.c_str());
        c.metadata[k] = s.get<std::string>();
      }
      continue;
    }
    const std::string tw = what + ": tensor '" + name + "'";
    WUSH_CHECK(v.is_object() && v.contains("dtype") && v.contains("shape") &&
                   v.contains("data_offsets"),
               "%s: needs dtype, shape and data_offsets", tw.c_str());
    WUSH_CHECK(v["dtype"].is_string(), "%s: dtype is not a string", tw.c_str());
    at::ScalarType type = dtype_of(v["dtype"].get<std::string>(), tw);
    std::vector<int64_t> shape;
    int64_t numel = 1;
    WUSH_CHECK(v["shape"].is_array(), "%s: shape is not an array", tw.c_str());
    for (const auto& d : v["shape"]) {
      WUSH_CHECK(d.is_number_integer() && d.get<int64_t>() >= 0 && d.get<int64_t>() < (1LL << 40),
                 "%s: bad shape entry %s", tw.c_str(), d.dump().c_str());
      shape.push_back(d.get<int64_t>());
      numel *= shape.back();
      WUSH_CHECK(numel < (1LL << 40), "%s: shape too large", tw.c_str());
    }
    const auto& off = v["data_offsets"];
    WUSH_CHECK(off.is_array() && off.size() == 2 && off[0].is_number_unsigned() &&
                   off[1].is_number_unsigned(),
               "%s: data_offsets must be two non-negative integers", tw.c_str());
    size_t b = off[0].get<size_t>(), e = off[1].get<size_t>();
    size_t want = size_t(numel) * c10::elementSize(type);
    WUSH_CHECK(b <= e && e <= data_size, "%s: data_offsets [%zu, %zu) outside the %zu data bytes",
               tw.c_str(), b, e, data_size);
    WUSH_CHECK(e - b == want, "%s: %zu bytes stored, shape and dtype need %zu", tw.c_str(), e - b,
               want);
    at::Tensor t = at::empty(shape, at::TensorOptions().dtype(type));
    if (want) std::memcpy(t.data_ptr(), bytes.data() + data_begin + b, want);
    c.tensors[name] = t;
    if (want) ranges.push_back({b, e});
  }
  std::sort(ranges.begin(), ranges.end());
  for (size_t i = 1; i < ranges.size(); ++i)
    WUSH_CHECK(ranges[i].first >= ranges[i - 1].second, "%s: tensor data ranges overlap",
               what.c_str());
  return c;
}

void save(const std::string& path, const Contents& c) { write_file_atomic(path, encode(c)); }

Contents load(const std::string& path) { return decode(read_file(path), path); }

}  // namespace wush::tensor_file

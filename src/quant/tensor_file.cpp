#include "quant/tensor_file.h"

#include <cstring>

#include "core/atomic_file.h"
#include "core/error.h"
#include "model/safetensors.h"

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

}  // namespace

std::string encode(const Contents& c) {
  std::vector<SafeTensorSpec> specs;
  std::vector<at::Tensor> data;
  for (const auto& [name, t0] : c.tensors) {
    at::Tensor t = t0.detach().to(at::kCPU).contiguous();
    specs.push_back({name, dtype_name(t.scalar_type()), t.sizes().vec()});
    data.push_back(t);
  }
  std::string out = safetensors_header(specs, c.metadata);  // checks the names; pads to 8 bytes
  for (const at::Tensor& t : data) out.append(static_cast<const char*>(t.data_ptr()), size_t(t.nbytes()));
  return out;
}

Contents decode(const std::string& bytes, const std::string& what) {
  const SafeHeader h = parse_safetensors_header(reinterpret_cast<const uint8_t*>(bytes.data()), bytes.size(), what);
  Contents c;
  c.metadata = h.metadata;
  for (const auto& [name, info] : h.infos) {
    at::Tensor t = at::empty(info.shape, at::TensorOptions().dtype(dtype_of(info.dtype, what + ": tensor '" + name + "'")));
    if (t.nbytes() > 0) std::memcpy(t.data_ptr(), bytes.data() + h.data_begin + info.begin, t.nbytes());
    c.tensors[name] = t;
  }
  return c;
}

void save(const std::string& path, const Contents& c) { write_file_atomic(path, encode(c)); }

Contents load(const std::string& path) { return decode(read_file(path), path); }

}  // namespace wush::tensor_file

// safetensors files (https://github.com/huggingface/safetensors, format section): an 8-byte
// little-endian header length N, N bytes of JSON {name: {dtype, shape, data_offsets: [begin, end)},
// "__metadata__": {str: str}}, then the data area, fully covered by the tensors (no holes).
// Reading memory-maps the file and validates every header entry before any tensor is touched;
// tensors wrap the mapping without a copy. Writing streams tensor by tensor into a temporary file
// that is renamed into place (AtomicFile); sharded directories get model.safetensors.index.json.
#pragma once
#include <ATen/ATen.h>

#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <string>
#include <utility>
#include <vector>

namespace wush {

// One row per safetensors dtype string we read and write. The FP8 dtypes have no ATen type in
// every libtorch we build against: they are held as uint8 raw bytes (one byte per element).
struct SafeDType {
  const char* name;       // "F32", "BF16", "F8_E8M0", ...
  int64_t size;           // bytes per element
  at::ScalarType scalar;  // the ATen type that holds the elements (kByte for FP8)
};
const std::vector<SafeDType>& safe_dtypes();
const SafeDType* find_safe_dtype(const std::string& name);  // nullptr if unknown
// The safetensors dtype string of an ATen scalar type; wush::Error if it has none.
std::string safe_dtype_of(at::ScalarType t);

// A tensor together with its on-disk dtype. data is a CPU tensor whose ATen type is the dtype's
// holder type (FP8 tensors: kByte); its sizes are the logical shape, [] for a 0-dim tensor.
struct SafeTensor {
  std::string dtype;
  at::Tensor data;
  std::vector<int64_t> shape() const { return data.sizes().vec(); }
  int64_t nbytes() const;
  // A float/int/bool tensor, dtype derived from its ATen type.
  static SafeTensor of(const at::Tensor& t);
  // Raw bytes of a dtype without an ATen type (F8_E4M3, F8_E5M2, F8_E8M0): u8 holds one byte per
  // element in the logical shape.
  static SafeTensor raw(const at::Tensor& u8, const std::string& dtype);
};

// The header entry of one stored tensor. begin/end are relative to the data area.
struct SafeTensorInfo {
  std::string dtype;
  std::vector<int64_t> shape;
  uint64_t begin = 0, end = 0;
};

// The header of safetensors bytes, validated as a file is on open (every entry; the tensors tile
// the data area exactly). `what` names the source in errors. infos are relative to the data area,
// which starts at byte data_begin. Used by SafetensorsFile and by in-memory containers
// (quant/tensor_file.h).
struct SafeHeader {
  std::map<std::string, std::string> metadata;
  std::map<std::string, SafeTensorInfo> infos;
  uint64_t data_begin = 0;
};
SafeHeader parse_safetensors_header(const uint8_t* bytes, uint64_t size, const std::string& what);

// One memory-mapped .safetensors file, validated on open. Every error is one line naming the file.
class SafetensorsFile {
 public:
  explicit SafetensorsFile(const std::string& path);
  const std::string& path() const { return path_; }
  const std::map<std::string, std::string>& metadata() const { return metadata_; }
  const std::map<std::string, SafeTensorInfo>& tensors() const { return infos_; }
  bool has(const std::string& name) const { return infos_.count(name) > 0; }
  // A view of the mapping (copy-on-write: writing into it never touches the file). Copies only
  // when the stored offset is not aligned to the element size.
  SafeTensor get(const std::string& name) const;
  std::map<std::string, SafeTensor> get_all() const;

 private:
  struct Mapping;
  std::string path_;
  std::shared_ptr<Mapping> map_;
  const uint8_t* data_ = nullptr;  // start of the data area
  std::map<std::string, std::string> metadata_;
  std::map<std::string, SafeTensorInfo> infos_;
};

// All tensors of a .safetensors file or of a sharded set given by its *.safetensors.index.json
// (validated: every shard exists and is valid, every indexed tensor is in its shard, no shard holds
// a tensor the index does not list). metadata (optional) receives the first file's __metadata__.
std::map<std::string, SafeTensor> read_safetensors(const std::string& path,
                                                   std::map<std::string, std::string>* metadata = nullptr);

// The name, dtype and shape of a tensor to write.
struct SafeTensorSpec {
  std::string name, dtype;
  std::vector<int64_t> shape;
  int64_t nbytes() const;
};
// Produces tensor i of the spec list when its turn comes, so that a writer never holds more than
// one tensor in memory. The result must match specs[i] in dtype and shape.
using SafeTensorSource = std::function<SafeTensor(size_t i)>;

using SafeMetadata = std::map<std::string, std::string>;
inline const SafeMetadata kPtMetadata = {{"format", "pt"}};

// Writes one .safetensors file atomically, the tensors in the order given, header padded with
// spaces to a multiple of 8 bytes.
void write_safetensors(const std::string& path, const std::vector<SafeTensorSpec>& specs,
                       const SafeTensorSource& source, const SafeMetadata& metadata = kPtMetadata);
void write_safetensors(const std::string& path, const std::vector<std::pair<std::string, SafeTensor>>& tensors,
                       const SafeMetadata& metadata = kPtMetadata);
// The exact file bytes of write_safetensors' header (length prefix + padded JSON).
std::string safetensors_header(const std::vector<SafeTensorSpec>& specs, const SafeMetadata& metadata);

// Hugging Face weight files in directory dir: "model.safetensors" when the tensors fit in
// max_shard_bytes (and !always_index), else "model-0000i-of-0000n.safetensors" (tensors in order,
// a new shard when the next tensor would overflow the current one) plus
// "model.safetensors.index.json". Returns the file names written.
constexpr int64_t kDefaultMaxShardBytes = int64_t(2) << 30;  // 2 GiB
std::vector<std::string> write_safetensors_dir(const std::string& dir, const std::vector<SafeTensorSpec>& specs,
                                               const SafeTensorSource& source,
                                               int64_t max_shard_bytes = kDefaultMaxShardBytes,
                                               bool always_index = false,
                                               const SafeMetadata& metadata = kPtMetadata);

}  // namespace wush

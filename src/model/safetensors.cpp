// safetensors reading (mmap + validation) and streaming writing. Format: see safetensors.h.
#include "model/safetensors.h"

#include <fcntl.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <nlohmann/json.hpp>
#include <set>

#include "core/atomic_file.h"
#include "core/error.h"
#include "core/paths.h"


namespace wush {

// The format stores little-endian numbers; we write and map them as they are in memory.
static_assert(__BYTE_ORDER__ == __ORDER_LITTLE_ENDIAN__, "safetensors I/O assumes a little-endian host");

// Upper bound of the JSON header, as the reference implementation enforces (100 MB).
constexpr uint64_t kMaxHeaderBytes = 100'000'000;

const std::vector<SafeDType>& safe_dtypes() {
  static const std::vector<SafeDType> t = {
      {"F64", 8, at::kDouble},    {"F32", 4, at::kFloat},    {"F16", 2, at::kHalf},
      {"BF16", 2, at::kBFloat16}, {"I64", 8, at::kLong},     {"I32", 4, at::kInt},
      {"I16", 2, at::kShort},     {"I8", 1, at::kChar},      {"U8", 1, at::kByte},
      {"BOOL", 1, at::kBool},     {"F8_E4M3", 1, at::kByte}, {"F8_E5M2", 1, at::kByte},
      {"F8_E8M0", 1, at::kByte},
  };
  return t;
}

const SafeDType* find_safe_dtype(const std::string& name) {
  for (const SafeDType& d : safe_dtypes())
    if (name == d.name) return &d;
  return nullptr;
}

static std::string dtype_list() {
  std::string s;
  for (const SafeDType& d : safe_dtypes()) s += (s.empty() ? "" : ", ") + std::string(d.name);
  return s;
}

std::string safe_dtype_of(at::ScalarType t) {
  // U8 is the one dtype of kByte that has a native meaning; FP8 bytes go through SafeTensor::raw.
  for (const SafeDType& d : safe_dtypes())
    if (d.scalar == t) return d.name;
  WUSH_FAIL("tensor type %s has no safetensors dtype (valid: %s)", c10::toString(t), dtype_list().c_str());
}

// ---- SafeTensor --------------------------------------------------------------------------------

int64_t SafeTensor::nbytes() const {
  const SafeDType* d = find_safe_dtype(dtype);
  WUSH_ASSERT(d != nullptr);
  return data.numel() * d->size;
}

SafeTensor SafeTensor::of(const at::Tensor& t) {
  WUSH_CHECK(t.defined(), "SafeTensor::of: undefined tensor");
  return SafeTensor{safe_dtype_of(t.scalar_type()), t};
}

SafeTensor SafeTensor::raw(const at::Tensor& u8, const std::string& dtype) {
  const SafeDType* d = find_safe_dtype(dtype);
  WUSH_CHECK(d != nullptr, "SafeTensor::raw: unknown dtype '%s' (valid: %s)", dtype.c_str(), dtype_list().c_str());
  WUSH_CHECK(d->size == 1 && u8.scalar_type() == at::kByte,
             "SafeTensor::raw: dtype %s needs a uint8 tensor of one byte per element (got %s)", dtype.c_str(),
             c10::toString(u8.scalar_type()));
  return SafeTensor{dtype, u8};
}

int64_t SafeTensorSpec::nbytes() const {
  const SafeDType* d = find_safe_dtype(dtype);
  WUSH_CHECK(d != nullptr, "tensor '%s': unknown dtype '%s' (valid: %s)", name.c_str(), dtype.c_str(),
             dtype_list().c_str());
  int64_t n = d->size;
  for (int64_t s : shape) n *= s;
  return n;
}

// ---- reading ------------------------------------------------------------------------------------

struct SafetensorsFile::Mapping {
  void* addr = nullptr;
  size_t size = 0;
  ~Mapping() {
    if (addr != nullptr && addr != MAP_FAILED) ::munmap(addr, size);
  }
};

static std::string shape_str(const std::vector<int64_t>& s) {
  std::string r = "[";
  for (size_t i = 0; i < s.size(); ++i) r += (i ? ", " : "") + std::to_string(s[i]);
  return r + "]";
}

// Parses and checks one header entry; `data_size` is the size of the data area.
static SafeTensorInfo parse_entry(const std::string& file, const std::string& name, const nlohmann::json& e,
                                  uint64_t data_size) {
  const char* f = file.c_str();
  const char* n = name.c_str();
  WUSH_CHECK(e.is_object(), "%s: header entry '%s' is not an object", f, n);
  WUSH_CHECK(e.contains("dtype") && e["dtype"].is_string(), "%s: tensor '%s' has no dtype string", f, n);
  SafeTensorInfo info;
  info.dtype = e["dtype"].get<std::string>();
  const SafeDType* d = find_safe_dtype(info.dtype);
  WUSH_CHECK(d != nullptr, "%s: tensor '%s' has unknown dtype '%s' (valid: %s)", f, n, info.dtype.c_str(),
             dtype_list().c_str());
  WUSH_CHECK(e.contains("shape") && e["shape"].is_array(), "%s: tensor '%s' has no shape array", f, n);
  uint64_t bytes = uint64_t(d->size);
  for (const auto& s : e["shape"]) {
    WUSH_CHECK(s.is_number_unsigned() || (s.is_number_integer() && s.get<int64_t>() >= 0),
               "%s: tensor '%s' has a shape entry that is not a non-negative integer", f, n);
    uint64_t v = s.get<uint64_t>();
    WUSH_CHECK(!__builtin_mul_overflow(bytes, v, &bytes), "%s: tensor '%s' shape overflows", f, n);
    info.shape.push_back(int64_t(v));
  }
  const auto& off = e.contains("data_offsets") ? e["data_offsets"] : nlohmann::json();
  WUSH_CHECK(off.is_array() && off.size() == 2 && off[0].is_number_unsigned() && off[1].is_number_unsigned(),
             "%s: tensor '%s' has no data_offsets [begin, end] of non-negative integers", f, n);
  info.begin = off[0].get<uint64_t>();
  info.end = off[1].get<uint64_t>();
  WUSH_CHECK(info.begin <= info.end, "%s: tensor '%s' has data_offsets [%llu, %llu] with begin > end", f, n,
             (unsigned long long)info.begin, (unsigned long long)info.end);
  WUSH_CHECK(info.end - info.begin == bytes,
             "%s: tensor '%s' has %llu bytes in data_offsets but dtype %s and shape %s need %llu", f, n,
             (unsigned long long)(info.end - info.begin), info.dtype.c_str(), shape_str(info.shape).c_str(),
             (unsigned long long)bytes);
  WUSH_CHECK(info.end <= data_size,
             "%s: tensor '%s' data_offsets [%llu, %llu] lie outside the data area of %llu bytes", f, n,
             (unsigned long long)info.begin, (unsigned long long)info.end, (unsigned long long)data_size);
  return info;
}

SafeHeader parse_safetensors_header(const uint8_t* base, uint64_t size, const std::string& what) {
  const char* f = what.c_str();
  WUSH_CHECK(size >= 8, "%s: truncated: %llu bytes, fewer than the 8-byte header length", f, (unsigned long long)size);
  uint64_t n = 0;
  std::memcpy(&n, base, 8);
  WUSH_CHECK(n <= size - 8, "%s: header length %llu exceeds the file (%llu bytes after the length)", f,
             (unsigned long long)n, (unsigned long long)(size - 8));
  WUSH_CHECK(n <= kMaxHeaderBytes, "%s: header length %llu exceeds the %llu-byte limit", f, (unsigned long long)n,
             (unsigned long long)kMaxHeaderBytes);
  nlohmann::json h;
  try {
    h = nlohmann::json::parse(base + 8, base + 8 + n);
  } catch (const nlohmann::json::exception& ex) {
    WUSH_FAIL("%s: header is not valid JSON (%s)", f, ex.what());
  }
  WUSH_CHECK(h.is_object(), "%s: header is not a JSON object", f);
  SafeHeader r;
  r.data_begin = 8 + n;
  const uint64_t data_size = size - 8 - n;

  for (const auto& [name, e] : h.items()) {
    if (name == "__metadata__") {
      WUSH_CHECK(e.is_object(), "%s: __metadata__ is not an object of strings", f);
      for (const auto& [k, v] : e.items()) {
        WUSH_CHECK(v.is_string(), "%s: __metadata__ entry '%s' is not a string", f, k.c_str());
        r.metadata[k] = v.get<std::string>();
      }
      continue;
    }
    r.infos[name] = parse_entry(what, name, e, data_size);
  }

  // The tensors must tile the data area: sorted by begin, each starts where the previous ends.
  std::vector<const std::pair<const std::string, SafeTensorInfo>*> order;
  for (const auto& kv : r.infos) order.push_back(&kv);
  std::sort(order.begin(), order.end(), [](auto* a, auto* b) {
    return a->second.begin != b->second.begin ? a->second.begin < b->second.begin : a->second.end < b->second.end;
  });
  uint64_t covered = 0;
  const std::string* prev = nullptr;
  for (auto* kv : order) {
    const SafeTensorInfo& t = kv->second;
    WUSH_CHECK(t.begin >= covered, "%s: tensors '%s' and '%s' overlap (bytes [%llu, %llu) of the data area)", f,
               prev->c_str(), kv->first.c_str(), (unsigned long long)t.begin, (unsigned long long)covered);
    WUSH_CHECK(t.begin == covered, "%s: bytes [%llu, %llu) of the data area belong to no tensor", f,
               (unsigned long long)covered, (unsigned long long)t.begin);
    covered = t.end;
    prev = &kv->first;
  }
  WUSH_CHECK(covered == data_size, "%s: bytes [%llu, %llu) of the data area belong to no tensor", f,
             (unsigned long long)covered, (unsigned long long)data_size);
  return r;
}

SafetensorsFile::SafetensorsFile(const std::string& path) : path_(path), map_(std::make_shared<Mapping>()) {
  const char* f = path.c_str();
  WUSH_CHECK(path_exists(path), "%s: no such safetensors file", f);
  WUSH_CHECK(!is_directory(path), "%s: is a directory, expected a .safetensors file", f);
  int fd = ::open(f, O_RDONLY);
  WUSH_CHECK(fd >= 0, "%s: cannot open (%s)", f, std::strerror(errno));
  struct stat st {};
  if (::fstat(fd, &st) != 0) {
    ::close(fd);
    WUSH_FAIL("%s: cannot stat (%s)", f, std::strerror(errno));
  }
  const uint64_t size = uint64_t(st.st_size);
  if (size < 8) {
    ::close(fd);
    WUSH_FAIL("%s: truncated: %llu bytes, fewer than the 8-byte header length", f, (unsigned long long)size);
  }
  // Copy-on-write private mapping: tensors may be modified in place without touching the file.
  map_->addr = ::mmap(nullptr, size, PROT_READ | PROT_WRITE, MAP_PRIVATE, fd, 0);
  int e = errno;
  ::close(fd);
  WUSH_CHECK(map_->addr != MAP_FAILED, "%s: mmap failed (%s)", f, std::strerror(e));
  map_->size = size;
  const uint8_t* base = static_cast<const uint8_t*>(map_->addr);
  SafeHeader h = parse_safetensors_header(base, size, path);
  metadata_ = std::move(h.metadata);
  infos_ = std::move(h.infos);
  data_ = base + h.data_begin;
}

SafeTensor SafetensorsFile::get(const std::string& name) const {
  auto it = infos_.find(name);
  WUSH_CHECK(it != infos_.end(), "%s: no tensor '%s'", path_.c_str(), name.c_str());
  const SafeTensorInfo& info = it->second;
  const SafeDType* d = find_safe_dtype(info.dtype);
  auto opts = at::TensorOptions().dtype(d->scalar);
  if (info.end == info.begin) return SafeTensor{info.dtype, at::empty(info.shape, opts)};
  void* p = const_cast<uint8_t*>(data_ + info.begin);
  std::shared_ptr<Mapping> keep = map_;
  at::Tensor t = at::from_blob(p, info.shape, [keep](void*) {}, opts);
  // ATen's kernels expect element-aligned data; the format does not guarantee it.
  if (reinterpret_cast<uintptr_t>(p) % uintptr_t(d->size) != 0) t = t.clone();
  return SafeTensor{info.dtype, t};
}

std::map<std::string, SafeTensor> SafetensorsFile::get_all() const {
  std::map<std::string, SafeTensor> r;
  for (const auto& kv : infos_) r.emplace(kv.first, get(kv.first));
  return r;
}

static std::map<std::string, SafeTensor> read_index(const std::string& index_path,
                                                    std::map<std::string, std::string>* metadata) {
  const char* f = index_path.c_str();
  nlohmann::json j;
  try {
    j = nlohmann::json::parse(read_file(index_path));
  } catch (const nlohmann::json::exception& ex) {
    WUSH_FAIL("%s: not valid JSON (%s)", f, ex.what());
  }
  WUSH_CHECK(j.is_object() && j.contains("weight_map") && j["weight_map"].is_object(),
             "%s: no \"weight_map\" object", f);
  // shard file -> the tensors the index places there
  std::map<std::string, std::set<std::string>> shards;
  for (const auto& [name, file] : j["weight_map"].items()) {
    WUSH_CHECK(file.is_string(), "%s: weight_map entry of '%s' is not a file name", f, name.c_str());
    shards[file.get<std::string>()].insert(name);
  }
  WUSH_CHECK(!shards.empty(), "%s: weight_map is empty", f);
  std::string dir = path_parent(index_path);
  std::map<std::string, SafeTensor> all;
  bool first = true;
  for (const auto& [file, names] : shards) {
    std::string p = path_join(dir, file);
    WUSH_CHECK(path_exists(p), "%s: shard '%s' (holding '%s') does not exist", f, file.c_str(),
               names.begin()->c_str());
    SafetensorsFile sf(p);
    for (const std::string& name : names)
      WUSH_CHECK(sf.has(name), "%s: tensor '%s' is missing from shard '%s'", f, name.c_str(), file.c_str());
    for (const auto& kv : sf.tensors())
      WUSH_CHECK(names.count(kv.first), "%s: shard '%s' holds tensor '%s' that the index does not list", f,
                 file.c_str(), kv.first.c_str());
    if (first && metadata) *metadata = sf.metadata();
    first = false;
    for (auto& kv : sf.get_all()) all.emplace(kv.first, std::move(kv.second));
  }
  return all;
}

std::map<std::string, SafeTensor> read_safetensors(const std::string& path,
                                                   std::map<std::string, std::string>* metadata) {
  std::string p = path;
  if (is_directory(path)) {
    std::string single = path_join(path, "model.safetensors");
    std::string index = single + ".index.json";
    WUSH_CHECK(path_exists(single) || path_exists(index), "%s: no model.safetensors or model.safetensors.index.json",
               path.c_str());
    p = path_exists(single) ? single : index;
  }
  const std::string suffix = ".index.json";
  if (p.size() > suffix.size() && p.compare(p.size() - suffix.size(), suffix.size(), suffix) == 0)
    return read_index(p, metadata);
  SafetensorsFile sf(p);
  if (metadata) *metadata = sf.metadata();
  return sf.get_all();
}

// ---- writing ------------------------------------------------------------------------------------

std::string safetensors_header(const std::vector<SafeTensorSpec>& specs, const SafeMetadata& metadata) {
  nlohmann::json h = nlohmann::json::object();
  if (!metadata.empty()) h["__metadata__"] = metadata;
  uint64_t off = 0;
  std::set<std::string> seen;
  for (const SafeTensorSpec& s : specs) {
    WUSH_CHECK(!s.name.empty() && s.name != "__metadata__", "safetensors: invalid tensor name '%s'", s.name.c_str());
    WUSH_CHECK(seen.insert(s.name).second, "safetensors: tensor '%s' given twice", s.name.c_str());
    for (int64_t d : s.shape) WUSH_CHECK(d >= 0, "tensor '%s': negative dimension in shape", s.name.c_str());
    uint64_t n = uint64_t(s.nbytes());
    h[s.name] = {{"dtype", s.dtype}, {"shape", s.shape}, {"data_offsets", {off, off + n}}};
    off += n;
  }
  std::string json = h.dump();
  json.append((8 - json.size() % 8) % 8, ' ');  // pad so that the data area starts 8-aligned
  uint64_t len = json.size();
  std::string out(reinterpret_cast<const char*>(&len), 8);
  return out + json;
}

void write_safetensors(const std::string& path, const std::vector<SafeTensorSpec>& specs,
                       const SafeTensorSource& source, const SafeMetadata& metadata) {
  std::string header = safetensors_header(specs, metadata);
  AtomicFile out(path);
  out.write(header);
  for (size_t i = 0; i < specs.size(); ++i) {
    const SafeTensorSpec& s = specs[i];
    SafeTensor t = source(i);
    WUSH_CHECK(t.dtype == s.dtype && t.shape() == s.shape,
               "%s: tensor '%s' is %s %s, declared as %s %s", path.c_str(), s.name.c_str(), t.dtype.c_str(),
               shape_str(t.shape()).c_str(), s.dtype.c_str(), shape_str(s.shape).c_str());
    const SafeDType* d = find_safe_dtype(s.dtype);
    WUSH_CHECK(t.data.scalar_type() == d->scalar, "%s: tensor '%s' of dtype %s is held as %s, expected %s",
               path.c_str(), s.name.c_str(), s.dtype.c_str(), c10::toString(t.data.scalar_type()),
               c10::toString(d->scalar));
    at::Tensor c = t.data.to(at::kCPU).contiguous();
    if (c.numel() > 0) out.write(c.data_ptr(), size_t(c.numel() * d->size));
  }
  out.commit();
}

void write_safetensors(const std::string& path, const std::vector<std::pair<std::string, SafeTensor>>& tensors,
                       const SafeMetadata& metadata) {
  std::vector<SafeTensorSpec> specs;
  for (const auto& [name, t] : tensors) specs.push_back({name, t.dtype, t.shape()});
  write_safetensors(path, specs, [&](size_t i) { return tensors[i].second; }, metadata);
}

static std::string shard_name(size_t i, size_t n) {
  char buf[64];
  std::snprintf(buf, sizeof buf, "model-%05zu-of-%05zu.safetensors", i + 1, n);
  return buf;
}

std::vector<std::string> write_safetensors_dir(const std::string& dir, const std::vector<SafeTensorSpec>& specs,
                                               const SafeTensorSource& source, int64_t max_shard_bytes,
                                               bool always_index, const SafeMetadata& metadata) {
  WUSH_CHECK(max_shard_bytes > 0, "max shard size %lld must be positive", (long long)max_shard_bytes);
  // Greedy packing in the given order: spec indices per shard.
  std::vector<std::vector<size_t>> shards(1);
  int64_t in_shard = 0, total = 0;
  for (size_t i = 0; i < specs.size(); ++i) {
    int64_t n = specs[i].nbytes();
    if (in_shard > 0 && in_shard + n > max_shard_bytes) {
      shards.emplace_back();
      in_shard = 0;
    }
    shards.back().push_back(i);
    in_shard += n;
    total += n;
  }
  if (shards.size() == 1 && !always_index) {
    write_safetensors(path_join(dir, "model.safetensors"), specs, source, metadata);
    return {"model.safetensors"};
  }
  std::vector<std::string> files;
  nlohmann::json weight_map = nlohmann::json::object();
  for (size_t k = 0; k < shards.size(); ++k) {
    std::string name = shard_name(k, shards.size());
    std::vector<SafeTensorSpec> sub;
    for (size_t i : shards[k]) {
      sub.push_back(specs[i]);
      weight_map[specs[i].name] = name;
    }
    write_safetensors(path_join(dir, name), sub, [&](size_t j) { return source(shards[k][j]); },
                      metadata);
    files.push_back(name);
  }
  nlohmann::json index = {{"metadata", {{"total_size", total}}}, {"weight_map", weight_map}};
  write_file_atomic(path_join(dir, "model.safetensors.index.json"), index.dump(2) + "\n");
  files.push_back("model.safetensors.index.json");
  return files;
}

}  // namespace wush

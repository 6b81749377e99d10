#include "quant/calib_stats.h"

#include <cmath>
#include <limits>

#include "core/error.h"
#include "quant/tensor_file.h"

namespace wush {
namespace {

constexpr const char* kFormatTag = "wush-calib-stats";
constexpr const char* kVersion = "1";

// fp32 unless the input is fp64, or cuBLAS may run fp32 matmuls in TF32 (REFERENCE §9).
at::ScalarType chunk_dtype(const at::Tensor& x) {
  if (x.scalar_type() == at::kDouble) return at::kDouble;
  if (x.is_cuda()) {
    bool tf32 = true;
    try {
      tf32 = at::globalContext().allowTF32CuBLAS();
    } catch (const std::exception&) {  // newer libtorch may refuse the legacy query: be safe
    }
    if (tf32) return at::kDouble;
  }
  return at::kFloat;
}

}  // namespace

void LayerStats::add(const at::Tensor& x) {
  WUSH_CHECK(x.defined() && x.dim() >= 1 && x.numel() > 0, "%s: empty activation tensor",
             name_.c_str());
  WUSH_CHECK(at::isFloatingType(x.scalar_type()), "%s: activations must be floating point, got %s",
             name_.c_str(), c10::toString(x.scalar_type()));
  const int64_t C = x.size(-1);
  if (!xtx_.defined()) {
    xtx_ = at::zeros({C, C}, x.options().dtype(at::kDouble));
    absmax_ = at::zeros({C}, x.options().dtype(at::kFloat));
  }
  WUSH_CHECK(C == channels(), "%s: activations have %lld channels, earlier batches had %lld",
             name_.c_str(), (long long)C, (long long)channels());
  WUSH_CHECK(x.device() == xtx_.device(),
             "%s: activations on %s but the statistics live on %s (feed one device per layer)",
             name_.c_str(), x.device().str().c_str(), xtx_.device().str().c_str());
  const at::Tensor x2 = x.reshape({-1, C});
  const int64_t n = x2.size(0);
  const at::ScalarType dt = chunk_dtype(x2);
  at::Tensor batch_absmax = at::zeros({C}, absmax_.options());
  at::Tensor batch_xtx = at::zeros_like(xtx_);
  // fp32 products are exact enough only inside fp32's range: above fp32_high a chunk's sum of
  // squares could overflow (FLT_MAX / kChunkTokens; 1e30 outliers), and a channel whose largest
  // value is below fp32_low has squares that underflow to 0 (denormal activations), which would
  // make its block of H exactly zero. Such chunks are multiplied in fp64.
  const double fp32_high = std::sqrt(double(std::numeric_limits<float>::max()) / double(kChunkTokens));
  const double fp32_low = 1e-18;
  for (int64_t b = 0; b < n; b += kChunkTokens) {
    at::Tensor xc = x2.narrow(0, b, std::min(kChunkTokens, n - b));
    const at::Tensor chunk_absmax = xc.abs().amax(0).to(at::kFloat);
    batch_absmax = at::maximum(batch_absmax, chunk_absmax);
    const double lo = at::where(chunk_absmax > 0, chunk_absmax, std::numeric_limits<float>::infinity()).min().item<double>();
    const bool out_of_range = dt == at::kFloat && (chunk_absmax.max().item<double>() > fp32_high || lo < fp32_low);
    xc = xc.to(out_of_range ? at::kDouble : dt);
    batch_xtx += at::mm(xc.t(), xc).to(at::kDouble);  // chunk in fp32, sum in fp64
  }
  // amax propagates NaN, and Inf stays Inf: one finiteness check covers every element.
  WUSH_CHECK(at::isfinite(batch_absmax).all().item<bool>(),
             "%s: activations contain NaN or Inf (batch of %lld tokens)", name_.c_str(),
             (long long)n);
  xtx_ += batch_xtx;
  absmax_ = at::maximum(absmax_, batch_absmax);
  count_ += n;
}

at::Tensor LayerStats::H() const {
  WUSH_CHECK(count_ > 0, "%s: no activations were collected", name_.c_str());
  return (xtx_ + xtx_.t()) / (2.0 * double(count_));
}

LayerStats LayerStats::from_sums(std::string name, at::Tensor xtx, at::Tensor absmax,
                                 int64_t count, const std::string& where) {
  const std::string label = where.empty() ? name : where + ": " + name;
  const char* n = label.c_str();
  WUSH_CHECK(xtx.defined() && xtx.dim() == 2 && xtx.size(0) == xtx.size(1) && xtx.size(0) > 0,
             "%s: xtx must be a square [C, C] matrix", n);
  WUSH_CHECK(xtx.scalar_type() == at::kDouble, "%s: xtx must be F64, got %s", n,
             c10::toString(xtx.scalar_type()));
  const int64_t C = xtx.size(0);
  WUSH_CHECK(absmax.defined() && absmax.dim() == 1 && absmax.size(0) == C,
             "%s: absmax must have shape [%lld]", n, (long long)C);
  WUSH_CHECK(absmax.scalar_type() == at::kFloat, "%s: absmax must be F32, got %s", n,
             c10::toString(absmax.scalar_type()));
  WUSH_CHECK(count > 0, "%s: token count %lld must be positive", n, (long long)count);
  WUSH_CHECK(at::isfinite(xtx).all().item<bool>(), "%s: xtx contains NaN or Inf", n);
  WUSH_CHECK(at::isfinite(absmax).all().item<bool>() && (absmax >= 0).all().item<bool>(),
             "%s: absmax must be finite and non-negative", n);
  WUSH_CHECK((xtx.diagonal() >= 0).all().item<bool>(),
             "%s: xtx has a negative diagonal entry (not a sum of x x^T)", n);
  LayerStats s(std::move(name));
  s.xtx_ = xtx;
  s.absmax_ = absmax;
  s.count_ = count;
  return s;
}

void CalibStats::add(const std::string& layer, const at::Tensor& x) {
  auto it = layers_.find(layer);
  if (it == layers_.end()) it = layers_.emplace(layer, LayerStats(layer)).first;
  it->second.add(x);
}

const LayerStats& CalibStats::at(const std::string& layer) const {
  auto it = layers_.find(layer);
  WUSH_CHECK(it != layers_.end(), "calibration statistics: no layer '%s' (%zu layers collected)",
             layer.c_str(), layers_.size());
  return it->second;
}

std::vector<std::string> CalibStats::names() const {
  std::vector<std::string> out;
  for (const auto& kv : layers_) out.push_back(kv.first);
  return out;
}

void CalibStats::save(const std::string& path) const {
  tensor_file::Contents c;
  c.metadata = {{"format", kFormatTag}, {"version", kVersion}};
  for (const auto& [name, s] : layers_) {
    if (s.count() == 0) continue;
    c.tensors[name + ".xtx"] = s.xtx();
    c.tensors[name + ".absmax"] = s.absmax();
    c.tensors[name + ".count"] = at::scalar_tensor(s.count(), at::kLong);
  }
  tensor_file::save(path, c);
}

CalibStats CalibStats::load(const std::string& path) {
  tensor_file::Contents c = tensor_file::load(path);
  auto meta = [&](const char* k) {
    auto it = c.metadata.find(k);
    return it == c.metadata.end() ? std::string() : it->second;
  };
  WUSH_CHECK(meta("format") == kFormatTag, "%s: not a wush calibration statistics file (format '%s')",
             path.c_str(), meta("format").c_str());
  WUSH_CHECK(meta("version") == kVersion, "%s: statistics version '%s', this build reads '%s'",
             path.c_str(), meta("version").c_str(), kVersion);
  CalibStats out;
  for (const auto& [key, t] : c.tensors) {
    const std::string suffix = ".xtx";
    if (key.size() <= suffix.size() || key.compare(key.size() - suffix.size(), suffix.size(), suffix))
      continue;
    const std::string layer = key.substr(0, key.size() - suffix.size());
    auto am = c.tensors.find(layer + ".absmax");
    auto cnt = c.tensors.find(layer + ".count");
    WUSH_CHECK(am != c.tensors.end() && cnt != c.tensors.end(),
               "%s: layer '%s' lacks its absmax or count tensor", path.c_str(), layer.c_str());
    WUSH_CHECK(cnt->second.numel() == 1 && cnt->second.scalar_type() == at::kLong,
               "%s: %s.count must be one I64", path.c_str(), layer.c_str());
    out.layers_.emplace(layer, LayerStats::from_sums(layer, t, am->second,
                                                     cnt->second.item<int64_t>(), path));
  }
  WUSH_CHECK(3 * out.layers_.size() == c.tensors.size(),
             "%s: %zu tensors do not form complete layers (xtx, absmax, count)", path.c_str(),
             c.tensors.size());
  return out;
}

}  // namespace wush

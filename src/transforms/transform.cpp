#include "transforms/transform.h"

#include "core/atomic_file.h"
#include "core/error.h"
#include "quant/calib_stats.h"
#include "quant/tensor_file.h"
#include "transforms/block_linalg.h"
#include "transforms/transform_registry.h"

namespace wush {
namespace {

constexpr const char* kFormatTag = "wush-transform";
constexpr const char* kVersion = "1";

at::Tensor mT(const at::Tensor& x) { return x.transpose(-2, -1); }

}  // namespace

FitInput FitInput::from_stats(const LayerStats& s, const at::Tensor& W, int64_t group) {
  FitInput in;
  in.H = s.H();
  in.x_absmax = s.absmax();
  in.W = W;
  in.group = group;
  in.layer = s.name();
  return in;
}

void Transform::fit(const FitInput& in0) {
  const std::string what = in0.layer + " (" + name() + ")";
  const char* w = what.c_str();
  WUSH_CHECK(in0.group > 0, "%s: group size %lld must be positive", w, (long long)in0.group);
  WUSH_CHECK(!needs_H() || in0.H.defined(),
             "%s: needs the activation second moment H (calibration statistics)", w);
  WUSH_CHECK(!needs_W() || in0.W.defined(), "%s: needs the weight W", w);
  WUSH_CHECK(!needs_absmax() || in0.x_absmax.defined(),
             "%s: needs the per-channel activation absmax (calibration statistics)", w);
  int64_t C = in0.channels;
  if (in0.x_absmax.defined()) C = in0.x_absmax.size(-1);
  if (in0.W.defined()) C = in0.W.dim() == 2 ? in0.W.size(1) : -1;
  if (in0.H.defined()) C = in0.H.dim() == 2 ? in0.H.size(1) : -1;
  WUSH_CHECK(C > 0, "%s: unknown or bad input dimension C (give H [C, C], W [R, C] or channels)",
             w);
  if (in0.H.defined())
    WUSH_CHECK(in0.H.dim() == 2 && in0.H.size(0) == C,
               "%s: H must be [C, C] = [%lld, %lld], got %s", w, (long long)C, (long long)C,
               c10::str(in0.H.sizes()).c_str());
  if (in0.W.defined())
    WUSH_CHECK(in0.W.dim() == 2 && in0.W.size(1) == C && in0.W.size(0) > 0,
               "%s: W must be [R, C] with C = %lld, got %s", w, (long long)C,
               c10::str(in0.W.sizes()).c_str());
  if (in0.x_absmax.defined())
    WUSH_CHECK(in0.x_absmax.dim() == 1 && in0.x_absmax.size(0) == C,
               "%s: activation absmax must be [C] = [%lld], got %s", w, (long long)C,
               c10::str(in0.x_absmax.sizes()).c_str());

  const int64_t G = in0.group, nb = (C + G - 1) / G, Cp = nb * G;
  const at::Device dev = in0.W.defined() ? in0.W.device()
                         : in0.H.defined() ? in0.H.device()
                                           : at::Device(at::kCPU);
  FitInput in = in0;  // padded to Cp, fp64, on one device
  in.channels = C;
  if (in.H.defined()) {
    in.H = in.H.to(dev, at::kDouble);
    check_finite(in.H, what, "H (activation second moment)");
    WUSH_CHECK(in.H.diagonal().mean().item<double>() > 0,
               "%s: H (activation second moment) is zero: no non-zero activations were collected",
               w);
    in.H = pad_second_moment(in.H, Cp);
  }
  if (in.W.defined()) {
    in.W = in.W.to(dev, at::kDouble);
    check_finite(in.W, what, "W (weight)");
    in.W = pad_last(in.W, Cp);
  }
  if (in.x_absmax.defined()) {
    in.x_absmax = in.x_absmax.to(dev, at::kDouble);
    check_finite(in.x_absmax, what, "activation absmax");
    in.x_absmax = pad_last(in.x_absmax, Cp);
  }
  in.layer = what;
  at::Tensor b = fit_blocks(in, nb);
  WUSH_ASSERT(b.dim() == 3 && b.size(0) == nb && b.size(1) == G && b.size(2) == G);
  b = b.to(at::kDouble).contiguous();
  if (in.round_bf16) b = round_to_bf16(b);
  check_finite(b, what, "fitted blocks T_j");
  at::Tensor sign = std::get<0>(at::linalg_slogdet(b));
  WUSH_CHECK((sign != 0).all().item<bool>(), "%s: a fitted block T_j is singular", w);
  blocks_ = b;
  C_ = C;
  G_ = G;
  nb_ = nb;
  seed_ = in.seed;
}

void Transform::check_fitted(const char* op) const {
  WUSH_CHECK(fitted(), "transform '%s': %s before fit() (or load())", name().c_str(), op);
}

const at::Tensor& Transform::blocks() const {
  check_fitted("blocks()");
  return blocks_;
}

at::Tensor Transform::apply(const at::Tensor& x) const {
  check_fitted("apply()");
  WUSH_CHECK(x.dim() >= 1 && x.size(-1) == C_, "%s.apply: input last dim %lld, expected C = %lld",
             name().c_str(), (long long)(x.dim() ? x.size(-1) : 0), (long long)C_);
  WUSH_CHECK(at::isFloatingType(x.scalar_type()), "%s.apply: input must be floating point",
             name().c_str());
  const at::ScalarType cd = x.scalar_type() == at::kDouble ? at::kDouble : at::kFloat;
  std::vector<int64_t> shape = x.sizes().vec();
  at::Tensor xb = pad_last(x.to(cd), padded_channels()).reshape({-1, nb_, G_});  // [M, nb, G]
  at::Tensor T = blocks_.to(x.device(), cd);
  // x~[m, j, :] = T_j x[m, j, :]: batched over j as [nb, M, G] x T_j^T
  at::Tensor out = at::bmm(xb.transpose(0, 1), mT(T)).transpose(0, 1);
  shape.back() = padded_channels();
  return out.reshape(shape).to(x.scalar_type());
}

at::Tensor Transform::weight_side(const at::Tensor& W) const {
  check_fitted("weight_side()");
  WUSH_CHECK(W.dim() == 2 && W.size(1) == C_, "%s.weight_side: W must be [R, C = %lld], got %s",
             name().c_str(), (long long)C_, c10::str(W.sizes()).c_str());
  const int64_t R = W.size(0);
  at::Tensor Wt = column_blocks_t(pad_last(W.to(at::kDouble), padded_channels()), G_);  // [nb,G,R]
  // W~_j = W_j T_j^{-1}  <=>  W~_j^T = T_j^{-T} W_j^T: one LU solve per block, no inverse
  at::Tensor Z = at::linalg_solve(mT(blocks_.to(W.device())), Wt);
  return Z.permute({2, 0, 1}).reshape({R, padded_channels()}).to(W.scalar_type());
}

at::Tensor Transform::inverse(const at::Tensor& xt) const {
  check_fitted("inverse()");
  WUSH_CHECK(xt.dim() >= 1 && xt.size(-1) == padded_channels(),
             "%s.inverse: input last dim %lld, expected Cp = %lld", name().c_str(),
             (long long)(xt.dim() ? xt.size(-1) : 0), (long long)padded_channels());
  std::vector<int64_t> shape = xt.sizes().vec();
  at::Tensor b = xt.to(at::kDouble).reshape({-1, nb_, G_}).permute({1, 2, 0});  // [nb, G, M]
  at::Tensor x = at::linalg_solve(blocks_.to(xt.device()), b);                  // T_j^{-1} x~_j
  shape.back() = padded_channels();
  x = x.permute({2, 0, 1}).reshape(shape).narrow(-1, 0, C_);
  return x.to(xt.scalar_type());
}

std::string Transform::serialize() const {
  check_fitted("serialize()");
  tensor_file::Contents c;
  c.tensors["blocks"] = blocks_;
  c.metadata = {{"format", kFormatTag},        {"version", kVersion},
                {"name", name()},              {"channels", std::to_string(C_)},
                {"group", std::to_string(G_)}, {"seed", std::to_string(seed_)}};
  return tensor_file::encode(c);
}

std::unique_ptr<Transform> Transform::deserialize(const std::string& bytes,
                                                  const std::string& what) {
  tensor_file::Contents c = tensor_file::decode(bytes, what);
  const char* w = what.c_str();
  auto meta = [&](const char* k) {
    auto it = c.metadata.find(k);
    WUSH_CHECK(it != c.metadata.end(), "%s: metadata lacks '%s'", w, k);
    return it->second;
  };
  auto meta_int = [&](const char* k) -> long long {
    const std::string v = meta(k);
    try {
      size_t pos = 0;
      long long n = std::stoll(v, &pos);
      WUSH_CHECK(pos == v.size(), "%s: metadata %s = '%s' is not an integer", w, k, v.c_str());
      return n;
    } catch (const std::logic_error&) {
      WUSH_FAIL("%s: metadata %s = '%s' is not an integer", w, k, v.c_str());
    }
  };
  WUSH_CHECK(meta("format") == kFormatTag, "%s: not a wush transform (format '%s')", w,
             meta("format").c_str());
  WUSH_CHECK(meta("version") == kVersion, "%s: transform version '%s', this build reads '%s'", w,
             meta("version").c_str(), kVersion);
  std::unique_ptr<Transform> t = make_transform(meta("name"));
  const long long C = meta_int("channels"), G = meta_int("group");
  WUSH_CHECK(C > 0 && G > 0, "%s: channels %lld and group %lld must be positive", w, C, G);
  const std::string seed = meta("seed");
  WUSH_CHECK(!seed.empty() && seed.size() <= 20 &&
                 seed.find_first_not_of("0123456789") == std::string::npos &&
                 (seed.size() < 20 || seed <= "18446744073709551615"),
             "%s: seed '%s' is not a 64-bit unsigned integer", w, seed.c_str());
  auto it = c.tensors.find("blocks");
  WUSH_CHECK(it != c.tensors.end() && c.tensors.size() == 1, "%s: expected exactly one tensor "
             "'blocks'", w);
  const at::Tensor& b = it->second;
  const long long nb = (C + G - 1) / G;
  WUSH_CHECK(b.scalar_type() == at::kDouble && b.dim() == 3 && b.size(0) == nb && b.size(1) == G &&
                 b.size(2) == G,
             "%s: blocks must be F64 [%lld, %lld, %lld], got %s %s", w, nb, G, G,
             c10::toString(b.scalar_type()), c10::str(b.sizes()).c_str());
  check_finite(b, what, "blocks");
  t->blocks_ = b;
  t->C_ = C;
  t->G_ = G;
  t->nb_ = nb;
  t->seed_ = std::stoull(seed);
  return t;
}

void Transform::save(const std::string& path) const { write_file_atomic(path, serialize()); }

std::unique_ptr<Transform> Transform::load(const std::string& path) {
  return deserialize(read_file(path), path);
}

}  // namespace wush

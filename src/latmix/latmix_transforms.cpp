#include "latmix/latmix_transforms.h"

#include "core/error.h"
#include "latmix/mx_ste.h"
#include "quant/tensor_file.h"

namespace wush::latmix {

std::vector<at::Tensor> LatmixTransforms::parameters() const {
  std::vector<at::Tensor> p = t1.parameters();
  for (const AffineTransform& t : t2)
    for (const at::Tensor& x : t.parameters()) p.push_back(x);
  return p;
}

void LatmixTransforms::set_requires_grad(bool on) {
  t1.set_requires_grad(on);
  for (AffineTransform& t : t2) t.set_requires_grad(on);
}

LatmixTransforms LatmixTransforms::to(at::Device d, at::ScalarType s) const {
  LatmixTransforms r = *this;
  r.t1 = t1.to(d, s);
  for (size_t i = 0; i < t2.size(); ++i) r.t2[i] = t2[i].to(d, s);
  return r;
}

LatmixTransforms LatmixTransforms::detached() const {
  LatmixTransforms r = *this;
  r.t1 = t1.detached();
  for (size_t i = 0; i < t2.size(); ++i) r.t2[i] = t2[i].detached();
  return r;
}

at::Tensor LatmixTransforms::volume_penalty() const {
  at::Tensor p = t1.volume_penalty();
  for (const AffineTransform& t : t2) p = p + t.volume_penalty();
  return p;
}

void save_latmix(const std::string& path, const LatmixTransforms& t) {
  tensor_file::Contents c;
  LatmixTransforms f = t.detached().to(at::kCPU, at::kFloat);
  f.t1.save_into(c.tensors, "t1");
  for (size_t l = 0; l < f.t2.size(); ++l) f.t2[l].save_into(c.tensors, "t2." + std::to_string(l));
  c.metadata["latmix.param"] = param_name(t.kind);
  c.metadata["latmix.format"] = ste_format_name(t.format);
  c.metadata["latmix.group"] = std::to_string(t.group);
  c.metadata["latmix.layers"] = std::to_string(t.t2.size());
  c.metadata["latmix.info"] = t.info.dump();
  tensor_file::save(path, c);
}

LatmixTransforms load_latmix(const std::string& path) {
  tensor_file::Contents c = tensor_file::load(path);
  auto meta = [&](const char* k) {
    auto it = c.metadata.find(k);
    WUSH_CHECK(it != c.metadata.end(), "%s: not a LATMiX transforms file (metadata '%s' missing)", path.c_str(), k);
    return it->second;
  };
  LatmixTransforms t;
  t.kind = parse_param(meta("latmix.param"));
  t.format = parse_ste_format(meta("latmix.format"));
  t.group = std::stoll(meta("latmix.group"));
  const int64_t layers = std::stoll(meta("latmix.layers"));
  t.info = nlohmann::json::parse(meta("latmix.info"), nullptr, /*allow_exceptions=*/false);
  WUSH_CHECK(!t.info.is_discarded(), "%s: metadata 'latmix.info' is not JSON", path.c_str());
  t.t1 = AffineTransform::load_from(c.tensors, "t1", t.kind, path);
  for (int64_t l = 0; l < layers; ++l)
    t.t2.push_back(AffineTransform::load_from(c.tensors, "t2." + std::to_string(l), t.kind, path));
  return t;
}

}  // namespace wush::latmix

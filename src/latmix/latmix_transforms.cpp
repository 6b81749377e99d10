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

void LatmixTransforms::save_into(std::map<std::string, at::Tensor>& out, const std::string& prefix) const {
  LatmixTransforms f = detached().to(at::kCPU, at::kFloat);
  f.t1.save_into(out, prefix + "t1");
  for (size_t l = 0; l < f.t2.size(); ++l) f.t2[l].save_into(out, prefix + "t2." + std::to_string(l));
}

nlohmann::json LatmixTransforms::header() const {
  return {{"param", param_name(kind)}, {"format", ste_format_name(format)}, {"group", group},
          {"layers", t2.size()}, {"info", info}};
}

LatmixTransforms LatmixTransforms::load_from(const nlohmann::json& header, const std::map<std::string, at::Tensor>& in,
                                             const std::string& prefix, const std::string& what) {
  LatmixTransforms t;
  int64_t layers = 0;
  try {
    t.kind = parse_param(header.at("param").get<std::string>());
    t.format = parse_ste_format(header.at("format").get<std::string>());
    t.group = header.at("group").get<int64_t>();
    layers = header.at("layers").get<int64_t>();
    t.info = header.value("info", nlohmann::json::object());
  } catch (const nlohmann::json::exception& e) {
    WUSH_FAIL("%s: bad LATMiX header %s (%s)", what.c_str(), header.dump().c_str(), e.what());
  }
  WUSH_CHECK(t.group > 0 && layers >= 0, "%s: bad LATMiX header %s", what.c_str(), header.dump().c_str());
  t.t1 = AffineTransform::load_from(in, prefix + "t1", t.kind, what);
  for (int64_t l = 0; l < layers; ++l)
    t.t2.push_back(AffineTransform::load_from(in, prefix + "t2." + std::to_string(l), t.kind, what));
  return t;
}

void save_latmix(const std::string& path, const LatmixTransforms& t) {
  tensor_file::Contents c;
  t.save_into(c.tensors, "");
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
  nlohmann::json info = nlohmann::json::parse(meta("latmix.info"), nullptr, /*allow_exceptions=*/false);
  WUSH_CHECK(!info.is_discarded(), "%s: metadata 'latmix.info' is not JSON", path.c_str());
  int64_t group = 0, layers = 0;
  try {
    group = std::stoll(meta("latmix.group"));
    layers = std::stoll(meta("latmix.layers"));
  } catch (const std::logic_error&) {
    WUSH_FAIL("%s: metadata 'latmix.group' / 'latmix.layers' are not integers", path.c_str());
  }
  nlohmann::json header = {{"param", meta("latmix.param")}, {"format", meta("latmix.format")}, {"group", group},
                           {"layers", layers}, {"info", info}};
  return LatmixTransforms::load_from(header, c.tensors, "", path);
}

}  // namespace wush::latmix

#include "pipeline/checkpoint.h"

#include <cmath>

#include "core/atomic_file.h"
#include "core/error.h"
#include "core/paths.h"
#include "formats/codecs.h"
#include "latmix/latmix_transforms.h"
#include "model/hf_model.h"
#include "model/safetensors.h"


namespace wush {

static const char* kVersion = "0.1.0";
static const std::string kLatmixPrefix = "latmix.";

// Element payload name: E2M1 formats store ".e2m1", the integer formats ".int4" (docs/FORMAT.md).
static const char* code_tensor(Format f) {
  return (f == Format::MXINT4 || f == Format::INT4) ? "int4" : "e2m1";
}

static float act_scale_scale(Format f) { return f == Format::NVFP4 ? 6.0f : 4.0f; }

// Group scales (exact float values) -> stored scale tensor: E8M0 / E4M3 raw bytes, or BF16.
SafeTensor encode_scale_tensor(const at::Tensor& scales, Format f) {
  at::Tensor s = scales.to(at::kFloat).contiguous();
  ScaleType st = traits(f).scale;
  if (st == ScaleType::BF16) return SafeTensor::of(s.to(at::kBFloat16));
  at::Tensor out = at::empty(s.sizes(), at::kByte);
  const float* p = s.data_ptr<float>();
  uint8_t* o = out.data_ptr<uint8_t>();
  for (int64_t i = 0; i < s.numel(); ++i) {
    if (st == ScaleType::E8M0) {
      if (p[i] == 0) {
        o[i] = 0;  // all-zero group: the smallest scale, codes are all zero
      } else {
        int e = 0;
        float m = std::frexp(p[i], &e);
        WUSH_ASSERT(m == 0.5f && e - 1 + 127 >= 0 && e - 1 + 127 <= 254);
        o[i] = uint8_t(e - 1 + 127);
      }
    } else {
      WUSH_ASSERT(st == ScaleType::E4M3);
      o[i] = e4m3_encode_ref(p[i]);
      WUSH_ASSERT(e4m3_decode_ref(o[i]) == p[i]);
    }
  }
  return SafeTensor::raw(out, st == ScaleType::E8M0 ? "F8_E8M0" : "F8_E4M3");
}

static at::Tensor decode_scales(const SafeTensor& t, Format f, const std::string& name) {
  ScaleType st = traits(f).scale;
  if (st == ScaleType::BF16) {
    WUSH_CHECK(t.dtype == "BF16", "%s: scale_quant dtype %s, expected BF16 for %s", name.c_str(), t.dtype.c_str(),
               traits(f).name);
    return t.data.to(at::kFloat);
  }
  const char* want = st == ScaleType::E8M0 ? "F8_E8M0" : "F8_E4M3";
  WUSH_CHECK(t.dtype == want, "%s: scale_quant dtype %s, expected %s for %s", name.c_str(), t.dtype.c_str(), want,
             traits(f).name);
  at::Tensor u = t.data.contiguous();
  at::Tensor out = at::empty(u.sizes(), at::kFloat);
  const uint8_t* p = u.data_ptr<uint8_t>();
  float* o = out.data_ptr<float>();
  for (int64_t i = 0; i < u.numel(); ++i) {
    o[i] = st == ScaleType::E8M0 ? e8m0_decode_ref(p[i]) : e4m3_decode_ref(p[i]);
    WUSH_CHECK(o[i] == o[i], "%s: NaN scale code at index %lld", name.c_str(), (long long)i);
  }
  return out;
}

static at::Tensor scalar_f32(float v) { return at::full({}, v, at::kFloat); }

void copy_side_files(const Model& base, AtomicDir& out) {
  // Tokenizer and generation config beside the source model.
  if (!base.path.empty() && is_directory(base.path)) {
    for (const char* f : {"generation_config.json", "tokenizer.json", "tokenizer.model", "tokenizer_config.json",
                          "special_tokens_map.json", "tok512.bin"})
      if (path_exists(base.path + "/" + f)) copy_file(base.path + "/" + f, out.file(f));
  } else if (!base.tokenizer_path.empty() && path_exists(base.tokenizer_path)) {
    copy_file(base.tokenizer_path, out.file(path_filename(base.tokenizer_path)));
  }
}

void save_quantized(const QuantizedModel& qm, const std::string& dir, const CheckpointOptions& opt) {
  const Recipe& r = qm.recipe;
  AtomicDir out(dir, opt.force);
  nlohmann::json cfg = config_to_json(qm.base.config);
  const int64_t G = qm.linears->empty() ? 32 : qm.linears->begin()->second.group;
  cfg["quantization_config"] = {{"quant_method", "wush"},
                                {"format", format_name(r.format)},
                                {"group_size", G},
                                {"transform", r.transform},
                                {"method", weight_method_name(r.weights)},
                                {"recipe", r.to_string()},
                                {"acts", r.quantize_acts ? "quantized" : "fp"},
                                {"calibration", qm.calibration},
                                {"wush_version", kVersion}};
  if (qm.latmix) cfg["quantization_config"]["latmix"] = qm.latmix->header();  // wush extension (FORMAT.md)
  write_file_atomic(out.file("config.json"), cfg.dump(2) + "\n");
  copy_side_files(qm.base, out);

  std::vector<std::pair<std::string, SafeTensor>> tensors;
  for (const auto& [name, t] : qm.base.weights) tensors.emplace_back(name, SafeTensor::of(t.contiguous()));
  for (const auto& [p, q] : *qm.linears) {
    const int64_t Cp = q.padded_in(), nb = Cp / q.group;
    at::Tensor T = q.T.defined() ? q.T : at::eye(q.group, at::kFloat).expand({nb, q.group, q.group});
    if (T.size(0) == 1 && nb > 1) T = T.expand({nb, q.group, q.group});
    tensors.emplace_back(p + ".transform", SafeTensor::of(T.to(at::kBFloat16).contiguous()));
    if (q.bias.defined()) tensors.emplace_back(p + ".bias", SafeTensor::of(q.bias.contiguous()));
    if (Cp != q.in_features) tensors.emplace_back(p + ".in_features", SafeTensor::of(at::full({}, q.in_features, at::kLong)));
    if (q.format == Format::None) {
      tensors.emplace_back(p + ".weight", SafeTensor::of(q.dense.contiguous()));
      continue;
    }
    const QuantizedTensor& w = q.weight;
    tensors.emplace_back(p + "." + code_tensor(q.format), SafeTensor::of(w.codes.contiguous()));
    tensors.emplace_back(p + ".scale_quant", encode_scale_tensor(w.scales, q.format));
    tensors.emplace_back(p + ".weight_global_scale", SafeTensor::of(scalar_f32(q.decode_global())));
    tensors.emplace_back(p + ".activation_global_scale", SafeTensor::of(scalar_f32(checkpoint_weight_global(q.format, 10.0f))));
    tensors.emplace_back(p + ".activation_scale_scale", SafeTensor::of(scalar_f32(act_scale_scale(q.format))));
  }
  if (qm.latmix) {  // T1 (online, every RMSNorm) and T2 (folded, for the record): "latmix.t1.<field>", ...
    std::map<std::string, at::Tensor> lt;
    qm.latmix->save_into(lt, kLatmixPrefix);
    for (auto& [n, t] : lt) tensors.emplace_back(n, SafeTensor::of(t.contiguous()));
  }
  std::vector<SafeTensorSpec> specs;
  for (auto& [n, t] : tensors) specs.push_back({n, t.dtype, t.shape()});
  write_safetensors_dir(out.tmp_path(), specs, [&](size_t i) { return tensors[i].second; }, opt.max_shard_bytes,
                        opt.always_index);
  out.commit();
}

bool is_quantized_checkpoint(const std::string& dir) {
  if (!is_directory(dir) || !path_exists(dir + "/config.json")) return false;
  auto j = nlohmann::json::parse(read_file(dir + "/config.json"), nullptr, false);
  if (j.is_discarded() || !j.is_object() || !j.contains("quantization_config")) return false;
  const auto& qc = j["quantization_config"];
  return qc.is_object() && qc.contains("quant_method") && qc["quant_method"] == "wush";
}

QuantizedModel load_quantized(const std::string& dir) {
  const std::string cfg_path = dir + "/config.json";
  auto j = nlohmann::json::parse(read_file(cfg_path), nullptr, false);
  WUSH_CHECK(!j.is_discarded(), "%s: invalid JSON", cfg_path.c_str());
  WUSH_CHECK(j.contains("quantization_config"), "%s: no quantization_config (not a wush checkpoint)", cfg_path.c_str());
  const auto& qc = j["quantization_config"];
  WUSH_CHECK(qc.is_object(), "%s: quantization_config is not an object", cfg_path.c_str());
  QuantizedModel qm;
  try {
    qm.recipe = parse_recipe(qc.at("recipe").get<std::string>());
  } catch (const nlohmann::json::exception& e) {
    WUSH_FAIL("%s: quantization_config lacks 'recipe' (%s)", cfg_path.c_str(), e.what());
  }
  qm.calibration = qc.value("calibration", nlohmann::json(nullptr));
  WUSH_CHECK(!qc.contains("group_size") || qc["group_size"].is_number_integer(),
             "%s: quantization_config.group_size must be an integer (got %s)", cfg_path.c_str(),
             qc["group_size"].dump().c_str());
  const int64_t G = qc.value("group_size", int64_t(32));
  WUSH_CHECK(G > 0 && G <= 4096 && (G & (G - 1)) == 0,
             "%s: quantization_config.group_size %lld is not a power of two in 1..4096", cfg_path.c_str(),
             (long long)G);
  qm.base.config = parse_config(j, cfg_path);
  qm.base.path = dir;
  for (const char* f : {"tokenizer.json", "tokenizer.model", "tok512.bin"})
    if (path_exists(dir + "/" + f)) {
      qm.base.tokenizer_path = dir + "/" + f;
      break;
    }
  std::string st = path_exists(dir + "/model.safetensors.index.json") ? dir + "/model.safetensors.index.json"
                                                                       : dir + "/model.safetensors";
  std::map<std::string, SafeTensor> all = read_safetensors(st);
  const Format f = qm.recipe.format;
  for (int64_t l = 0; l < qm.base.config.num_layers; ++l)
    for (int i = 0; i < 7; ++i) {
      const std::string p = linear_prefix(l, i);
      auto take = [&](const std::string& suffix, bool required) -> std::optional<SafeTensor> {
        auto it = all.find(p + suffix);
        if (it == all.end()) {
          WUSH_CHECK(!required, "%s: missing tensor '%s%s'", dir.c_str(), p.c_str(), suffix.c_str());
          return std::nullopt;
        }
        SafeTensor t = it->second;
        all.erase(it);
        return t;
      };
      QuantLinear q;
      q.name = p;
      q.format = f;
      q.quantize_acts = qm.recipe.quantize_acts;
      q.transform = linear_recipe(qm.recipe, i).transform;
      q.group = G;
      q.drop_pad = q.transform == "identity" || q.transform == "smoothquant";
      at::Tensor T = take(".transform", true)->data.to(at::kFloat);
      WUSH_CHECK(T.dim() == 3 && T.size(1) == G && T.size(2) == G, "%s: '%s.transform' has shape %s, expected [C/%lld, %lld, %lld]",
                 dir.c_str(), p.c_str(), c10::str(T.sizes()).c_str(), (long long)G, (long long)G, (long long)G);
      const int64_t Cp = T.size(0) * G;
      if (q.transform != "identity") q.T = T;
      auto inf = take(".in_features", false);
      WUSH_CHECK(!inf || (inf->data.numel() == 1 && !inf->data.is_floating_point()),
                 "%s: '%s.in_features' must be one integer", dir.c_str(), p.c_str());
      q.in_features = inf ? inf->data.item<int64_t>() : Cp;
      WUSH_CHECK(q.in_features <= Cp && q.in_features > Cp - G, "%s: '%s.in_features' = %lld does not fit %lld blocks",
                 dir.c_str(), p.c_str(), (long long)q.in_features, (long long)T.size(0));
      if (auto b = take(".bias", false)) q.bias = b->data.to(at::kFloat);
      if (f == Format::None) {
        q.dense = take(".weight", true)->data.to(at::kFloat);
      } else {
        SafeTensor codes = *take(std::string(".") + code_tensor(f), true);
        SafeTensor sc = *take(".scale_quant", true);
        const SafeTensor wgt = *take(".weight_global_scale", true);
        WUSH_CHECK(wgt.data.numel() == 1 && wgt.data.is_floating_point(),
                   "%s: '%s.weight_global_scale' must be one float", dir.c_str(), p.c_str());
        const float wg = wgt.data.item<float>();
        WUSH_CHECK(std::isfinite(wg) && wg > 0, "%s: '%s.weight_global_scale' = %g must be finite and > 0",
                   dir.c_str(), p.c_str(), double(wg));
        take(".activation_global_scale", false);
        take(".activation_scale_scale", false);
        WUSH_CHECK(codes.data.dim() == 2, "%s: '%s' codes have shape %s, expected [R, %lld] U8", dir.c_str(),
                   p.c_str(), c10::str(codes.data.sizes()).c_str(), (long long)(Cp / 2));
        const int64_t R = codes.data.size(0);
        WUSH_CHECK(codes.dtype == "U8" && codes.data.size(1) * 2 == Cp,
                   "%s: '%s' codes have shape %s, expected [R, %lld] U8", dir.c_str(), p.c_str(),
                   c10::str(codes.data.sizes()).c_str(), (long long)(Cp / 2));
        QuantizedTensor w;
        w.format = f;
        w.codes = codes.data.contiguous();
        w.scales = decode_scales(sc, f, p + ".scale_quant");
        WUSH_CHECK(w.scales.dim() == 2 && w.scales.size(0) == R && w.scales.size(1) * G == Cp,
                   "%s: '%s.scale_quant' has shape %s, expected [%lld, %lld]", dir.c_str(), p.c_str(),
                   c10::str(w.scales.sizes()).c_str(), (long long)R, (long long)(Cp / G));
        w.shape = {R, Cp};
        WUSH_CHECK(wg > 0 && std::isfinite(wg), "%s: '%s.weight_global_scale' = %g, expected a finite value > 0",
                   dir.c_str(), p.c_str(), wg);
        WUSH_CHECK(traits(f).elem == Elem::E2M1 || wg == 1.0f,
                   "%s: '%s.weight_global_scale' = %g, but %s has no global scale (expected 1)", dir.c_str(), p.c_str(),
                   wg, traits(f).name);
        w.global_scale = f == Format::NVFP4 ? 1.0f / wg : 1.0f;
        q.weight = w;
        q.weight_global = wg;  // decoded as stored (§8: multiplied in)
        q.refresh_dense();
      }
      qm.linears->emplace(p, std::move(q));
    }
  std::map<std::string, at::Tensor> latmix_tensors;
  for (auto& [name, t] : all) {
    if (name.rfind(kLatmixPrefix, 0) == 0)
      latmix_tensors[name] = t.data;
    else
      qm.base.weights[name] = t.data;
  }
  WUSH_CHECK(qc.contains("latmix") == is_latmix(qm.recipe.transform),
             "%s: recipe %s %s quantization_config.latmix (the LATMiX transforms)", cfg_path.c_str(),
             qm.recipe.to_string().c_str(), qc.contains("latmix") ? "does not expect" : "needs");
  if (qc.contains("latmix"))
    qm.latmix = std::make_shared<latmix::LatmixTransforms>(
        latmix::LatmixTransforms::load_from(qc["latmix"], latmix_tensors, kLatmixPrefix, dir));
  return qm;
}

}  // namespace wush

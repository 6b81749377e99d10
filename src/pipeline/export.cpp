// compressed-tensors export, the refusal rules shared with GGUF, and the dequantized dump
// (REFERENCE.md §8; docs/FORMAT.md "Exports").
#include "pipeline/export.h"

#include <map>

#include "core/atomic_file.h"
#include "core/error.h"
#include "model/safetensors.h"
#include "pipeline/checkpoint.h"
#include "transforms/hadamard.h"

namespace wush {

ExportTarget parse_export_target(const std::string& s) {
  if (s == "compressed-tensors") return ExportTarget::CompressedTensors;
  if (s == "gguf") return ExportTarget::Gguf;
  WUSH_FAIL("--to '%s' (valid: compressed-tensors, gguf)", s.c_str());
}

namespace {

const char* engine(ExportTarget t) { return t == ExportTarget::Gguf ? "GGUF (llama.cpp)" : "compressed-tensors (vLLM)"; }

// The transform of a linear as an engine sees it: "identity", "hadamard" (the same normalized
// Hadamard in every block, bf16 as stored), or a reason it is neither.
struct TransformKind {
  std::string kind;  // "identity" | "hadamard" | "" (see why)
  std::string why;
};

TransformKind classify(const QuantLinear& q) {
  if (!q.T.defined()) return {"identity", ""};
  const at::Tensor T = q.T.to(at::kFloat);
  for (int64_t j = 1; j < T.size(0); ++j)
    if (!at::equal(T[j], T[0]))
      return {"", "per-block transforms (" + q.name + ": block " + std::to_string(j) +
                      " differs from block 0; the engine applies one transform to every block)"};
  const at::Tensor T0 = T[0];
  if (at::equal(T0, at::eye(q.group, at::kFloat))) return {"identity", ""};
  if (at::equal(T0, hadamard_matrix(q.group).to(at::kBFloat16).to(at::kFloat))) return {"hadamard", ""};
  return {"", "a transform that is neither identity nor the normalized Hadamard (" + q.name +
                  ": the engine has no stored per-layer matrices)"};
}

// q/k/v and gate/up read the same input and run as one fused GEMM in vLLM and llama.cpp.
const std::vector<std::vector<int>> kFusedGroups = {{0, 1, 2}, {4, 5}};

}  // namespace

std::string export_refusal(const QuantizedModel& qm, ExportTarget t) {
  const Format f = qm.recipe.format;
  const std::string eng = engine(t);
  if (f == Format::MXFP4)
    return eng + " cannot represent the 1/3 global scale of the reference MXFP4 rule (its MXFP4 has power-of-two "
                 "scales and no global scale): quantize with --mxfp4-rule ocp";
  const bool ok_format = t == ExportTarget::Gguf ? f == Format::MXFP4_OCP : (f == Format::MXFP4_OCP || f == Format::NVFP4);
  if (!ok_format)
    return eng + " has no " + format_name(f) + " weights (it exports " +
           (t == ExportTarget::Gguf ? "mxfp4-ocp" : "mxfp4-ocp and nvfp4") + ")";
  if (qm.base.config.model_type != "llama" && t == ExportTarget::Gguf)
    return eng + " export writes Llama models only (model_type '" + qm.base.config.model_type + "')";
  std::string shared_kind;
  for (int64_t l = 0; l < qm.base.config.num_layers; ++l) {
    std::vector<TransformKind> kinds;
    for (int i = 0; i < 7; ++i) {
      const std::string p = linear_prefix(l, i);
      auto it = qm.linears->find(p);
      if (it == qm.linears->end()) return eng + ": the checkpoint has no quantized " + p;
      const QuantLinear& q = it->second;
      if (q.padded_in() != q.in_features)
        return eng + " cannot represent zero-padded inputs (" + p + " has " + std::to_string(q.in_features) +
               " inputs, not a multiple of " + std::to_string(q.group) + ")";
      if (t == ExportTarget::Gguf && q.bias.defined()) return eng + " has no biases on Llama linears (" + p + ")";
      TransformKind k = classify(q);
      if (k.kind.empty()) return eng + " cannot represent " + k.why;
      kinds.push_back(k);
    }
    for (const auto& grp : kFusedGroups)
      for (int i : grp) {
        const QuantLinear& a = qm.linears->at(linear_prefix(l, grp[0]));
        const QuantLinear& b = qm.linears->at(linear_prefix(l, i));
        const bool same_t = kinds[size_t(i)].kind == kinds[size_t(grp[0])].kind;
        if (!same_t)
          return eng + " cannot represent a non-shared transform in the fused group of " + a.name + " and " + b.name +
                 " (" + kinds[size_t(grp[0])].kind + " vs " + kinds[size_t(i)].kind + ": one GEMM reads one input)";
        if (f == Format::NVFP4 && a.weight.global_scale != b.weight.global_scale)
          return eng + " keeps one NVFP4 global scale per fused GEMM, but " + a.name + " and " + b.name +
                 " differ; quantize with the fixed global scale";
      }
    for (const auto& k : kinds) {
      if (shared_kind.empty()) shared_kind = k.kind;
      if (k.kind != shared_kind) return eng + " export needs one transform for every linear (" + shared_kind + " and " + k.kind + ")";
    }
  }
  if (t == ExportTarget::Gguf && shared_kind != "identity")
    return eng + " has no online transform: only the identity transform exports (this checkpoint uses " + shared_kind + ")";
  return "";
}

namespace {

// The QuantizationArgs vLLM matches: NVFP4 = 4-bit float, tensor_group, 16; MXFP4 = 4-bit float,
// group, 32. Activations are dynamic per token ("local": NVFP4's group scales under a static global).
nlohmann::json ct_args(Format f, bool activations) {
  nlohmann::json a = nlohmann::json::object();
  a["num_bits"] = 4;
  a["type"] = "float";
  a["symmetric"] = true;
  a["group_size"] = traits(f).group;
  a["strategy"] = f == Format::NVFP4 ? "tensor_group" : "group";
  a["block_structure"] = nullptr;
  a["actorder"] = nullptr;
  a["observer_kwargs"] = nlohmann::json::object();
  if (activations) {
    a["dynamic"] = f == Format::NVFP4 ? nlohmann::json("local") : nlohmann::json(true);
    a["observer"] = nullptr;
  } else {
    a["dynamic"] = false;
    a["observer"] = "minmax";
  }
  return a;
}

// One deterministic Hadamard of size G on every linear's input; the weight-side inverse is
// already folded into the stored (transformed) weights.
nlohmann::json ct_hadamard(int64_t G) {
  nlohmann::json targets = nlohmann::json::array();
  for (const char* n : kLinearNames) targets.push_back("re:.*" + std::string(n).substr(std::string(n).find('.') + 1) + "$");
  auto apply = [&](const char* location, bool inverse) {
    nlohmann::json a = nlohmann::json::object();
    a["targets"] = targets;
    a["location"] = location;
    a["inverse"] = inverse;
    a["ignore"] = nlohmann::json::array();
    return a;
  };
  nlohmann::json scheme = nlohmann::json::object();
  scheme["type"] = "hadamard";
  scheme["head_dim"] = G;
  scheme["randomize"] = false;
  scheme["requires_grad"] = false;
  scheme["apply"] = nlohmann::json::array({apply("input", false), apply("weight_input", true)});
  nlohmann::json groups = nlohmann::json::object();
  groups["v"] = scheme;
  nlohmann::json cfg = nlohmann::json::object();
  cfg["config_groups"] = groups;
  return cfg;
}


}  // namespace

std::vector<std::string> export_compressed_tensors(const QuantizedModel& qm, const std::string& dst,
                                                   const ExportOptions& o) {
  const ExportTarget t = ExportTarget::CompressedTensors;
  const std::string why = export_refusal(qm, t);
  WUSH_CHECK(why.empty(), "export %s: %s", dst.c_str(), why.c_str());
  const Format f = qm.recipe.format;
  const char* fmt = f == Format::NVFP4 ? "nvfp4-pack-quantized" : "mxfp4-pack-quantized";
  const bool acts = qm.recipe.quantize_acts;
  const int64_t G = traits(f).group;
  nlohmann::json group = nlohmann::json::object();
  group["targets"] = nlohmann::json::array({"Linear"});
  group["weights"] = ct_args(f, false);
  group["input_activations"] = acts ? ct_args(f, true) : nlohmann::json(nullptr);
  group["output_activations"] = nullptr;
  group["format"] = fmt;
  nlohmann::json qc = nlohmann::json::object();
  qc["quant_method"] = "compressed-tensors";
  qc["format"] = fmt;
  qc["quantization_status"] = "compressed";
  qc["config_groups"] = {{"group_0", group}};
  qc["ignore"] = nlohmann::json::array({"lm_head"});
  qc["kv_cache_scheme"] = nullptr;
  qc["global_compression_ratio"] = nullptr;
  qc["sparsity_config"] = nlohmann::json::object();
  std::vector<std::string> notes;
  if (qm.recipe.transform != "identity" && classify(qm.linears->begin()->second).kind == "hadamard") {
    qc["transform_config"] = ct_hadamard(G);
    notes.push_back("the block Hadamard is declared in transform_config; the weights already hold W T^-1");
  }
  AtomicDir out(dst, o.force);
  nlohmann::json cfg = config_to_json(qm.base.config);
  cfg["quantization_config"] = qc;
  write_file_atomic(out.file("config.json"), cfg.dump(2) + "\n");
  copy_side_files(qm.base, out);

  std::vector<std::pair<std::string, SafeTensor>> tensors;
  for (const auto& [name, w] : qm.base.weights) tensors.emplace_back(name, SafeTensor::of(w.contiguous()));
  for (const auto& [p, q] : *qm.linears) {
    tensors.emplace_back(p + ".weight_packed", SafeTensor::of(q.weight.codes.contiguous()));
    SafeTensor sc = encode_scale_tensor(q.weight.scales, f);
    if (f == Format::MXFP4_OCP) sc = SafeTensor::of(sc.data);  // vLLM registers the E8M0 bytes as uint8
    tensors.emplace_back(p + ".weight_scale", sc);
    if (q.bias.defined()) tensors.emplace_back(p + ".bias", SafeTensor::of(q.bias.contiguous()));
    if (f == Format::NVFP4) {
      // compressed-tensors divides: W = E2M1 * (weight_scale / weight_global_scale)
      tensors.emplace_back(p + ".weight_global_scale", SafeTensor::of(at::full({1}, q.weight.global_scale, at::kFloat)));
      if (acts) tensors.emplace_back(p + ".input_global_scale", SafeTensor::of(at::full({1}, 10.0f, at::kFloat)));
    }
  }
  std::vector<SafeTensorSpec> specs;
  for (auto& [n, s] : tensors) specs.push_back({n, s.dtype, s.shape()});
  write_safetensors_dir(out.tmp_path(), specs, [&](size_t i) { return tensors[i].second; });
  out.commit();
  if (f == Format::MXFP4_OCP && acts)
    notes.push_back("vLLM on Hopper serves MXFP4 weight-only (FP4 Marlin): the activations run in bf16 there");
  return notes;
}

void dump_dequantized(const QuantizedModel& qm, const std::string& dst, const ExportOptions& o) {
  WUSH_CHECK(o.force || !path_exists(dst), "%s: already exists (pass --force to replace it)", dst.c_str());
  std::vector<std::pair<std::string, SafeTensor>> tensors;
  for (const auto& [p, q] : *qm.linears) {
    tensors.emplace_back(p + ".weight", SafeTensor::of(q.dense.to(at::kCPU, at::kFloat).contiguous()));
    const int64_t nb = q.padded_in() / q.group;
    at::Tensor T = q.T.defined() ? q.T.to(at::kFloat).expand({nb, q.group, q.group})
                                 : at::eye(q.group, at::kFloat).expand({nb, q.group, q.group});
    tensors.emplace_back(p + ".transform", SafeTensor::of(T.contiguous()));
  }
  write_safetensors(dst, tensors);
}

at::Tensor gguf_rope_row_order(int64_t n_heads, int64_t D) {
  // old rows of head h: [h*D, h*D + D) = two halves of D/2; llama.cpp wants (i, half) order.
  at::Tensor idx = at::arange(n_heads * D, at::kLong).reshape({n_heads, 2, D / 2});
  return idx.transpose(1, 2).reshape({-1}).contiguous();
}

}  // namespace wush

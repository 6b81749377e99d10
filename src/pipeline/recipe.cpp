#include "pipeline/recipe.h"

#include <algorithm>
#include <sstream>

#include "core/error.h"

namespace wush {

const std::vector<std::string>& recipe_transforms() {
  static const std::vector<std::string> names = {"identity", "hadamard", "random",   "smoothquant",
                                                 "wus",      "wush",     "wush-local",
                                                 "wush-search", "latmix-lu",
                                                 "latmix-qr"};
  return names;
}

bool is_latmix(const std::string& transform) { return transform == "latmix-lu" || transform == "latmix-qr"; }

Recipe linear_recipe(const Recipe& r, int linear_index) {
  if (!is_latmix(r.transform)) return r;
  Recipe out = r;
  out.transform = linear_index == 6 ? "hadamard" : "identity";  // 6 = mlp.down_proj
  return out;
}

static std::string join(const std::vector<std::string>& v) {
  std::string s;
  for (auto& x : v) s += (s.empty() ? "" : ", ") + x;
  return s;
}

std::string weight_method_name(WeightMethod m) { return m == WeightMethod::GPTQ ? "gptq" : "rtn"; }

WeightMethod parse_weight_method(const std::string& s) {
  if (s == "rtn") return WeightMethod::RTN;
  if (s == "gptq") return WeightMethod::GPTQ;
  WUSH_FAIL("unknown weight method '%s' (valid: rtn, gptq)", s.c_str());
}

std::string Recipe::to_string() const {
  std::string s = transform + ":" + format_name(format) + ":" + weight_method_name(weights);
  if (!quantize_acts) s += ":w4a16";
  return s;
}

std::string Recipe::display_name() const {
  std::string t = transform == "identity" ? "I" : transform == "hadamard" ? "H" : transform;
  if (t != "I" && t != "H") std::transform(t.begin(), t.end(), t.begin(), ::toupper);
  if (is_latmix(transform)) t = "LATMiX" + t.substr(6);  // GPTQ-LATMiX-LU
  std::string s;
  if (weights == WeightMethod::GPTQ && transform == "hadamard")
    s = "MR-GPTQ";
  else
    s = (weights == WeightMethod::GPTQ ? "GPTQ-" : "RTN-") + t;
  return s + (quantize_acts ? "" : " (W4A16)");
}

Recipe parse_recipe(const std::string& s) {
  std::vector<std::string> tok;
  std::stringstream ss(s);
  for (std::string t; std::getline(ss, t, ':');) tok.push_back(t);
  WUSH_CHECK(tok.size() == 3 || tok.size() == 4,
             "recipe '%s': expected transform:format:weights[:w4a16], e.g. wush:mxfp4:gptq", s.c_str());
  Recipe r;
  const auto& tn = recipe_transforms();
  WUSH_CHECK(std::find(tn.begin(), tn.end(), tok[0]) != tn.end(),
             "recipe '%s': unknown transform '%s' (valid: %s)", s.c_str(), tok[0].c_str(), join(tn).c_str());
  r.transform = tok[0];
  r.format = parse_format(tok[1]);
  r.weights = parse_weight_method(tok[2]);
  if (tok.size() == 4) {
    WUSH_CHECK(tok[3] == "w4a16" || tok[3] == "w4a4", "recipe '%s': unknown suffix '%s' (valid: w4a4, w4a16)",
               s.c_str(), tok[3].c_str());
    r.quantize_acts = tok[3] == "w4a4";
  }
  return r;
}

}  // namespace wush

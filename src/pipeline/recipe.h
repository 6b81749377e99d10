// A quantization method as a recipe string `transform:format:weights` (STYLE.md §3), e.g.
// "wush:mxfp4:gptq", "hadamard:nvfp4:rtn", "identity:none:rtn". Parsed by looking each token up in
// its registry; to_string() prints it back; saved in checkpoints and --json outputs.
#pragma once
#include <string>
#include <vector>

#include "formats/format.h"

namespace wush {

enum class WeightMethod { RTN, GPTQ };

struct Recipe {
  std::string transform = "identity";
  Format format = Format::MXFP4;
  WeightMethod weights = WeightMethod::RTN;
  bool quantize_acts = true;  // W4A4; false = W4A16 (weights only)

  std::string to_string() const;  // "transform:format:weights" (+ ":w4a16" when acts stay fp)
  bool operator==(const Recipe& o) const {
    return transform == o.transform && format == o.format && weights == o.weights &&
           quantize_acts == o.quantize_acts;
  }
  // A human name used in tables: "RTN-I", "MR-GPTQ", "GPTQ-WUSH", ...
  std::string display_name() const;
};

// Unknown token -> wush::Error naming it and listing the valid values.
Recipe parse_recipe(const std::string& s);
const std::vector<std::string>& recipe_transforms();  // the transform names a recipe accepts
// LATMiX (REFERENCE §5): "latmix-lu" / "latmix-qr" transform the whole model (affine T1 on the
// residual stream, T2 between v_proj and o_proj, folded into the weights; src/latmix/fold.h);
// per linear, only the fixed block Hadamard before down_proj stays an online block transform.
bool is_latmix(const std::string& transform);
// The recipe linear i (kLinearNames order) is quantized with: r itself, except for LATMiX where
// the transform is "identity" for q/k/v/o/gate/up and "hadamard" for down_proj.
Recipe linear_recipe(const Recipe& r, int linear_index);
std::string weight_method_name(WeightMethod m);
WeightMethod parse_weight_method(const std::string& s);

}  // namespace wush

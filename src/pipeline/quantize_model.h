// The model-level pipeline (REFERENCE.md §4): block by block, one forward of the not-yet-quantized
// block on the calibration inputs collects the seven linears' statistics; the seven are quantized
// with the recipe; the block's outputs are recomputed with the quantized layers (activation
// quantization included) and fed to the next block.
#pragma once
#include <ATen/ATen.h>

#include <map>
#include <memory>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "model/forward.h"
#include "model/model.h"
#include "pipeline/quant_linear.h"
#include "pipeline/recipe.h"
#include "quant/calib_stats.h"

namespace wush {
namespace latmix {
struct LatmixTransforms;
}

struct QuantizedModel {
  Model base;                                   // config + unquantized tensors (no linear weights)
  // By linear prefix; shared so that hooks() stays valid when the model is moved or copied.
  std::shared_ptr<std::map<std::string, QuantLinear>> linears = std::make_shared<std::map<std::string, QuantLinear>>();
  Recipe recipe;
  nlohmann::json calibration;                   // what calibrated it (file, nsamples, seqlen, seed)
  // LATMiX recipes: the transforms folded into `base` and the linears (fp32 CPU). Their T1 runs
  // online in every RMSNorm (latmix/fold.h); T2 is folded into v_proj/o_proj and kept for the record.
  std::shared_ptr<const latmix::LatmixTransforms> latmix;

  // Hooks that route the seven linears of every block through the simulated W4A4 layers (and,
  // for LATMiX, the RMSNorms through T1's online norm).
  ForwardHooks hooks() const;
  // A Transformer over the base weights with hooks() installed as its default hooks. The W4A4
  // layers compute in fp32 (on CUDA: the real kernels, bf16 activations in); dtype is the rest of
  // the model's (bf16 only on CUDA, where the real path serves the linears).
  Transformer transformer(at::Device dev = at::kCPU, at::ScalarType dtype = at::kFloat) const;
};

struct QuantizeOptions {
  Recipe recipe;
  int64_t batch = 8;            // calibration windows per forward
  uint64_t seed = 0;            // random transforms
  bool transform_damp = true;   // LinearQuantInput::transform_damp (REFERENCE §2 damping of T's fit)
  bool round_bf16 = true;       // LinearQuantInput::round_bf16 (T_j rounded to bf16)
  at::Device device = at::kCPU;
  // LATMiX recipes (latmix-lu / latmix-qr): the trained transforms (latmix/train.h or a
  // `wush latmix` output). The model is folded with them (latmix::apply_latmix) and then quantized
  // block by block like any other; required for those recipes, an error for the others.
  std::shared_ptr<const latmix::LatmixTransforms> latmix;
};

struct QuantizeReport {
  nlohmann::json layers = nlohmann::json::array();  // {name, loss, seconds}
  double seconds = 0;
};

// The seven linears' input statistics of block `layer` over the hidden states h (one forward of the
// unquantized block per batch). q/k/v and gate/up receive the same tensor: it is accumulated once,
// under the first name, and the others point at it through `alias`. `hk` supplies the other hooks
// of that forward (LATMiX's online norm); its on_linear_input is replaced.
struct BlockStats {
  CalibStats stats;
  std::map<std::string, std::string> alias;  // linear -> the linear whose identical input was recorded
  const LayerStats& of(const std::string& linear) const;
};
BlockStats collect_block_stats(Transformer& tf, int64_t layer, const std::vector<at::Tensor>& h,
                               ForwardHooks hk = {});

// tokens: calibration windows int64 [n, L] (undefined for data-free recipes: RTN with identity,
// hadamard or random).
QuantizedModel quantize_model(const Model& m, const at::Tensor& tokens, const QuantizeOptions& opt,
                              QuantizeReport* report = nullptr);

}  // namespace wush

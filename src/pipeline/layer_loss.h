// The per-layer W4A4 loss table (REFERENCE.md §6, the paper's Table 1): the full-precision model
// runs on the calibration windows; the raw inputs X of one block's seven linears are recorded;
// for each format x transform every linear is quantized with RTN (recipe `T:F:rtn`, weights and
// activations) and its loss ||Y - Y_q||^2 / numel is measured on X. The random transform's loss
// is the mean over several seeds (the paper: 10). One block's inputs are held at a time.
#pragma once
#include <ATen/ATen.h>

#include <array>
#include <map>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "formats/format.h"
#include "model/forward.h"
#include "model/model.h"
#include "quant/calib_stats.h"

namespace wush {

class Progress;

// The raw inputs of one block's seven linears (kLinearNames order) as the full-precision model
// computes them, fp32 [N, C] on the forward's device. Linears that share an input (q/k/v,
// gate/up) share one tensor: source[i] is the first linear with the same input.
struct BlockInputs {
  int64_t layer = 0;
  std::array<at::Tensor, 7> X;
  std::array<int, 7> source{};
  CalibStats stats;  // keyed by linear_prefix(layer, source[i])

  const LayerStats& stats_of(int i) const;
};

// Runs block `layer` of `tf` on the hidden states h (each [B, T, H]) with an observer hook,
// records its linears' inputs and their statistics, and replaces h by the block's outputs.
BlockInputs record_block_inputs(Transformer& tf, int64_t layer, std::vector<at::Tensor>& h);

struct LayerLossOptions {
  std::vector<Format> formats;           // columns sections, in this order
  std::vector<std::string> transforms;   // recipe transform names, rows in this order
  int random_seeds = 10;                 // the "random" transform: mean over this many seeds
  int64_t batch = 8;                     // calibration windows per forward
  at::Device device = at::kCPU;
  at::ScalarType dtype = at::kFloat;     // forward compute dtype
};

// Checks names against the format table and the recipe transforms; the error names `what`
// (the CLI option) and the valid values.
std::vector<Format> parse_format_list(const std::string& csv, const std::string& what);
std::vector<std::string> parse_transform_list(const std::string& csv, const std::string& what);

// loss[format name][transform][i], i over the seven linears (kLinearShort order).
using LossTable = std::map<std::string, std::map<std::string, std::array<double, 7>>>;

// The loss of one linear of block `layer` for recipe transform:format:rtn on inputs X; for
// "random", the mean over seeds k = 0..random_seeds-1 (transform seed k * 1000003 + layer * 7 + i).
double linear_layer_loss(const Model& m, int64_t layer, int i, const BlockInputs& in, const std::string& transform,
                         Format f, int random_seeds);

// Every format x transform x linear of one recorded block; `bar` advances once per
// (format, transform).
LossTable block_loss_table(const Model& m, const BlockInputs& in, const LayerLossOptions& o, Progress* bar = nullptr);

struct LayerLossResult {
  std::vector<int64_t> blocks;
  std::vector<LossTable> per_block;  // parallel to blocks
  LossTable mean;                    // mean over blocks
};

// tokens: calibration windows int64 [n, L]; blocks: the blocks to measure (any order, each once).
LayerLossResult run_layer_loss(const Model& m, const at::Tensor& tokens, const std::vector<int64_t>& blocks,
                               const LayerLossOptions& o);

// {"<format>": {"<transform>": {"q": loss, ..., "down": loss}}}
nlohmann::json loss_table_json(const LossTable& t);
// The paper's layout: one section per format, rows = transforms, columns = the seven linears.
std::string format_loss_table(const LossTable& t, const LayerLossOptions& o, const std::string& title);
// "down: C = 172 zero-padded to 192 for G = 32 (mxfp4)" lines for the linears whose input
// size is not a multiple of a format's group.
std::vector<std::string> padding_notes(const ModelConfig& c, const std::vector<Format>& formats);

}  // namespace wush

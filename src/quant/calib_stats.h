// Calibration statistics of linear-layer inputs (REFERENCE.md §2, §3, §9): for each layer, the
// running sum of X X^T (C x C), the token count N and the per-channel absolute maximum max|x_c|
// (SmoothQuant). Fed from a forward hook with the layer's input activations [tokens, C] or
// [B, T, C] on whatever device they live; the sums stay on that device.
//
// Precision (REFERENCE §9: "ours accumulate in fp32 or better", never TF32): each add() splits
// the tokens into chunks of at most kChunkTokens rows; each chunk's X^T X is computed in fp32
// (fp64 when the activations are fp64, and also on CUDA whenever cuBLAS may use TF32) and added
// into an fp64 running sum. The fp32 rounding error is thus bounded per chunk, not per run.
#pragma once
#include <ATen/ATen.h>

#include <map>
#include <string>
#include <vector>

namespace wush {

class LayerStats {
 public:
  static constexpr int64_t kChunkTokens = 4096;

  LayerStats() = default;
  explicit LayerStats(std::string name) : name_(std::move(name)) {}

  // Adds activations x [..., C] (any float dtype). Non-finite values -> wush::Error naming the layer.
  void add(const at::Tensor& x);

  const std::string& name() const { return name_; }
  int64_t channels() const { return xtx_.defined() ? xtx_.size(0) : 0; }
  int64_t count() const { return count_; }
  const at::Tensor& xtx() const { return xtx_; }        // fp64 [C, C]: sum of x x^T
  const at::Tensor& absmax() const { return absmax_; }  // fp32 [C]: max |x_c|
  // H = X X^T / N, fp64 [C, C], symmetrized, on the statistics' device.
  at::Tensor H() const;

  // Builds from stored sums, validating shapes, dtypes, finiteness and count (used by load());
  // `where` prefixes error messages (e.g. the file name).
  static LayerStats from_sums(std::string name, at::Tensor xtx, at::Tensor absmax, int64_t count,
                              const std::string& where = "");

 private:
  std::string name_;
  at::Tensor xtx_, absmax_;
  int64_t count_ = 0;
};

// Statistics of a set of layers, keyed by layer name (e.g. "model.layers.3.mlp.down_proj").
class CalibStats {
 public:
  // Adds x to the layer's statistics (created on first use).
  void add(const std::string& layer, const at::Tensor& x);
  bool has(const std::string& layer) const { return layers_.count(layer) > 0; }
  const LayerStats& at(const std::string& layer) const;  // wush::Error if absent
  std::vector<std::string> names() const;
  size_t size() const { return layers_.size(); }

  // Writes every layer to one tensor file (tensor_file.h, safetensors layout) atomically:
  // "<layer>.xtx" F64 [C, C], "<layer>.absmax" F32 [C], "<layer>.count" I64 [],
  // metadata {"format": "wush-calib-stats", "version": "1"}.
  void save(const std::string& path) const;
  // Reads and validates such a file (format tag, version, every layer complete and consistent).
  static CalibStats load(const std::string& path);

 private:
  std::map<std::string, LayerStats> layers_;
};

}  // namespace wush

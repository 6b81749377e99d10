// Block transforms as objects (REFERENCE.md §2, STYLE.md §2). A fitted transform is one G x G
// matrix T_j per block j of the input dimension; C is zero-padded to Cp = nb * G, nb = ceil(C/G).
//   apply:       x [..., C]  -> x~ [..., Cp],  x~_j = T_j x_j        (online, activations)
//   weight_side: W [R, C]    -> W~ [R, Cp],    W~_j = W_j T_j^{-1}   (offline, via linear solves)
//   inverse:     x~ [..., Cp] -> x [..., C],   x_j = T_j^{-1} x~_j
// so that W~ x~ = W x exactly before quantization. The blocks are rounded to bf16 at the end of
// fit() (FitInput::round_bf16, default on for every transform): the weight side is derived from
// the same matrices that run online in bf16, so the pairing is exact for them.
// Subclasses implement only fit_blocks(); each lives in its own file; the registry
// (transform_registry.h) makes them by name.
#pragma once
#include <ATen/ATen.h>

#include <cstdint>
#include <memory>
#include <string>

namespace wush {

class LayerStats;

struct FitInput {
  at::Tensor H;         // [C, C] second moment X X^T / N (fp64); undefined for data-free transforms
  at::Tensor W;         // [R, C] weight; undefined for data-free transforms
  at::Tensor x_absmax;  // [C] per-channel activation absmax max|x_c| (smoothquant)
  int64_t channels = 0; // C when neither H nor W is given (identity, hadamard, random)
  int64_t group = 32;   // G
  uint64_t seed = 0;    // random transforms
  bool damp = true;     // §2 damping (off only for tests of the exact identities)
  bool round_bf16 = true;
  std::string layer = "layer";  // named in error messages

  // H, x_absmax from a layer's statistics, plus its weight.
  static FitInput from_stats(const LayerStats& s, const at::Tensor& W, int64_t group);
};

class Transform {
 public:
  virtual ~Transform() = default;
  virtual std::string name() const = 0;
  // What fit() needs; checked there with a message naming the layer.
  virtual bool needs_H() const { return false; }
  virtual bool needs_W() const { return false; }
  virtual bool needs_absmax() const { return false; }

  // Validates the input (shapes, NaN/Inf naming the layer and tensor), computes and stores blocks.
  void fit(const FitInput& in);
  bool fitted() const { return blocks_.defined(); }

  const at::Tensor& blocks() const;  // [nb, G, G] fp64
  int64_t channels() const { return C_; }
  int64_t group() const { return G_; }
  int64_t padded_channels() const { return nb_ * G_; }
  int64_t num_blocks() const { return nb_; }
  uint64_t seed() const { return seed_; }

  at::Tensor apply(const at::Tensor& x) const;         // [..., C] -> [..., Cp], x's dtype
  at::Tensor weight_side(const at::Tensor& W) const;   // [R, C] -> [R, Cp], W's dtype
  at::Tensor inverse(const at::Tensor& xt) const;      // [..., Cp] -> [..., C], xt's dtype

  // Self-describing bytes (tensor_file.h layout): tensor "blocks" F64 [nb, G, G], metadata
  // {"format": "wush-transform", "version", "name", "channels", "group", "seed"}.
  std::string serialize() const;
  static std::unique_ptr<Transform> deserialize(const std::string& bytes,
                                                const std::string& what = "transform");
  void save(const std::string& path) const;  // atomically
  static std::unique_ptr<Transform> load(const std::string& path);

 protected:
  // fp64 [nb, G, G] for input `in` whose H and W are already padded to Cp (H: pad_second_moment,
  // W: zero columns; x_absmax: padded with zeros) and on one device.
  virtual at::Tensor fit_blocks(const FitInput& in, int64_t nb) = 0;

 private:
  void check_fitted(const char* op) const;
  at::Tensor blocks_;  // fp64 [nb, G, G]
  int64_t C_ = 0, G_ = 0, nb_ = 0;
  uint64_t seed_ = 0;
};

}  // namespace wush

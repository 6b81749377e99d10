// LATMiX training by distillation (REFERENCE.md §5): the transforms are learned with autograd so
// that the transformed model with MX-fake-quantized activations (straight-through rounding, weights
// in full precision) matches the full-precision model's next-token distributions:
//   loss = mean over tokens of KL(softmax(z_fp / tau) || softmax(z_q / tau)) + lambda * sum_T (sum log|s_T|)^2
// over T in {t1, t2 of every layer}. AdamW; learning rate: linear warm-up over
// min(warmup, steps / 10) steps, then cosine decay to 0 at `steps`. Batches: `batch_size`
// calibration windows per step, drawn without replacement from a seeded permutation, a new
// permutation each epoch. Deterministic for a given seed, device and thread count.
#pragma once
#include <ATen/ATen.h>

#include <vector>

#include "latmix/latmix_transforms.h"
#include "model/model.h"

namespace wush::latmix {

struct TrainOptions {
  int64_t steps = 1000;
  double lr = 1e-2;
  int64_t batch_size = 4;
  double temperature = 1.5;
  double reg = 1e-3;          // lambda of the volume regularizer
  int64_t warmup = 100;
  double weight_decay = 0.0;  // AdamW decoupled weight decay
  Format format = Format::MXFP4;
  bool scale_grad = true;     // differentiate the MX group scale through amax (mx_ste.h)
  uint64_t seed = 0;
  at::Device device = at::kCPU;
  bool progress = true;
};

struct LossPoint {
  int64_t step = 0;
  double loss = 0, kl = 0, reg = 0, lr = 0;
};

struct TrainResult {
  LatmixTransforms transforms;   // trained, detached, fp32 CPU
  std::vector<LossPoint> curve;  // one point per step
  double seconds = 0;
};

// tokens: int64 [n, L] calibration windows. init: from init_latmix (any dtype/device).
TrainResult train_latmix(const Model& m, const at::Tensor& tokens, const LatmixTransforms& init,
                         const TrainOptions& opt);

// The learning rate of step s (0-based) under opt's schedule.
double scheduled_lr(const TrainOptions& opt, int64_t step);

// Mean KL(p_fp || p_q) at temperature `temperature` over every position of `tokens` for the
// transformed model with `format` fake-quantized activations (full-precision weights), batched
// by `batch_size`; no gradients. format None measures the folding error (about 0).
double distill_kl(const Model& m, const LatmixTransforms& t, const at::Tensor& tokens, Format format,
                  double temperature = 1.0, int64_t batch_size = 4, at::Device device = at::kCPU);

}  // namespace wush::latmix

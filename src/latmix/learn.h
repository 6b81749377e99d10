// One LATMiX run from initialization to trained transforms (REFERENCE.md §5), shared by
// `wush latmix` and `wush quantize --transform latmix-lu|latmix-qr`: initialize (init.h), measure
// the KL before, train (train.h), measure the KL after and the folding error with quantization off.
#pragma once
#include <ATen/ATen.h>

#include <vector>

#include <nlohmann/json.hpp>

#include "latmix/init.h"
#include "latmix/train.h"

namespace wush::latmix {

struct LearnResult {
  LatmixTransforms transforms;  // trained, fp32 CPU; format = the training format, info = summary
  std::vector<LossPoint> curve;
  // The options and outcome: windows, seqlen, format, param, init, noise, steps, lr, warmup,
  // weight_decay, batch_size, temperature, reg, scale_grad, seed, train_seconds, loss_first,
  // loss_last, kl_before / kl_after (KL(p_fp || p_q) at T = 1, fp weights, `eval_windows` windows),
  // kl_unquantized_after (the folding error, about 0).
  nlohmann::json summary;
};

// tokens: int64 [n, L] calibration windows (wush init reads its statistics from them too).
// init.param/init.seed are used as given (callers set init.seed = train.seed).
LearnResult learn_latmix(const Model& m, const at::Tensor& tokens, const InitOptions& init, const TrainOptions& train,
                         int64_t eval_windows = 8);

}  // namespace wush::latmix

// The LATMiX training loss curve as files: CSV (one row per step) and a hand-written SVG line
// chart (loss per step, its moving average, and the learning rate on a second axis).
#pragma once
#include <string>
#include <vector>

#include "latmix/train.h"

namespace wush::latmix {

std::string loss_curve_csv(const std::vector<LossPoint>& curve);  // step,loss,kl,reg,lr
std::string loss_curve_svg(const std::vector<LossPoint>& curve, const std::string& title);

}  // namespace wush::latmix

// NaN/Inf in a tensor to be quantized: a wush::Error naming the tensor and the first bad element,
// "<what>: tensor '<name>' has NaN at index [r, c] (flat k); NaN/Inf cannot be quantized
// (REFERENCE.md §1)". Defined in format.cpp, which checks every input it quantizes this way.
#pragma once
#include <ATen/ATen.h>

namespace wush {

void check_finite(const at::Tensor& x, const char* what, const char* name);

}  // namespace wush

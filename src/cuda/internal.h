// Internals of the CUDA library shared by its .cu/.cpp files: error reporting and argument
// checks (STYLE.md §7: check at the boundary, name the argument and the rule).
#pragma once
#include <cuda_runtime_api.h>

#include <cstdint>

#include "cuda/wush_cuda.h"

namespace wush {
namespace cuda {
namespace detail {

// Records a printf-style message for last_error_message() and returns err.
cudaError_t fail(cudaError_t err, const char* fmt, ...) __attribute__((format(printf, 2, 3)));
// Records a CUDA error from a call or launch (nothing if err == cudaSuccess).
cudaError_t check_cuda(cudaError_t err, const char* what);

constexpr int kChunk = 128;  // K-chunk of the Hopper FP8 operand (cuBLASLt VEC128_32F)

inline int64_t ceil_div(int64_t a, int64_t b) { return (a + b - 1) / b; }
inline bool aligned16(const void* p) { return (reinterpret_cast<uintptr_t>(p) & 15u) == 0; }

// bf16 terms the tensor-core transform splits T into: 0 (identity), 1 (T holds bf16 values),
// 3 (any fp32 T: hi + mid + lo is exact).
inline int transform_terms(const TransformSpec& t) { return t.T == nullptr ? 0 : (t.bf16_values ? 1 : 3); }

// Shape and layout checks shared by the quantizer and the weight preparation.
cudaError_t check_shape(const char* fn, int64_t M, int64_t K, const QuantConfig& cfg);

}  // namespace detail
}  // namespace cuda
}  // namespace wush

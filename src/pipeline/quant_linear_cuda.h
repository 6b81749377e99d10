// The real W4A4 path of a QuantLinear on CUDA (REFERENCE.md §7, issue 8 item 3): the fused
// transform + quantize kernel writes the activation operand, the GEMM multiplies it with the
// weight operand prepared once from the stored codes and scales:
//   MXFP4 / MXFP4-OCP / MXINT4: FP8 E4M3 + one fp32 scale per 128 of K on both operands
//   (cuBLASLt VEC128), exact while no chunk's group exponents span more than exact_span;
//   NVFP4: the exactly dequantized bf16 operands through a BF16 GEMM.
// It computes what QuantLinear::forward simulates, except that the activations enter as bf16
// (the kernel's input type) and the product is accumulated in fp32 by the tensor cores.
#pragma once
#include <ATen/ATen.h>

#include <memory>

namespace wush {

struct QuantLinear;

// True when this build has the CUDA kernels and the layer's format, options and shape have a
// real W4A4 path (4-bit MX formats or NVFP4 with quantized activations, R % 16 == 0).
bool cuda_w4a4_supported(const QuantLinear& l);

// Device state of one layer: weight operand, scales, transform (built on first use).
struct CudaW4A4State;

// x [..., C] on a CUDA device -> y [..., R], bias added: bf16 for a bf16 x, fp32 otherwise.
// WUSH_W4A4=row: MX layers use the row-wise FP8 GEMM (faster, exact only where each row's group
// exponents span at most exact_span; inexact activation rows are counted in the stats).
// Requires cuda_w4a4_supported(l).
at::Tensor cuda_w4a4_forward(const QuantLinear& l, std::shared_ptr<CudaW4A4State>& state, const at::Tensor& x);

// Counters summed over every cuda_w4a4_forward of the process (the kernels' span and overflow
// counts; read back once per call, so they cost a synchronization).
struct CudaW4A4Stats {
  int64_t calls = 0, span_exceeded_chunks = 0, scale_overflow_groups = 0;
  int64_t row_calls = 0, inexact_rows = 0;  // WUSH_W4A4=row: row-wise GEMM calls, activation rows not exact
};
CudaW4A4Stats cuda_w4a4_stats();

}  // namespace wush

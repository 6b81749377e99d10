// wush CUDA kernel library (REFERENCE.md §1, §7): the W4A4 layer on Hopper as
//   fused transform + quantize (memory-bound) -> block-scaled GEMM (cuBLASLt).
// Plain CUDA C++ with raw device pointers; no libtorch. Every entry point returns a cudaError_t;
// argument errors are cudaErrorInvalidValue, unsupported combinations cudaErrorNotSupported, and
// last_error_message() says which argument or rule failed. Every scalar `_ref` function here is
// the host reference of the kernel with the same stem, written in the kernel's operation order
// (STYLE.md §4): the kernels equal it bit for bit. The one exception is the transform, which
// runs on tensor cores (fp32 accumulation in an unspecified order): fused_transform_quantize_cuda
// can write its transformed values (`transformed`), and everything it derives from them equals
// quantize_transformed_ref on those values bit for bit.
//
// Layouts (row-major unless said otherwise; M tokens, K input features, N outputs):
//   x       bf16 [M, K]                         activations, K % G == 0 (the caller pads, §0)
//   T       fp32 [nT, G, G], T[j][i][k]         x~_j[i] = sum_k T_j[i][k] x_j[k]   (§2)
//           nT = K / G (one matrix per block: WUSH, LATMiX, random) or nT = 1 (shared:
//           Hadamard); T == nullptr is the identity (no matrix, no arithmetic).
//   codes   uint8 [M, K/2]    two 4-bit codes per byte, low nibble = even element;
//           E2M1 codes are sign-magnitude (bit 3 = sign, never a negative zero);
//           MXINT4 codes are two's complement int4.
//   scales  uint8 [M, K/G]    E8M0 code (2^(code-127)) for MX formats, E4M3 bits for NVFP4.
//   operand (the GEMM operand, §7), Mp = operand_rows(M) = M rounded up to a multiple of 4 rows
//           (cuBLASLt's VEC128_32F scales need 16-byte aligned rows of scales: measured on H100,
//           cuBLAS 13.1, a VEC128 operand with M % 4 != 0 has no algorithm); rows M..Mp-1 are
//           written as zeros (chunk scale 0).
//           MX formats: FP8 E4M3 [Mp, K], element = q * 2^(E_g - E_max) where E_g is the
//             group's scale exponent and E_max the largest one in its 128-wide chunk of K;
//           chunk_scales fp32 [ceil(K/128), Mp] = 2^E_max, rows contiguous (VEC128_32F layout).
//           NVFP4: bf16 [Mp, K], element = q * s (exact in bf16); no chunk scales.
//           The format's constant (1/3 per operand for the MXFP4 reference rule, 1/g for
//           NVFP4) goes into the GEMM's alpha: gemm_alpha().
//   counters uint64 [kNumCounters] on the device, accumulated (the caller zeroes them).
#pragma once
#include <cuda_bf16.h>
#include <cuda_runtime_api.h>

#include <cstddef>
#include <cstdint>

namespace wush {
namespace cuda {

// ---- formats (REFERENCE.md §1) ------------------------------------------------------------
enum class QFormat : int {
  MXFP4 = 0,  // G 32, E8M0 s = 2^floor(log2 amax), q = RNE_E2M1(3x/s), dequant q*s/3 (default)
  MXFP4_OCP,  // G 32, E8M0 X = 2^(floor(log2 amax)-2), q = clamp(RNE_E2M1(x/X), -6, 6)
  NVFP4,      // G 16, E4M3 s = E4M3(g*amax/6), q = RNE_E2M1(x*g/s), dequant q*s/g
  MXINT4,     // G 32, E8M0 X = 2^(floor(log2 amax)-2), q = clamp(RNE(x/X), -8, 7)
};
constexpr int kNumFormats = 4;
const char* format_name(QFormat f);
int group_size(QFormat f);  // G
bool has_chunk_operand(QFormat f);  // FP8 + VEC128 operand (MX formats); NVFP4 uses bf16

struct QuantConfig {
  QFormat format = QFormat::MXFP4;
  float nvfp4_global = 10.0f;  // NVFP4 tensor scale g (reference code: 10)
};

// Counters written by the kernels (device uint64 array of this length).
enum Counter : int {
  kSpanExceeded = 0,  // MX chunks whose nonzero groups' exponents span more than exact_span()
  kScaleOverflow = 1, // NVFP4 groups with g*amax/6 > 448 (E4M3 scale saturated)
  kNonFinite = 2,     // groups with a NaN/Inf after the transform (input error: codes invalid)
  kNumCounters = 3,
};
// Largest E_max - E_g for which q * 2^(E_g - E_max) is exact in E4M3: 8 for E2M1 elements
// (0.5 * 2^-8 = 2^-9 is E4M3's smallest subnormal), 9 for int4 elements (integers, 1 * 2^-9).
int exact_span(QFormat f);
// Rows of an operand (and of its chunk scales) for `rows` tokens or weight rows: a multiple of 4.
constexpr int64_t operand_rows(int64_t rows) { return (rows + 3) / 4 * 4; }

// GEMM alpha for two operands of format f: (1/3)^2 for MXFP4, 1/g^2 for NVFP4, 1 otherwise.
float gemm_alpha(const QuantConfig& cfg);

// ---- fused transform + quantize -------------------------------------------------------------
struct TransformSpec {
  const float* T = nullptr;  // nullptr = identity
  int64_t num_blocks = 0;    // 1 (shared) or K/G (per block); ignored for identity
  // The caller vouches that every entry of T is a bf16 value (REFERENCE §2 rounds T_j to bf16):
  // one bf16 MMA per product. Otherwise T is split into three bf16 terms (exact for fp32).
  bool bf16_values = false;
};

struct QuantizeOutputs {    // any pointer may be nullptr: that output is skipped
  uint8_t* codes = nullptr;
  uint8_t* scales = nullptr;
  void* operand = nullptr;        // fp8 e4m3 (MX) or bf16 (NVFP4), [M, K]
  float* chunk_scales = nullptr;  // MX only, [ceil(K/128), M]
  unsigned long long* counters = nullptr;  // [kNumCounters]
  float* transformed = nullptr;   // fp32 [M, K]: x~ as the kernel computed it (tests; 4 M K bytes)
};

cudaError_t fused_transform_quantize_cuda(const __nv_bfloat16* x, int64_t M, int64_t K,
                                          const TransformSpec& t, const QuantConfig& cfg,
                                          const QuantizeOutputs& out, cudaStream_t stream);
// Host reference: same layouts in host memory (x as bf16 bits, operand as fp8/bf16 bits,
// counters accumulated).
void fused_transform_quantize_ref(const uint16_t* x, int64_t M, int64_t K,
                                  const TransformSpec& t, const QuantConfig& cfg,
                                  const QuantizeOutputs& out);

// The quantization part of the reference alone: y fp32 [M, K] (already transformed) -> the same
// outputs (out.transformed ignored).
void quantize_transformed_ref(const float* y, int64_t M, int64_t K, const QuantConfig& cfg,
                              const QuantizeOutputs& out);

// ---- offline weight preparation -------------------------------------------------------------
// Quantized weights (codes [N, K/2], scales [N, K/G], as produced by the quantizer) -> the GEMM
// operand (+ chunk scales [ceil(K/128), N] for MX). Equals the operand that
// fused_transform_quantize writes for the same codes and scales.
cudaError_t prepare_weight_operand_cuda(const uint8_t* codes, const uint8_t* scales, int64_t N,
                                        int64_t K, const QuantConfig& cfg, void* operand,
                                        float* chunk_scales, unsigned long long* counters,
                                        cudaStream_t stream);
void prepare_weight_operand_ref(const uint8_t* codes, const uint8_t* scales, int64_t N,
                                int64_t K, const QuantConfig& cfg, void* operand,
                                float* chunk_scales, unsigned long long* counters);

// ---- row-wise operand (the exact-span rule of §7 applied to whole rows) ----------------------
// The FP8 chunk operand [Mp, K] (element q * 2^(E_g - E_chunk)) with its chunk scales
// [ceil(K/128), Mp] -> the row-wise operand out [Mp, K] (element q * 2^(E_g - E_row), E_row the
// row's largest group exponent) and row_scales [Mp] = 2^E_row (0 for an all-zero row), the
// operands of GemmKind::FP8_ROWWISE (cuBLASLt OUTER_VEC_32F: one scale per row, no per-chunk
// scale promotions in the GEMM's main loop). Exact iff every row's nonzero group exponents span
// at most exact_span(f); *inexact_rows (device, accumulated, may be nullptr) counts the rows where
// an element did not survive (those need the VEC128 path). Mp = operand_rows(M) rows are read
// and written (padding rows give zeros).
cudaError_t fold_rows_cuda(const uint8_t* operand, const float* chunk_scales, int64_t M, int64_t K,
                           uint8_t* out, float* row_scales, unsigned long long* inexact_rows,
                           cudaStream_t stream);
void fold_rows_ref(const uint8_t* operand, const float* chunk_scales, int64_t M, int64_t K, uint8_t* out,
                   float* row_scales, unsigned long long* inexact_rows);

// ---- GEMM: Y[M, N] = alpha * X[M, K] W[N, K]^T (cuBLASLt) ------------------------------------
enum class GemmKind : int {
  BF16 = 0,      // bf16 x bf16 (the baseline, and NVFP4's dequantized path)
  FP8_VEC128,    // E4M3 x E4M3, fp32 scale per 128 of K on both operands (Hopper, MX formats)
  NATIVE_MXFP4,  // Blackwell only: packed E2M1 + VEC32_UE8M0 scales (compile-only here)
  NATIVE_NVFP4,  // Blackwell only: packed E2M1 + VEC16_UE4M3 scales (compile-only here)
  // Cheaper Hopper scaling modes (cuBLASLt OUTER_VEC_32F / SCALAR_32F):
  FP8_ROWWISE,     // E4M3 x E4M3, one fp32 scale per row of each operand ([rows] floats): the
                   // MX formats' W4A4 GEMM on fold_rows_cuda operands where the fold is exact
  FP8_TENSORWISE,  // E4M3 x E4M3, one fp32 scale per operand (a device float each)
};
enum class OutType : int { BF16 = 0, FP32 };

struct GemmPlan;  // descriptors, chosen algorithm and workspace for one (kind, M, N, K)
cudaError_t gemm_plan_create(GemmPlan** plan, GemmKind kind, int64_t M, int64_t N, int64_t K,
                             float alpha, OutType out_type = OutType::BF16);
void gemm_plan_destroy(GemmPlan* plan);
// act/weight: the operands in the kind's layout; act_scales/weight_scales: chunk scales
// (FP8_VEC128) or the swizzled block scales (NATIVE_*); nullptr for BF16.
// y: [gemm_out_rows(kind, M), N]: block-scaled kinds compute all operand_rows(M) rows (the
// padded ones are zero), BF16 exactly M.
cudaError_t gemm_run(const GemmPlan* plan, const void* act, const void* act_scales,
                     const void* weight, const void* weight_scales, void* y,
                     cudaStream_t stream);
inline int64_t gemm_out_rows(GemmKind kind, int64_t M) { return kind == GemmKind::BF16 ? M : operand_rows(M); }
// The kind a format runs on for this device (FP8_VEC128 or BF16 on Hopper).
GemmKind gemm_kind_for(QFormat f, int device_major);

// Blackwell native paths: block scales [rows, K/G] -> cuBLASLt's 128x4-tiled layout
// (rows padded to 128, K/G padded to 4, padding zero). out size: swizzled_scales_bytes().
size_t swizzled_scales_bytes(int64_t rows, int64_t K, int G);
cudaError_t swizzle_block_scales_cuda(const uint8_t* scales, int64_t rows, int64_t K, int G,
                                      uint8_t* out, cudaStream_t stream);

// The message of the last failed call on this thread ("" if none).
const char* last_error_message();

}  // namespace cuda
}  // namespace wush

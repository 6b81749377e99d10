// W4A4 GEMM through cuBLASLt (REFERENCE.md §7): Y[M, N] = alpha X[M, K] W[N, K]^T.
//
// cuBLAS is column-major, so the row-major product is computed as Y^T = W X^T: cuBLAS's A is
// W (op T, K contiguous, "TN" as FP8 requires), its B is X (op N), D is Y^T (ld N).
//   BF16        bf16 operands (baseline; NVFP4 after its exact bf16 dequantization)
//   FP8_VEC128  E4M3 operands, CUBLASLT_MATMUL_MATRIX_SCALE_VEC128_32F on A and B: one fp32
//               scale per 128 of K per row, stored [ceil(K/128), rows] with rows contiguous
//               (cuBLAS 12.9+, Hopper; 1x128 on both operands is one of the three supported
//               Hopper pairs, with 1x128 x 128x128 and 128x128 x 1x128; no fast accumulation).
//   FP8_ROWWISE / FP8_TENSORWISE  E4M3 with OUTER_VEC_32F (one fp32 per row: [rows]) or
//               SCALAR_32F (one device fp32 per operand) scales.
//   NATIVE_*    Blackwell (cc >= 10): packed E2M1 with VEC32_UE8M0 / VEC16_UE4M3 block scales in
//               cuBLASLt's 128x4-tiled layout. Compiled, not run here (no Blackwell machine).
#include <cublasLt.h>

#include "cuda/internal.h"

namespace wush {
namespace cuda {

struct GemmPlan {
  GemmKind kind;
  int64_t M, N, K;
  float alpha, beta = 0.0f;
  cublasLtHandle_t lt = nullptr;
  cublasLtMatmulDesc_t op = nullptr;
  cublasLtMatrixLayout_t a = nullptr, b = nullptr, d = nullptr;
  cublasLtMatmulAlgo_t algo{};
  void* workspace = nullptr;
  size_t workspace_size = 0;
};

namespace {

constexpr size_t kWorkspace = 32u << 20;

cudaError_t lt_fail(cublasStatus_t st, const char* what) {
  return detail::fail(st == CUBLAS_STATUS_NOT_SUPPORTED ? cudaErrorNotSupported : cudaErrorUnknown,
                      "cuBLASLt %s: %s (%s)", what, cublasLtGetStatusName(st), cublasLtGetStatusString(st));
}

#define WUSH_LT(call)                                            \
  do {                                                           \
    cublasStatus_t st_ = (call);                                 \
    if (st_ != CUBLAS_STATUS_SUCCESS) return lt_fail(st_, #call); \
  } while (0)

cudaError_t build(GemmPlan* p, OutType out_type) {
  cudaDataType_t in_type = CUDA_R_16BF;
  int32_t scale_mode = -1;
  switch (p->kind) {
    case GemmKind::BF16: in_type = CUDA_R_16BF; break;
    case GemmKind::FP8_VEC128: in_type = CUDA_R_8F_E4M3; scale_mode = CUBLASLT_MATMUL_MATRIX_SCALE_VEC128_32F; break;
    case GemmKind::NATIVE_MXFP4: in_type = CUDA_R_4F_E2M1; scale_mode = CUBLASLT_MATMUL_MATRIX_SCALE_VEC32_UE8M0; break;
    case GemmKind::NATIVE_NVFP4: in_type = CUDA_R_4F_E2M1; scale_mode = CUBLASLT_MATMUL_MATRIX_SCALE_VEC16_UE4M3; break;
    case GemmKind::FP8_ROWWISE: in_type = CUDA_R_8F_E4M3; scale_mode = CUBLASLT_MATMUL_MATRIX_SCALE_OUTER_VEC_32F; break;
    case GemmKind::FP8_TENSORWISE: in_type = CUDA_R_8F_E4M3; scale_mode = CUBLASLT_MATMUL_MATRIX_SCALE_SCALAR_32F; break;
  }
  const cudaDataType_t d_type = out_type == OutType::FP32 ? CUDA_R_32F : CUDA_R_16BF;
  WUSH_LT(cublasLtCreate(&p->lt));
  WUSH_LT(cublasLtMatmulDescCreate(&p->op, CUBLAS_COMPUTE_32F, CUDA_R_32F));
  const cublasOperation_t ta = CUBLAS_OP_T, tb = CUBLAS_OP_N;
  WUSH_LT(cublasLtMatmulDescSetAttribute(p->op, CUBLASLT_MATMUL_DESC_TRANSA, &ta, sizeof(ta)));
  WUSH_LT(cublasLtMatmulDescSetAttribute(p->op, CUBLASLT_MATMUL_DESC_TRANSB, &tb, sizeof(tb)));
  if (scale_mode >= 0) {
    WUSH_LT(cublasLtMatmulDescSetAttribute(p->op, CUBLASLT_MATMUL_DESC_A_SCALE_MODE, &scale_mode, sizeof(scale_mode)));
    WUSH_LT(cublasLtMatmulDescSetAttribute(p->op, CUBLASLT_MATMUL_DESC_B_SCALE_MODE, &scale_mode, sizeof(scale_mode)));
  }
  WUSH_LT(cublasLtMatrixLayoutCreate(&p->a, in_type, p->K, p->N, p->K));
  const int64_t rows = gemm_out_rows(p->kind, p->M);
  WUSH_LT(cublasLtMatrixLayoutCreate(&p->b, in_type, p->K, rows, p->K));
  WUSH_LT(cublasLtMatrixLayoutCreate(&p->d, d_type, p->N, rows, p->N));

  if (cudaError_t e = detail::check_cuda(cudaMalloc(&p->workspace, kWorkspace), "gemm workspace")) return e;
  p->workspace_size = kWorkspace;
  cublasLtMatmulPreference_t pref = nullptr;
  WUSH_LT(cublasLtMatmulPreferenceCreate(&pref));
  cublasLtMatmulPreferenceSetAttribute(pref, CUBLASLT_MATMUL_PREF_MAX_WORKSPACE_BYTES, &p->workspace_size,
                                       sizeof(p->workspace_size));
  cublasLtMatmulHeuristicResult_t res{};
  int count = 0;
  // The heuristic rejects scale modes without scale pointers (CUBLAS_STATUS_INVALID_VALUE,
  // seen on H100): set placeholders here; gemm_run sets the real ones.
  if (scale_mode >= 0) {
    const void* placeholder = p->workspace;
    WUSH_LT(cublasLtMatmulDescSetAttribute(p->op, CUBLASLT_MATMUL_DESC_A_SCALE_POINTER, &placeholder, sizeof(void*)));
    WUSH_LT(cublasLtMatmulDescSetAttribute(p->op, CUBLASLT_MATMUL_DESC_B_SCALE_POINTER, &placeholder, sizeof(void*)));
  }
  cublasStatus_t st = cublasLtMatmulAlgoGetHeuristic(p->lt, p->op, p->a, p->b, p->d, p->d, pref, 1, &res, &count);
  cublasLtMatmulPreferenceDestroy(pref);
  if (st != CUBLAS_STATUS_SUCCESS) return lt_fail(st, "cublasLtMatmulAlgoGetHeuristic");
  if (count == 0)
    return detail::fail(cudaErrorNotSupported, "cuBLASLt: no algorithm for kind %d, M=%lld N=%lld K=%lld",
                        int(p->kind), (long long)p->M, (long long)p->N, (long long)p->K);
  p->algo = res.algo;
  return cudaSuccess;
}

}  // namespace

cudaError_t gemm_plan_create(GemmPlan** plan, GemmKind kind, int64_t M, int64_t N, int64_t K,
                             float alpha, OutType out_type) {
  const char* fn = "gemm_plan_create";
  if (!plan) return detail::fail(cudaErrorInvalidValue, "%s: plan is null", fn);
  *plan = nullptr;
  if (M <= 0 || N <= 0 || K <= 0 || K % 32 != 0 || N % 16 != 0)
    return detail::fail(cudaErrorInvalidValue,
                        "%s: M=%lld N=%lld K=%lld: need positive sizes, K %% 32 == 0 and N %% 16 == 0 "
                        "(16-byte aligned leading dimensions)",
                        fn, (long long)M, (long long)N, (long long)K);
  if (kind == GemmKind::NATIVE_MXFP4 || kind == GemmKind::NATIVE_NVFP4) {
    int dev = 0, major = 0;
    cudaGetDevice(&dev);
    cudaDeviceGetAttribute(&major, cudaDevAttrComputeCapabilityMajor, dev);
    if (major < 10)
      return detail::fail(cudaErrorNotSupported, "%s: native FP4 GEMM needs Blackwell (cc >= 10), device has cc %d",
                          fn, major);
  }
  GemmPlan* p = new GemmPlan{kind, M, N, K, alpha};
  if (cudaError_t e = build(p, out_type)) {
    gemm_plan_destroy(p);
    return e;
  }
  *plan = p;
  return cudaSuccess;
}

void gemm_plan_destroy(GemmPlan* p) {
  if (!p) return;
  if (p->a) cublasLtMatrixLayoutDestroy(p->a);
  if (p->b) cublasLtMatrixLayoutDestroy(p->b);
  if (p->d) cublasLtMatrixLayoutDestroy(p->d);
  if (p->op) cublasLtMatmulDescDestroy(p->op);
  if (p->lt) cublasLtDestroy(p->lt);
  if (p->workspace) cudaFree(p->workspace);
  delete p;
}

cudaError_t gemm_run(const GemmPlan* p, const void* act, const void* act_scales, const void* weight,
                     const void* weight_scales, void* y, cudaStream_t stream) {
  const char* fn = "gemm_run";
  if (!p || !act || !weight || !y) return detail::fail(cudaErrorInvalidValue, "%s: null plan or operand", fn);
  if (p->kind != GemmKind::BF16) {
    if (!act_scales || !weight_scales)
      return detail::fail(cudaErrorInvalidValue, "%s: block-scaled GEMM needs both scale pointers", fn);
    // cuBLAS's A is the weight, B the activation (see the file comment).
    WUSH_LT(cublasLtMatmulDescSetAttribute(p->op, CUBLASLT_MATMUL_DESC_A_SCALE_POINTER, &weight_scales, sizeof(void*)));
    WUSH_LT(cublasLtMatmulDescSetAttribute(p->op, CUBLASLT_MATMUL_DESC_B_SCALE_POINTER, &act_scales, sizeof(void*)));
  }
  WUSH_LT(cublasLtMatmul(p->lt, p->op, &p->alpha, weight, p->a, act, p->b, &p->beta, y, p->d, y, p->d, &p->algo,
                         p->workspace, p->workspace_size, stream));
  return cudaSuccess;
}

// ---- Blackwell block-scale layout ---------------------------------------------------------
// cuBLASLt's VEC16/VEC32 scale layout: 128-row x 4-column tiles, tiles row-major, inside a tile
// offset (r % 32) * 16 + (r / 32) * 4 + c.

size_t swizzled_scales_bytes(int64_t rows, int64_t K, int G) {
  return size_t(detail::ceil_div(rows, 128) * 128) * size_t(detail::ceil_div(K / G, 4) * 4);
}

namespace {
__global__ void swizzle_kernel(const uint8_t* in, int64_t rows, int64_t cols, int64_t col_tiles, uint8_t* out,
                               int64_t total) {
  const int64_t idx = int64_t(blockIdx.x) * blockDim.x + threadIdx.x;
  if (idx >= total) return;
  const int64_t tile = idx / 512, within = idx % 512;
  const int64_t rt = tile / col_tiles, ct = tile % col_tiles;
  const int64_t r = rt * 128 + within / 16 + 32 * ((within % 16) / 4);
  const int64_t c = ct * 4 + within % 4;
  out[idx] = (r < rows && c < cols) ? in[r * cols + c] : 0;
}
}  // namespace

cudaError_t swizzle_block_scales_cuda(const uint8_t* scales, int64_t rows, int64_t K, int G, uint8_t* out,
                                      cudaStream_t stream) {
  if (!scales || !out || rows <= 0 || G <= 0 || K % G != 0)
    return detail::fail(cudaErrorInvalidValue, "swizzle_block_scales_cuda: bad arguments (rows %lld, K %lld, G %d)",
                        (long long)rows, (long long)K, G);
  const int64_t cols = K / G, col_tiles = detail::ceil_div(cols, 4);
  const int64_t total = int64_t(swizzled_scales_bytes(rows, K, G));
  swizzle_kernel<<<unsigned(detail::ceil_div(total, 256)), 256, 0, stream>>>(scales, rows, cols, col_tiles, out, total);
  return detail::check_cuda(cudaGetLastError(), "swizzle_block_scales_cuda");
}

}  // namespace cuda
}  // namespace wush

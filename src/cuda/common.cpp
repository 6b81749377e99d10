// Format traits of the CUDA library (REFERENCE.md §1, §7) and its error reporting.
#include <cstdarg>
#include <cstdio>
#include <string>

#include "cuda/internal.h"

namespace wush {
namespace cuda {

namespace {
thread_local std::string g_last_error;
}

const char* last_error_message() { return g_last_error.c_str(); }

namespace detail {

cudaError_t fail(cudaError_t err, const char* fmt, ...) {
  char buf[512];
  va_list ap;
  va_start(ap, fmt);
  std::vsnprintf(buf, sizeof(buf), fmt, ap);
  va_end(ap);
  g_last_error = buf;
  return err;
}

cudaError_t check_cuda(cudaError_t err, const char* what) {
  if (err == cudaSuccess) return err;
  return fail(err, "%s: %s", what, cudaGetErrorString(err));
}

cudaError_t check_shape(const char* fn, int64_t M, int64_t K, const QuantConfig& cfg) {
  const int f = static_cast<int>(cfg.format);
  if (f < 0 || f >= kNumFormats) return fail(cudaErrorInvalidValue, "%s: unknown format %d", fn, f);
  const int G = group_size(cfg.format);
  if (M < 0) return fail(cudaErrorInvalidValue, "%s: M = %lld is negative", fn, (long long)M);
  if (K <= 0 || K % G != 0)
    return fail(cudaErrorInvalidValue,
                "%s: K = %lld must be a positive multiple of the %s group size %d (pad with "
                "zeros, REFERENCE.md §0)",
                fn, (long long)K, format_name(cfg.format), G);
  if (cfg.format == QFormat::NVFP4 && !(cfg.nvfp4_global > 0.0f && cfg.nvfp4_global < 1e30f))
    return fail(cudaErrorInvalidValue, "%s: nvfp4_global %g must be positive and finite", fn,
                cfg.nvfp4_global);
  return cudaSuccess;
}

}  // namespace detail

const char* format_name(QFormat f) {
  switch (f) {
    case QFormat::MXFP4: return "mxfp4";
    case QFormat::MXFP4_OCP: return "mxfp4-ocp";
    case QFormat::NVFP4: return "nvfp4";
    case QFormat::MXINT4: return "mxint4";
  }
  return "?";
}

int group_size(QFormat f) { return f == QFormat::NVFP4 ? 16 : 32; }

bool has_chunk_operand(QFormat f) { return f != QFormat::NVFP4; }

int exact_span(QFormat f) { return f == QFormat::MXINT4 ? 9 : 8; }

float gemm_alpha(const QuantConfig& cfg) {
  switch (cfg.format) {
    case QFormat::MXFP4: return static_cast<float>(1.0 / 9.0);  // (s/3) per operand
    case QFormat::NVFP4:
      return static_cast<float>(1.0 / (double(cfg.nvfp4_global) * cfg.nvfp4_global));
    default: return 1.0f;
  }
}

GemmKind gemm_kind_for(QFormat f, int device_major) {
  if (device_major >= 10 && f == QFormat::MXFP4) return GemmKind::NATIVE_MXFP4;
  if (device_major >= 10 && f == QFormat::MXFP4_OCP) return GemmKind::NATIVE_MXFP4;
  if (device_major >= 10 && f == QFormat::NVFP4) return GemmKind::NATIVE_NVFP4;
  return f == QFormat::NVFP4 ? GemmKind::BF16 : GemmKind::FP8_VEC128;
}

}  // namespace cuda
}  // namespace wush

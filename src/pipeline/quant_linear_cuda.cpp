#include "pipeline/quant_linear_cuda.h"

#include <cmath>
#include <cstdlib>
#include <map>
#include <mutex>
#include <string>
#include <tuple>

#include "core/error.h"
#include "pipeline/quant_linear.h"
#ifdef WUSH_HAVE_CUDA_KERNELS
#include "cuda/wush_cuda.h"
#endif

namespace wush {

#ifdef WUSH_HAVE_CUDA_KERNELS
namespace {

bool to_cuda_format(Format f, cuda::QFormat* out) {
  switch (f) {
    case Format::MXFP4: *out = cuda::QFormat::MXFP4; return true;
    case Format::MXFP4_OCP: *out = cuda::QFormat::MXFP4_OCP; return true;
    case Format::NVFP4: *out = cuda::QFormat::NVFP4; return true;
    case Format::MXINT4: *out = cuda::QFormat::MXINT4; return true;
    default: return false;
  }
}

// Stored scale values (exact: powers of two for E8M0, E4M3 values for NVFP4) -> their 8-bit codes.
uint8_t e8m0_code(float s, const std::string& name) {
  int e = 0;
  const float m = std::frexp(s, &e);  // s = 0.5 * 2^e
  WUSH_CHECK(m == 0.5f && e - 1 >= -127 && e - 1 <= 127, "%s: group scale %g is not an E8M0 value", name.c_str(), s);
  return uint8_t(e - 1 + 127);
}

uint8_t e4m3_code(float s, const std::string& name) {
  for (int b = 0; b < 0x7F; ++b) {  // non-negative finite codes
    const int e = (b >> 3) & 15, m = b & 7;
    const float v = e == 0 ? std::ldexp(float(m), -9) : std::ldexp(1.0f + m / 8.0f, e - 7);
    if (v == s) return uint8_t(b);
  }
  WUSH_FAIL("%s: group scale %g is not an E4M3 value", name.c_str(), s);
}

void check_cuda(cudaError_t e, const std::string& what) {
  WUSH_CHECK(e == cudaSuccess, "%s: %s", what.c_str(), cuda::last_error_message());
}

// GEMM plans by (kind, M, N, K, alpha, output type): layers of one shape share a plan (each holds
// a workspace).
cuda::GemmPlan* cached_plan(cuda::GemmKind kind, int64_t M, int64_t N, int64_t K, float alpha, cuda::OutType out) {
  static std::mutex mu;
  static std::map<std::tuple<int, int64_t, int64_t, int64_t, float, int>, cuda::GemmPlan*> plans;
  std::lock_guard<std::mutex> lk(mu);
  auto key = std::make_tuple(int(kind), M, N, K, alpha, int(out));
  auto it = plans.find(key);
  if (it != plans.end()) return it->second;
  cuda::GemmPlan* p = nullptr;
  check_cuda(cuda::gemm_plan_create(&p, kind, M, N, K, alpha, out), "W4A4 GEMM plan");
  return plans[key] = p;
}

// Kernel counters of the process, on the device (accumulated by every call): the kernels'
// kNumCounters, then the row path's inexact activation rows.
constexpr int kInexactRows = cuda::kNumCounters;
at::Tensor& device_counters(at::Device dev) {
  static std::mutex mu;
  static std::map<int, at::Tensor> c;
  std::lock_guard<std::mutex> lk(mu);
  at::Tensor& t = c[dev.index()];
  if (!t.defined()) t = at::zeros({cuda::kNumCounters + 1}, at::TensorOptions().dtype(at::kLong).device(dev));
  return t;
}

// WUSH_W4A4 (empty when unset):
//   sim       force the simulation (comparisons); sim-bf16: the same with bf16-rounded inputs,
//             what the real kernels compute (QuantLinear::forward)
//   row       MX layers run the row-wise FP8 GEMM (one scale per row, REFERENCE §7's exact-span
//             rule applied to whole rows) on folded operands; exact only where a row's group
//             exponents span at most exact_span, so it is opt-in (inexact activation rows counted)
std::string w4a4_mode() {
  const char* env = std::getenv("WUSH_W4A4");
  return env ? env : "";
}
int64_t g_calls = 0, g_row_calls = 0;

}  // namespace

struct CudaW4A4State {
  at::Device device = at::kCPU;
  cuda::QuantConfig act_cfg;
  cuda::GemmKind kind = cuda::GemmKind::FP8_VEC128;
  float alpha = 1.0f;
  int64_t R = 0, Cp = 0;
  at::Tensor w_operand, w_chunk, T, bias, bias_bf16;
  bool T_bf16 = false;  // T holds bf16 values (REFERENCE §2): one MMA term in the kernel
  bool row = false;     // row path (WUSH_W4A4=row, MX formats, every weight row folds exactly)
  at::Tensor w_row, w_row_scales;
};

bool cuda_w4a4_supported(const QuantLinear& l) {
  const std::string mode = w4a4_mode();
  if (mode == "sim" || mode == "sim-bf16") return false;
  cuda::QFormat f;
  if (!to_cuda_format(l.format, &f) || !l.quantize_acts || l.drop_pad || !l.weight.codes.defined()) return false;
  if (l.group != cuda::group_size(f) || l.weight.shape.size() != 2) return false;
  return l.weight.shape[0] % 16 == 0 && l.padded_in() % 32 == 0;
}

static std::shared_ptr<CudaW4A4State> build_state(const QuantLinear& l, at::Device dev) {
  auto s = std::make_shared<CudaW4A4State>();
  cuda::QFormat f = cuda::QFormat::MXFP4;
  to_cuda_format(l.format, &f);
  s->device = dev;
  s->R = l.weight.shape[0];
  s->Cp = l.padded_in();
  s->act_cfg = {f, 10.0f};  // activations: QuantOptions' default NVFP4 global scale (Fixed, 10)
  const bool mx = cuda::has_chunk_operand(f);
  s->kind = mx ? cuda::GemmKind::FP8_VEC128 : cuda::GemmKind::BF16;
  s->alpha = f == cuda::QFormat::MXFP4 ? 1.0f / 9.0f
             : f == cuda::QFormat::NVFP4 ? float(1.0 / (10.0 * double(l.weight.global_scale)))
                                          : 1.0f;
  // Weight codes and scale codes -> the GEMM operand, prepared once on the device.
  at::Tensor sv = l.weight.scales.to(at::kCPU, at::kFloat).contiguous().reshape({s->R, -1});
  WUSH_CHECK(sv.size(1) == s->Cp / l.group, "%s: %lld scale columns, expected %lld", l.name.c_str(),
             (long long)sv.size(1), (long long)(s->Cp / l.group));
  at::Tensor sc = at::empty(sv.sizes(), at::kByte);
  const float* pv = sv.data_ptr<float>();
  uint8_t* pc = sc.data_ptr<uint8_t>();
  for (int64_t i = 0; i < sv.numel(); ++i) pc[i] = mx ? e8m0_code(pv[i], l.name) : e4m3_code(pv[i], l.name);
  at::Tensor codes = l.weight.codes.to(dev, at::kByte).contiguous();
  WUSH_CHECK(codes.numel() == s->R * s->Cp / 2, "%s: %lld weight code bytes, expected %lld", l.name.c_str(),
             (long long)codes.numel(), (long long)(s->R * s->Cp / 2));
  sc = sc.to(dev);
  const int64_t Np = cuda::operand_rows(s->R), nch = (s->Cp + 127) / 128;
  const auto opt = at::TensorOptions().device(dev);
  s->w_operand = at::empty({Np, s->Cp}, opt.dtype(mx ? at::kByte : at::kBFloat16));
  if (mx) s->w_chunk = at::empty({nch, Np}, opt.dtype(at::kFloat));
  const cuda::QuantConfig wcfg{f, l.weight.global_scale};
  check_cuda(cuda::prepare_weight_operand_cuda(codes.data_ptr<uint8_t>(), sc.data_ptr<uint8_t>(), s->R, s->Cp, wcfg,
                                               s->w_operand.data_ptr(), mx ? s->w_chunk.data_ptr<float>() : nullptr,
                                               nullptr, 0),
             l.name + ": weight operand");
  if (l.T.defined()) {
    s->T = l.T.to(dev, at::kFloat).contiguous();
    s->T_bf16 = at::equal(s->T, s->T.to(at::kBFloat16).to(at::kFloat));
  }
  if (l.bias.defined()) {
    s->bias = l.bias.to(dev, at::kFloat);
    s->bias_bf16 = s->bias.to(at::kBFloat16);
  }
  if (mx && w4a4_mode() == "row") {
    s->w_row = at::empty({Np, s->Cp}, opt.dtype(at::kByte));
    s->w_row_scales = at::empty({Np}, opt.dtype(at::kFloat));
    at::Tensor inexact = at::zeros({1}, opt.dtype(at::kLong));
    check_cuda(cuda::fold_rows_cuda(s->w_operand.data_ptr<uint8_t>(), s->w_chunk.data_ptr<float>(), s->R, s->Cp,
                                    s->w_row.data_ptr<uint8_t>(), s->w_row_scales.data_ptr<float>(),
                                    reinterpret_cast<unsigned long long*>(inexact.data_ptr<int64_t>()), 0),
               l.name + ": weight row fold");
    s->row = inexact.item<int64_t>() == 0;  // otherwise this layer keeps the exact VEC128 path
  }
  return s;
}

at::Tensor cuda_w4a4_forward(const QuantLinear& l, std::shared_ptr<CudaW4A4State>& state, const at::Tensor& x) {
  WUSH_CHECK(x.is_cuda(), "%s: the CUDA W4A4 path needs a CUDA input", l.name.c_str());
  WUSH_CHECK(x.size(-1) == l.in_features, "%s: input has %lld features, the layer expects %lld", l.name.c_str(),
             (long long)x.size(-1), (long long)l.in_features);
  if (!state || state->device != x.device()) state = build_state(l, x.device());
  const CudaW4A4State& s = *state;
  const bool mx = s.kind == cuda::GemmKind::FP8_VEC128;
  auto lead = x.sizes().vec();
  lead.pop_back();
  at::Tensor xb = x.reshape({-1, l.in_features});
  const int64_t n = xb.size(0);
  if (s.Cp != l.in_features) xb = at::constant_pad_nd(xb, {0, s.Cp - l.in_features});  // zero columns (§0)
  xb = xb.to(at::kBFloat16).contiguous();
  const int64_t Mp = cuda::operand_rows(n), nch = (s.Cp + 127) / 128;
  const auto opt = at::TensorOptions().device(x.device());
  at::Tensor a_op = at::empty({Mp, s.Cp}, opt.dtype(mx ? at::kByte : at::kBFloat16));
  at::Tensor a_chunk = mx ? at::empty({nch, Mp}, opt.dtype(at::kFloat)) : at::Tensor();
  at::Tensor& counters = device_counters(x.device());
  cuda::TransformSpec ts{};
  if (s.T.defined()) ts = {s.T.data_ptr<float>(), s.T.size(0), s.T_bf16};
  cuda::QuantizeOutputs qo{nullptr, nullptr, a_op.data_ptr(), mx ? a_chunk.data_ptr<float>() : nullptr,
                           reinterpret_cast<unsigned long long*>(counters.data_ptr<int64_t>())};
  check_cuda(cuda::fused_transform_quantize_cuda(reinterpret_cast<const __nv_bfloat16*>(xb.data_ptr()), n, s.Cp, ts,
                                                 s.act_cfg, qo, 0),
             l.name + ": transform + quantize");
  // bf16 in (a bf16 model): bf16 out, as the BF16 layer it replaces; otherwise fp32.
  const bool out_bf16 = x.scalar_type() == at::kBFloat16;
  const cuda::OutType ot = out_bf16 ? cuda::OutType::BF16 : cuda::OutType::FP32;
  const cuda::GemmKind kind = s.row ? cuda::GemmKind::FP8_ROWWISE : s.kind;
  cuda::GemmPlan* plan = cached_plan(kind, n, s.R, s.Cp, s.alpha, ot);
  at::Tensor y = at::empty({cuda::gemm_out_rows(kind, n), s.R}, opt.dtype(out_bf16 ? at::kBFloat16 : at::kFloat));
  if (s.row) {
    at::Tensor a_row = at::empty({Mp, s.Cp}, opt.dtype(at::kByte)), a_rs = at::empty({Mp}, opt.dtype(at::kFloat));
    check_cuda(cuda::fold_rows_cuda(a_op.data_ptr<uint8_t>(), a_chunk.data_ptr<float>(), n, s.Cp, a_row.data_ptr<uint8_t>(),
                                    a_rs.data_ptr<float>(),
                                    reinterpret_cast<unsigned long long*>(counters.data_ptr<int64_t>() + kInexactRows), 0),
               l.name + ": activation row fold");
    check_cuda(cuda::gemm_run(plan, a_row.data_ptr(), a_rs.data_ptr(), s.w_row.data_ptr(), s.w_row_scales.data_ptr(),
                              y.data_ptr(), 0),
               l.name + ": W4A4 row-wise GEMM");
  } else {
    check_cuda(cuda::gemm_run(plan, a_op.data_ptr(), mx ? a_chunk.data_ptr() : nullptr, s.w_operand.data_ptr(),
                              mx ? s.w_chunk.data_ptr() : nullptr, y.data_ptr(), 0),
               l.name + ": W4A4 GEMM");
  }
  ++g_calls;
  if (s.row) ++g_row_calls;
  y = y.narrow(0, 0, n);
  if (s.bias.defined()) y = y + (out_bf16 ? s.bias_bf16 : s.bias);
  lead.push_back(s.R);
  return y.reshape(lead);
}

CudaW4A4Stats cuda_w4a4_stats() {
  CudaW4A4Stats st;
  st.calls = g_calls;
  st.row_calls = g_row_calls;
  if (at::hasCUDA()) {
    at::Tensor c = device_counters(at::Device(at::kCUDA, 0)).cpu();
    st.span_exceeded_chunks = c[cuda::kSpanExceeded].item<int64_t>();
    st.scale_overflow_groups = c[cuda::kScaleOverflow].item<int64_t>();
    st.inexact_rows = c[kInexactRows].item<int64_t>();
  }
  return st;
}

#else  // no CUDA kernels in this build: the simulation runs everywhere

struct CudaW4A4State {};
bool cuda_w4a4_supported(const QuantLinear&) { return false; }
at::Tensor cuda_w4a4_forward(const QuantLinear& l, std::shared_ptr<CudaW4A4State>&, const at::Tensor&) {
  WUSH_FAIL("%s: this build has no CUDA kernel library (WUSH_CUDA=ON)", l.name.c_str());
}
CudaW4A4Stats cuda_w4a4_stats() { return {}; }

#endif

}  // namespace wush

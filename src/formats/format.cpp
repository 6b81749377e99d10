// The public entry points of the formats (format.h): input checks, the row/group layout with zero
// padding (REFERENCE.md Notation), the parallel split over groups, and the error messages. The
// per-format work is done by the kernels of the format's table row (format_table.cpp, kernels.h).
#include "formats/format.h"

#include <ATen/Parallel.h>

#include <algorithm>
#include <atomic>
#include <cfloat>
#include <limits>
#include <sstream>

#include "core/error.h"
#include "formats/format_ops.h"
#include "formats/nonfinite.h"

namespace wush {
namespace {

constexpr int64_t kNone = std::numeric_limits<int64_t>::max();

// Rows of K elements in groups of G (INT8: G = K), the last group zero-padded to Kp = ngr * G.
struct Layout {
  int64_t rows = 0, K = 0, G = 0, ngr = 0, Kp = 0;
};

Layout layout_of(at::IntArrayRef shape, const FormatTraits& t) {
  Layout L;
  L.K = shape.back();
  L.rows = 1;
  for (size_t i = 0; i + 1 < shape.size(); ++i) L.rows *= shape[i];
  L.G = t.group > 0 ? t.group : L.K;
  L.ngr = (L.K + L.G - 1) / L.G;
  L.Kp = L.ngr * L.G;
  return L;
}

std::string index_string(at::IntArrayRef shape, int64_t flat) {
  std::vector<int64_t> idx(shape.size());
  for (int64_t d = int64_t(shape.size()) - 1; d >= 0; --d) {
    idx[d] = shape[d] > 0 ? flat % shape[d] : 0;
    flat = shape[d] > 0 ? flat / shape[d] : 0;
  }
  std::ostringstream s;
  s << "[";
  for (size_t d = 0; d < idx.size(); ++d) s << (d ? ", " : "") << idx[d];
  s << "]";
  return s.str();
}

[[noreturn]] void throw_nonfinite(const char* what, const char* name, const at::Tensor& x,
                                  int64_t flat) {
  const double v = x.reshape({-1})[flat].item<double>();
  WUSH_FAIL("%s: tensor '%s' has %s at index %s (flat %lld); NaN/Inf cannot be quantized "
            "(REFERENCE.md §1)",
            what, name, std::isnan(v) ? "NaN" : (v > 0 ? "+Inf" : "-Inf"),
            index_string(x.sizes(), flat).c_str(), (long long)flat);
}

}  // namespace

void check_finite(const at::Tensor& x, const char* what, const char* name) {
  if (!x.defined() || x.numel() == 0 || at::isfinite(x).all().item<bool>()) return;
  const int64_t flat = at::logical_not(at::isfinite(x.reshape({-1}))).nonzero()[0][0].item<int64_t>();
  throw_nonfinite(what, name, x.contiguous(), flat);
}

namespace {

// fp32 / bf16 / fp16 as they are (contiguous); fp64 and others are converted to fp32.
at::Tensor prepare_input(const at::Tensor& x, const std::string& what, const char* name) {
  WUSH_CHECK(x.defined(), "%s: tensor '%s' is undefined", what.c_str(), name);
  WUSH_CHECK(x.device().is_cpu(), "%s: tensor '%s' is on %s; the CPU path needs a CPU tensor",
             what.c_str(), name, x.device().str().c_str());
  WUSH_CHECK(x.dim() >= 1 && x.size(-1) > 0,
             "%s: tensor '%s' needs at least one dimension and a non-empty last dimension, got %s",
             what.c_str(), name, index_string(x.sizes(), 0).c_str());
  WUSH_CHECK(x.is_floating_point(), "%s: tensor '%s' has dtype %s; expected a floating type",
             what.c_str(), name, std::string(c10::toString(x.scalar_type())).c_str());
  const auto t = x.scalar_type();
  if (t == at::kFloat || t == at::kBFloat16 || t == at::kHalf) return x.contiguous();
  return x.to(at::kFloat).contiguous();
}

kernels::InType in_type(const at::Tensor& x) {
  switch (x.scalar_type()) {
    case at::kBFloat16: return kernels::InType::BF16;
    case at::kHalf: return kernels::InType::F16;
    default: return kernels::InType::F32;
  }
}

std::vector<int64_t> with_last(at::IntArrayRef shape, int64_t last) {
  std::vector<int64_t> s(shape.begin(), shape.end());
  s.back() = last;
  return s;
}

std::string what_of(const char* fn, Format f) { return std::string(fn) + "(" + format_name(f) + ")"; }

void run_groups(FormatOps::RangeFn fn, const kernels::Job& j, int64_t ngroups) {
  const int64_t grain = std::max<int64_t>(1, 16384 / std::max<int64_t>(j.G, 1));
  at::parallel_for(0, ngroups, grain, [&](int64_t a, int64_t b) { fn(j, a, b); });
}

template <class Fn> void run_rows(int64_t rows, int64_t n, Fn fn) {
  const int64_t grain = std::max<int64_t>(1, 16384 / std::max<int64_t>(n, 1));
  at::parallel_for(0, rows, grain, fn);
}

}  // namespace

float global_scale_for(const at::Tensor& x, Format f, const QuantOptions& opt) {
  if (f != Format::NVFP4) return 1.0f;
  if (opt.global_mode == GlobalScaleMode::Fixed) {
    WUSH_CHECK(opt.nvfp4_global > 0 && std::isfinite(opt.nvfp4_global),
               "nvfp4: global scale g = %g must be finite and > 0", opt.nvfp4_global);
    return opt.nvfp4_global;
  }
  check_finite(x, "global_scale_for(nvfp4)", opt.tensor_name);
  const double amax = x.numel() ? at::abs(x).max().item<double>() : 0.0;
  if (!(amax > 0)) return 1.0f;
  // g = 448 * 6 / amax (NVIDIA recipe), rounded down so that the largest group scale g amax / 6 is
  // at most 448: no false overflow report from the rounding of g.
  float g = float(std::min(448.0 * 6.0 / amax, double(FLT_MAX)));
  while (double(g) * amax / 6.0 > 448.0) g = prev_float(g);
  return g;
}

namespace {

// quantize (scales computed) and encode_with_scales (scales given): one driver.
QuantizedTensor quantize_impl(const at::Tensor& x_, Format f, const QuantOptions& opt,
                              const at::Tensor* given, float given_g, const char* fn) {
  const std::string what = what_of(fn, f);
  WUSH_CHECK(f != Format::None, "%s: format 'none' has no codes (use fake_quantize)", fn);
  const FormatOps& ops = format_ops(f);
  const at::Tensor x = prepare_input(x_, what, opt.tensor_name);
  const Layout L = layout_of(x.sizes(), ops.traits);
  const int bits = ops.traits.bits;
  const float g = given ? given_g : global_scale_for(x, f, opt);
  WUSH_CHECK(g > 0 && std::isfinite(g), "%s: global scale %g must be finite and > 0", what.c_str(),
             double(g));

  QuantizedTensor q;
  q.format = f;
  q.shape = x.sizes().vec();
  q.pad = L.Kp - L.K;
  q.global_scale = g;
  q.codes = at::empty(with_last(x.sizes(), L.Kp * bits / 8), at::kByte);
  if (given) {
    WUSH_CHECK(given->defined() && given->numel() == L.rows * L.ngr,
               "%s: scales must have %lld x %lld elements (rows x groups of %lld), got %lld",
               what.c_str(), (long long)L.rows, (long long)L.ngr, (long long)L.G,
               (long long)(given->defined() ? given->numel() : 0));
    q.scales = given->to(at::kFloat).cpu().contiguous().clone().reshape(with_last(x.sizes(), L.ngr));
  } else {
    q.scales = at::empty(with_last(x.sizes(), L.ngr), at::kFloat);
  }

  std::atomic<int64_t> bad{kNone}, bad_scale{kNone}, overflow{0};
  kernels::Job j;
  j.x = x.data_ptr();
  j.in = in_type(x);
  j.codes = q.codes.data_ptr<uint8_t>();
  j.scales = q.scales.data_ptr<float>();
  j.K = L.K, j.G = L.G, j.ngr = L.ngr, j.bits = bits, j.g = g;
  j.first_bad = &bad, j.bad_scale = &bad_scale, j.overflow = &overflow;
  run_groups(given ? ops.encode : ops.quantize, j, L.rows * L.ngr);
  if (bad.load() != kNone) throw_nonfinite(what.c_str(), opt.tensor_name, x, bad.load());
  if (bad_scale.load() != kNone)
    WUSH_FAIL("%s: group %lld has scale %g, not a valid %s scale", what.c_str(),
              (long long)bad_scale.load(), double(j.scales[bad_scale.load()]), ops.traits.name);
  q.overflow_groups = overflow.load();
  return q;
}

}  // namespace

QuantizedTensor quantize(const at::Tensor& x, Format f, const QuantOptions& opt) {
  return quantize_impl(x, f, opt, nullptr, 0, "quantize");
}

QuantizedTensor encode_with_scales(const at::Tensor& x, const at::Tensor& scales, Format f,
                                   float global_scale, const QuantOptions& opt) {
  return quantize_impl(x, f, opt, &scales, global_scale, "encode_with_scales");
}

at::Tensor dequantize(const QuantizedTensor& q) {
  const std::string what = what_of("dequantize", q.format);
  WUSH_CHECK(q.format != Format::None, "dequantize: the tensor has format 'none'");
  const FormatOps& ops = format_ops(q.format);
  WUSH_CHECK(!q.shape.empty() && q.shape.back() > 0, "%s: empty or 0-d shape", what.c_str());
  const Layout L = layout_of(q.shape, ops.traits);
  const int bits = ops.traits.bits;
  WUSH_CHECK(q.pad == L.Kp - L.K, "%s: pad %lld does not match last dim %lld with group %lld",
             what.c_str(), (long long)q.pad, (long long)L.K, (long long)L.G);
  WUSH_CHECK(q.codes.defined() && q.codes.scalar_type() == at::kByte &&
                 q.codes.numel() == L.rows * L.Kp * bits / 8,
             "%s: codes must be uint8 with %lld elements", what.c_str(),
             (long long)(L.rows * L.Kp * bits / 8));
  WUSH_CHECK(q.scales.defined() && q.scales.scalar_type() == at::kFloat &&
                 q.scales.numel() == L.rows * L.ngr,
             "%s: scales must be float32 with %lld elements", what.c_str(),
             (long long)(L.rows * L.ngr));
  const at::Tensor codes = q.codes.cpu().contiguous(), scales = q.scales.cpu().contiguous();
  at::Tensor y = at::empty(q.shape, at::kFloat);

  std::atomic<int64_t> bad{kNone}, bad_scale{kNone}, overflow{0};
  kernels::Job j;
  j.codes = const_cast<uint8_t*>(codes.data_ptr<uint8_t>());
  j.scales = const_cast<float*>(scales.data_ptr<float>());
  j.y = y.data_ptr<float>();
  j.K = L.K, j.G = L.G, j.ngr = L.ngr, j.bits = bits, j.g = q.global_scale;
  j.first_bad = &bad, j.bad_scale = &bad_scale, j.overflow = &overflow;
  run_groups(ops.dequantize, j, L.rows * L.ngr);
  if (bad_scale.load() != kNone)
    WUSH_FAIL("%s: group %lld has scale %g, not a valid %s scale", what.c_str(),
              (long long)bad_scale.load(), double(j.scales[bad_scale.load()]), ops.traits.name);
  return y;
}

at::Tensor fake_quantize(const at::Tensor& x_, Format f, const QuantOptions& opt,
                         int64_t* overflow_groups) {
  const std::string what = what_of("fake_quantize", f);
  const FormatOps& ops = format_ops(f);
  const at::Tensor x = prepare_input(x_, what, opt.tensor_name);
  if (overflow_groups) *overflow_groups = 0;
  if (f == Format::None) return x.to(at::kFloat, false, /*copy=*/true);
  const Layout L = layout_of(x.sizes(), ops.traits);
  at::Tensor y = at::empty(x.sizes(), at::kFloat);

  std::atomic<int64_t> bad{kNone}, bad_scale{kNone}, overflow{0};
  kernels::Job j;
  j.x = x.data_ptr();
  j.in = in_type(x);
  j.y = y.data_ptr<float>();
  j.K = L.K, j.G = L.G, j.ngr = L.ngr, j.bits = ops.traits.bits;
  j.g = global_scale_for(x, f, opt);
  j.first_bad = &bad, j.bad_scale = &bad_scale, j.overflow = &overflow;
  run_groups(ops.fake, j, L.rows * L.ngr);
  if (bad.load() != kNone) throw_nonfinite(what.c_str(), opt.tensor_name, x, bad.load());
  if (overflow_groups) *overflow_groups = overflow.load();
  return y;
}

at::Tensor fake_quantize(const at::Tensor& x, Format f, const QuantOptions& opt) {
  return fake_quantize(x, f, opt, nullptr);
}

at::Tensor group_scales(const at::Tensor& x_, Format f, float global_scale) {
  const std::string what = what_of("group_scales", f);
  WUSH_CHECK(f != Format::None, "group_scales: format 'none' has no scales");
  const FormatOps& ops = format_ops(f);
  WUSH_CHECK(x_.defined() && x_.dim() == 2 && x_.size(1) > 0,
             "%s: x must be [R, G] (one group per row)", what.c_str());
  WUSH_CHECK(ops.traits.group == 0 || x_.size(1) == ops.traits.group,
             "%s: x has %lld columns; one group of %s has %d", what.c_str(),
             (long long)x_.size(1), ops.traits.name, ops.traits.group);
  WUSH_CHECK(x_.scalar_type() == at::kFloat || x_.scalar_type() == at::kDouble,
             "%s: x must be float32 or float64", what.c_str());
  WUSH_CHECK(global_scale > 0 && std::isfinite(global_scale), "%s: global scale %g must be > 0",
             what.c_str(), global_scale);
  const at::Tensor x = x_.cpu().contiguous();
  const int64_t R = x.size(0), n = x.size(1);
  at::Tensor out = at::empty({R}, at::kFloat);
  std::atomic<int64_t> bad{kNone}, bad_scale{kNone}, overflow{0};
  kernels::Job j;
  j.first_bad = &bad, j.bad_scale = &bad_scale, j.overflow = &overflow;
  float* o = out.data_ptr<float>();
  const bool f64 = x.scalar_type() == at::kDouble;
  run_rows(R, n, [&](int64_t a, int64_t b) {
    if (f64) ops.group_scales_f64(x.data_ptr<double>(), n, global_scale, o, j, a, b);
    else ops.group_scales_f32(x.data_ptr<float>(), n, global_scale, o, j, a, b);
  });
  if (bad.load() != kNone) throw_nonfinite(what.c_str(), "x", x, bad.load());
  return out;
}

at::Tensor quantize_with_scales(const at::Tensor& x_, const at::Tensor& scales_, Format f,
                                float global_scale) {
  const std::string what = what_of("quantize_with_scales", f);
  WUSH_CHECK(f != Format::None, "quantize_with_scales: format 'none' has no scales");
  const FormatOps& ops = format_ops(f);
  WUSH_CHECK(x_.defined() && (x_.dim() == 1 || x_.dim() == 2), "%s: x must be [R] or [R, n]",
             what.c_str());
  WUSH_CHECK(x_.scalar_type() == at::kFloat || x_.scalar_type() == at::kDouble,
             "%s: x must be float32 or float64", what.c_str());
  const int64_t R = x_.size(0), n = x_.dim() == 2 ? x_.size(1) : 1;
  WUSH_CHECK(scales_.defined() && scales_.scalar_type() == at::kFloat && scales_.numel() == R,
             "%s: scales must be float32 [%lld] (one per row of x)", what.c_str(), (long long)R);
  WUSH_CHECK(global_scale > 0 && std::isfinite(global_scale), "%s: global scale %g must be > 0",
             what.c_str(), global_scale);
  const at::Tensor x = x_.cpu().contiguous(), scales = scales_.cpu().contiguous();
  at::Tensor y = at::empty_like(x);
  std::atomic<int64_t> bad{kNone}, bad_scale{kNone}, overflow{0};
  kernels::Job j;
  j.first_bad = &bad, j.bad_scale = &bad_scale, j.overflow = &overflow;
  const float* s = scales.data_ptr<float>();
  const bool f64 = x.scalar_type() == at::kDouble;
  run_rows(R, n, [&](int64_t a, int64_t b) {
    if (f64)
      ops.with_scales_f64(x.data_ptr<double>(), y.data_ptr<double>(), n, s, global_scale, j, a, b);
    else
      ops.with_scales_f32(x.data_ptr<float>(), y.data_ptr<float>(), n, s, global_scale, j, a, b);
  });
  if (bad_scale.load() != kNone)
    WUSH_FAIL("%s: row %lld has scale %g, not a valid %s scale", what.c_str(),
              (long long)bad_scale.load(), double(s[bad_scale.load()]), ops.traits.name);
  if (bad.load() != kNone) throw_nonfinite(what.c_str(), "x", x, bad.load());
  return y;
}

}  // namespace wush

#include "pipeline/quant_linear.h"

#include <cstdlib>
#include <cstring>

#include "core/error.h"
#include "formats/aten_nvfp4.h"
#include "pipeline/quant_linear_cuda.h"
#include "latmix/mx_ste.h"

namespace wush {

float checkpoint_weight_global(Format f, float g) {
  switch (f) {
    case Format::MXFP4: return 1.0f / 3.0f;
    case Format::NVFP4: return 1.0f / g;
    default: return 1.0f;
  }
}

at::Tensor decode_checkpoint_weight(const QuantizedTensor& w, float wg) {
  if (traits(w.format).elem != Elem::E2M1) return dequantize(w);  // no global scale (loader checks 1)
  static const float kE2M1[16] = {0, 0.5, 1, 1.5, 2, 3, 4, 6, -0.0f, -0.5, -1, -1.5, -2, -3, -4, -6};
  at::Tensor lut = at::from_blob(const_cast<float*>(kE2M1), {16}, at::kFloat);
  at::Tensor c = w.codes.to(at::kLong);
  at::Tensor nib = at::stack({c.bitwise_and(15), c.bitwise_right_shift(4)}, -1).flatten(-2);  // low nibble first
  at::Tensor s = w.scales.to(at::kFloat);
  const int64_t G = nib.size(-1) / s.size(-1);
  at::Tensor v = lut.index({nib}) * s.repeat_interleave(G, -1);  // exact: 2 x 4 significant bits
  v = v * wg;                                                      // the one rounding of the decode
  if (w.pad > 0) v = v.narrow(-1, 0, v.size(-1) - w.pad);
  return v.reshape(w.shape).contiguous();
}

at::Tensor apply_block_transform(const at::Tensor& x, const at::Tensor& T, int64_t G) {
  const int64_t C = x.size(-1), Cp = (C + G - 1) / G * G;
  at::Tensor xs = x.to(at::kFloat);
  if (Cp != C) xs = at::constant_pad_nd(xs, {0, Cp - C});
  if (!T.defined()) return xs.contiguous();
  const int64_t nb = Cp / G;
  WUSH_CHECK(T.dim() == 3 && T.size(1) == G && T.size(2) == G && (T.size(0) == nb || T.size(0) == 1),
             "block transform: expected [%lld, %lld, %lld] (or one shared block), got %s", (long long)nb,
             (long long)G, (long long)G, c10::str(T.sizes()).c_str());
  auto lead = xs.sizes().vec();
  at::Tensor xb = xs.reshape({-1, nb, G}).transpose(0, 1);            // [nb, n, G]
  at::Tensor Tt = T.to(xs.device(), at::kFloat).transpose(1, 2).expand({nb, G, G});  // x~_j = x_j T_j^T (row form)
  at::Tensor y = at::bmm(xb, Tt).transpose(0, 1).reshape(lead);
  return y.contiguous();
}

at::Tensor QuantLinear::transform_acts(const at::Tensor& x) const {
  WUSH_CHECK(x.size(-1) == in_features, "%s: input has %lld features, the layer expects %lld", name.c_str(),
             (long long)x.size(-1), (long long)in_features);
  at::Tensor xt = apply_block_transform(x, T, group);
  if (quantize_acts && format != Format::None) {
    QuantOptions o;
    o.tensor_name = name.c_str();
    // The format codecs run on the CPU (src/formats). On another device, MXFP4/MXINT4/NVFP4 use
    // the ATen form of the same rules (latmix/mx_ste.h, formats/aten_nvfp4.h, tested bit-equal to
    // the codecs); the other formats make a round trip through the CPU.
    if (xt.device().is_cpu())
      xt = fake_quantize(xt, format, o);
    else if (format == Format::MXFP4 || format == Format::MXINT4)
      xt = latmix::mx_fake_quant(xt, format, group);
    else if (format == Format::NVFP4 && o.global_mode == GlobalScaleMode::Fixed)
      xt = nvfp4_fake_quant_aten(xt, o.nvfp4_global);
    else
      xt = fake_quantize(xt.cpu(), format, o).to(xt.device());
  }
  return xt;
}

at::Tensor QuantLinear::forward(const at::Tensor& x) const {
  if (x.is_cuda() && cuda_w4a4_supported(*this)) return cuda_w4a4_forward(*this, cuda_state, x);
  WUSH_CHECK(dense.defined(), "%s: quantized layer has no weights (call refresh_dense)", name.c_str());
  // WUSH_W4A4=sim-bf16: simulate exactly what the real kernels compute, whose input is bf16.
  const char* mode = std::getenv("WUSH_W4A4");
  const bool bf16_in = mode && std::strcmp(mode, "sim-bf16") == 0 && format != Format::None && quantize_acts;
  at::Tensor xt = transform_acts(bf16_in ? x.to(at::kBFloat16) : x);
  at::Tensor w = dense;
  if (drop_pad && padded_in() != in_features) {
    xt = xt.narrow(-1, 0, in_features);
    w = w.narrow(1, 0, in_features);
  }
  return at::linear(xt, w.to(xt.device()), bias.defined() ? bias.to(xt.device(), at::kFloat) : at::Tensor());
}

float QuantLinear::decode_global() const {
  return weight_global > 0 ? weight_global : checkpoint_weight_global(format, weight.global_scale);
}

void QuantLinear::refresh_dense() {
  cuda_state.reset();
  if (format == Format::None) {
    WUSH_CHECK(dense.defined(), "%s: unquantized layer without weights", name.c_str());
    return;
  }
  dense = decode_checkpoint_weight(weight, decode_global());
}

}  // namespace wush

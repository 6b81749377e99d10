#include "pipeline/quant_linear.h"

#include "core/error.h"
#include "latmix/mx_ste.h"

namespace wush {

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
    // The format codecs run on the CPU (src/formats). On another device, MXFP4/MXINT4 use the ATen
    // form of the same rules (latmix/mx_ste.h, tested bit-equal to the codecs); the other formats
    // make a round trip through the CPU.
    if (xt.device().is_cpu())
      xt = fake_quantize(xt, format, o);
    else if (latmix::ste_supports(format))
      xt = latmix::mx_fake_quant(xt, format, group);
    else
      xt = fake_quantize(xt.cpu(), format, o).to(xt.device());
  }
  return xt;
}

at::Tensor QuantLinear::forward(const at::Tensor& x) const {
  WUSH_CHECK(dense.defined(), "%s: quantized layer has no weights (call refresh_dense)", name.c_str());
  at::Tensor xt = transform_acts(x);
  at::Tensor w = dense;
  if (drop_pad && padded_in() != in_features) {
    xt = xt.narrow(-1, 0, in_features);
    w = w.narrow(1, 0, in_features);
  }
  return at::linear(xt, w.to(xt.device()), bias.defined() ? bias.to(xt.device(), at::kFloat) : at::Tensor());
}

void QuantLinear::refresh_dense() {
  if (format == Format::None) {
    WUSH_CHECK(dense.defined(), "%s: unquantized layer without weights", name.c_str());
    return;
  }
  dense = dequantize(weight);
}

}  // namespace wush

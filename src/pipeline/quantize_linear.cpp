#include "pipeline/quantize_linear.h"

#include "core/error.h"
#include "formats/nonfinite.h"
#include "quant/calib_stats.h"
#include "quant/gptq.h"
#include "quant/gptq_wush.h"
#include "transforms/block_linalg.h"
#include "transforms/transform_registry.h"
#include "transforms/wush_block.h"
#include "transforms/wush_search_transform.h"

namespace wush {

int64_t recipe_group(const Recipe& r) {
  if (r.format == Format::None) return 32;
  int g = traits(r.format).group;
  WUSH_CHECK(g > 0, "format %s quantizes whole rows; W4A4 recipes need a grouped format", traits(r.format).name);
  return g;
}

// H~ = Tb H Tb^T for the block-diagonal Tb of T [nb, G, G] (H already padded to nb*G).
static at::Tensor transform_hessian(const at::Tensor& H, const at::Tensor& T) {
  const int64_t nb = T.size(0), G = T.size(1);
  at::Tensor H4 = H.reshape({nb, G, nb, G});
  at::Tensor Ht = at::einsum("iab,ibjc,jdc->iajd", {T, H4, T}).reshape({nb * G, nb * G});
  return (Ht + Ht.t()) / 2;
}

QuantLinear quantize_linear(const LinearQuantInput& in, const Recipe& r) {
  WUSH_CHECK(!is_latmix(r.transform),
             "%s: %s transforms the whole model, not one linear (quantize_model folds it; linear_recipe)",
             in.name.c_str(), r.transform.c_str());
  const int64_t G = recipe_group(r);
  WUSH_CHECK(in.W.dim() == 2, "%s: weight must be 2-D", in.name.c_str());
  // Before any transform fit: NaN/Inf would otherwise surface as a failed factorization.
  check_finite(in.W, "quantize_linear", (in.name + ".weight").c_str());
  check_finite(in.bias, "quantize_linear", (in.name + ".bias").c_str());
  const int64_t R = in.W.size(0), C = in.W.size(1), Cp = (C + G - 1) / G * G;
  at::Tensor W = in.W.to(at::kDouble);
  const bool gptq_mode = r.weights == WeightMethod::GPTQ && r.format != Format::None;
  WUSH_CHECK(!gptq_mode || in.stats, "%s: GPTQ needs calibration statistics (--calib)", in.name.c_str());
  at::Tensor H = in.stats ? in.stats->H().to(at::kCPU, at::kDouble) : at::Tensor();

  QuantLinear q;
  q.name = in.name;
  q.format = r.format;
  q.quantize_acts = r.quantize_acts;
  q.transform = r.transform;
  q.group = G;
  q.in_features = C;
  q.bias = in.bias.defined() ? in.bias.to(at::kFloat) : at::Tensor();
  q.drop_pad = r.transform == "identity" || r.transform == "smoothquant";

  at::Tensor Wt;       // transformed weights [R, Cp] fp64 (dequantized after GPTQ)
  at::Tensor scales;   // GPTQ's fixed group scales [R, Cp/G]
  // NVFP4 global scale: the default fixed rule (g = 10, REFERENCE §1), independent of the tensor.
  const float g = r.format == Format::None ? 1.0f : global_scale_for(at::zeros({1}), r.format);
  if (gptq_mode && (r.transform == "wush" || r.transform == "wush-local")) {
    WUSH_CHECK(R >= G, "%s: %lld output rows < group %lld: WUSH's SVD needs R >= G (use hadamard here)",
               in.name.c_str(), (long long)R, (long long)G);
    at::Tensor Wp = pad_last(W, Cp), Hp = pad_second_moment(H, Cp);
    FormatQuantizer fq(r.format, g);
    GptqWushResult res;
    WushBlockOptions bo;
    bo.damp = in.transform_damp;
    bo.round_bf16 = in.round_bf16;
    if (r.transform == "wush") {
      auto fit = [&](const at::Tensor& U, const at::Tensor& Y) { return wush_block(U, Y, bo, in.name); };
      res = gptq_wush_babai(Wp, Hp, fq, fit);
    } else {
      auto fit = [&](const at::Tensor& Wj, const at::Tensor& Hjj) {
        return wush_local_block(Wj.t().matmul(Wj) / double(Wj.size(0)), Hjj, bo, in.name);
      };
      res = gptq_wush_local(Wp, Hp, fq, fit);
    }
    Wt = res.wq;
    scales = res.scales;
    q.T = res.T.to(at::kFloat);
  } else {
    auto tr = make_transform(r.transform);
    FitInput fi;
    fi.H = H;
    fi.W = W;
    fi.x_absmax = in.stats ? in.stats->absmax().to(at::kCPU) : at::Tensor();
    fi.channels = C;
    fi.group = G;
    fi.seed = in.seed;
    fi.layer = in.name;
    fi.damp = in.transform_damp;
    fi.round_bf16 = in.round_bf16;
    if (auto* ws = dynamic_cast<WushSearchTransform*>(tr.get())) ws->set_format(r.format);
    tr->fit(fi);
    Wt = tr->weight_side(W);
    if (r.transform != "identity") q.T = tr->blocks().to(at::kFloat);
    if (gptq_mode) {
      at::Tensor Hp = pad_second_moment(H, Cp);
      at::Tensor Ht = q.T.defined() ? transform_hessian(Hp, tr->blocks()) : Hp;
      auto res = gptq(Wt, Ht, FormatQuantizer(r.format, g));
      Wt = res.wq;
      scales = res.scales;
    }
  }
  if (r.format == Format::None) {
    q.dense = Wt.to(at::kFloat);
    return q;
  }
  QuantOptions qo;
  qo.tensor_name = in.name.c_str();
  if (scales.defined())
    q.weight = encode_with_scales(Wt.to(at::kFloat), scales.to(at::kFloat), r.format, g, qo);
  else
    q.weight = quantize(Wt.to(at::kFloat), r.format, qo);
  q.refresh_dense();
  return q;
}

double layer_loss(const QuantLinear& q, const at::Tensor& W, const at::Tensor& bias, const at::Tensor& X) {
  const auto f64 = at::TensorOptions().dtype(at::kDouble).device(X.device());  // X may live on CUDA
  at::Tensor Y = at::linear(X.to(at::kDouble), W.to(f64), bias.defined() ? bias.to(f64) : at::Tensor());
  at::Tensor Yq = q.forward(X).to(at::kDouble);
  return (Y - Yq).pow(2).sum().item<double>() / double(Y.numel());
}

}  // namespace wush

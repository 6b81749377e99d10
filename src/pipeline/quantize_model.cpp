#include "pipeline/quantize_model.h"

#include <chrono>
#include <optional>

#include "core/error.h"
#include "core/progress.h"
#include "latmix/fold.h"
#include "pipeline/quantize_linear.h"
#include "quant/calib_stats.h"

namespace wush {

ForwardHooks QuantizedModel::hooks() const {
  ForwardHooks h;
  h.linear = [lin = linears](const std::string& name, const at::Tensor& x) -> at::Tensor {
    auto it = lin->find(name);
    if (it == lin->end()) return at::Tensor();
    return it->second.forward(x).to(x.scalar_type());
  };
  if (latmix) {
    latmix::LatmixOnline on;
    on.t1 = latmix->t1;
    on.eps = base.config.rms_norm_eps;
    on.hadamard_group = latmix->group;
    h.norm = on.norm_hook();
  }
  return h;
}

Transformer QuantizedModel::transformer(at::Device dev, at::ScalarType dtype) const {
  for (auto& [name, q] : *linears) {  // the simulated layers live where the model runs
    if (q.dense.defined()) q.dense = q.dense.to(dev);
    if (q.T.defined()) q.T = q.T.to(dev);
    if (q.bias.defined()) q.bias = q.bias.to(dev);
  }
  Transformer t(base, dev, dtype, /*external_linears=*/true);
  t.set_default_hooks(hooks());
  return t;
}

const LayerStats& BlockStats::of(const std::string& linear) const {
  auto it = alias.find(linear);
  return stats.at(it == alias.end() ? linear : it->second);
}

BlockStats collect_block_stats(Transformer& tf, int64_t layer, const std::vector<at::Tensor>& h,
                               ForwardHooks hk) {
  BlockStats bs;
  // Holding the last input alive matters: a freed tensor's address can be reused by the next
  // input (o_proj's input, then gate/up's), which would then be mistaken for the same activation.
  at::Tensor last;
  std::string last_name;
  hk.on_linear_input = [&](const std::string& name, const at::Tensor& x) {
    if (last.defined() && x.is_same(last)) {
      bs.alias[name] = last_name;
      return;
    }
    last = x;
    last_name = name;
    bs.stats.add(name, x);
  };
  for (const auto& hb : h) {
    last = at::Tensor();
    tf.block(layer, hb, &hk);
  }
  return bs;
}

static bool needs_calibration(const Recipe& r) {
  return r.weights == WeightMethod::GPTQ || !(r.transform == "identity" || r.transform == "hadamard" ||
                                             r.transform == "random" || is_latmix(r.transform));
}

// LATMiX: the folded model (REFERENCE §5) that the pipeline quantizes instead of `m`.
static std::optional<Model> latmix_folded(const Model& m, const QuantizeOptions& opt) {
  const Recipe& r = opt.recipe;
  if (!is_latmix(r.transform)) {
    WUSH_CHECK(!opt.latmix, "recipe %s: LATMiX transforms were given, but the transform is not latmix-lu/latmix-qr",
               r.to_string().c_str());
    return std::nullopt;
  }
  WUSH_CHECK(opt.latmix, "recipe %s needs trained LATMiX transforms (wush quantize trains them, or --latmix DIR)",
             r.to_string().c_str());
  const latmix::LatmixTransforms& t = *opt.latmix;
  WUSH_CHECK(r.transform == "latmix-" + latmix::param_name(t.kind),
             "recipe %s: the LATMiX transforms given are latmix-%s", r.to_string().c_str(),
             latmix::param_name(t.kind).c_str());
  WUSH_CHECK(t.group == recipe_group(r), "recipe %s: the LATMiX transforms were made for group %lld, the format's is %lld",
             r.to_string().c_str(), (long long)t.group, (long long)recipe_group(r));
  return latmix::apply_latmix(m, t).model;
}

QuantizedModel quantize_model(const Model& original, const at::Tensor& tokens, const QuantizeOptions& opt,
                              QuantizeReport* report) {
  const Recipe& r = opt.recipe;
  const bool calib = needs_calibration(r);
  WUSH_CHECK(!calib || tokens.defined(), "recipe %s needs calibration text (--calib FILE)", r.to_string().c_str());
  auto t0 = std::chrono::steady_clock::now();
  const std::optional<Model> folded = latmix_folded(original, opt);
  const Model& m = folded ? *folded : original;
  QuantizedModel qm;
  qm.base = m;
  qm.recipe = r;
  if (opt.latmix) qm.latmix = std::make_shared<latmix::LatmixTransforms>(opt.latmix->detached().to(at::kCPU, at::kFloat));
  const ForwardHooks online = qm.hooks();  // LATMiX's online norm (no linear override yet: none quantized)
  Transformer tf(m, opt.device, at::kFloat);
  const int64_t L = m.config.num_layers;

  // Hidden states of every calibration window, kept between blocks.
  std::vector<at::Tensor> h;
  if (tokens.defined())
    for (int64_t b = 0; b < tokens.size(0); b += opt.batch)
      h.push_back(tf.embed(tokens.slice(0, b, std::min(b + opt.batch, tokens.size(0))).to(opt.device)));

  Progress bar("quantize " + r.to_string(), L, "blocks");
  for (int64_t layer = 0; layer < L; ++layer) {
    BlockStats bs;
    if (calib) bs = collect_block_stats(tf, layer, h, online);
    for (int i = 0; i < 7; ++i) {
      auto ti = std::chrono::steady_clock::now();
      std::string p = linear_prefix(layer, i);
      LinearQuantInput in;
      in.name = p;
      in.W = m.weight(p + ".weight");
      if (m.has(p + ".bias")) in.bias = m.weight(p + ".bias");
      in.stats = calib ? &bs.of(p) : nullptr;
      in.seed = opt.seed * 1000003ull + uint64_t(layer * 7 + i);
      in.transform_damp = opt.transform_damp;
      in.round_bf16 = opt.round_bf16;
      qm.linears->emplace(p, quantize_linear(in, linear_recipe(r, i)));
      double secs = std::chrono::duration<double>(std::chrono::steady_clock::now() - ti).count();
      if (report) report->layers.push_back({{"name", p}, {"seconds", secs}});
    }
    // Recompute the block's outputs with the quantized layers for the next block; on the way,
    // each linear's own loss ||x W^T - Q(x)||^2 / numel on its (already quantized-upstream) inputs.
    if (!h.empty() && (layer + 1 < L || report)) {
      std::map<std::string, std::pair<double, double>> loss;  // name -> (sum sq, numel)
      ForwardHooks qh = qm.hooks();
      ForwardHooks lh;
      lh.norm = qh.norm;
      lh.linear = [&](const std::string& name, const at::Tensor& x) -> at::Tensor {
        at::Tensor y = qh.linear(name, x);
        if (report) {
          at::Tensor ref = at::linear(x, tf.weight(name + ".weight"),
                                      tf.has_weight(name + ".bias") ? tf.weight(name + ".bias") : at::Tensor());
          auto& acc = loss[name];
          acc.first += (ref.to(at::kDouble) - y.to(at::kDouble)).pow(2).sum().item<double>();
          acc.second += double(y.numel());
        }
        return y;
      };
      for (auto& hb : h) hb = tf.block(layer, hb, &lh);
      if (report)
        for (auto& e : report->layers)
          if (loss.count(e["name"].get<std::string>())) {
            auto& acc = loss[e["name"].get<std::string>()];
            e["loss"] = acc.first / acc.second;
          }
    }
    bar.update(layer + 1);
  }
  bar.finish();
  for (auto& [p, q] : *qm.linears) {
    qm.base.weights.erase(p + ".weight");
    qm.base.weights.erase(p + ".bias");
  }
  if (report) report->seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  return qm;
}

}  // namespace wush

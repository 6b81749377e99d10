#include "latmix/fold.h"

#include <c10/core/GradMode.h>
#include <mutex>

#include "core/error.h"
#include "latmix/mx_ste.h"
#include "transforms/hadamard.h"

namespace wush::latmix {

namespace {

struct Dims {
  int64_t H, L, nh, nkv, hd;
};

Dims dims_of(const ModelConfig& c) {
  Dims d;
  d.H = c.hidden_size;
  d.L = c.num_layers;
  d.nh = c.num_heads;
  d.nkv = c.num_kv_heads > 0 ? c.num_kv_heads : c.num_heads;
  d.hd = c.head_dim > 0 ? c.head_dim : c.hidden_size / c.num_heads;
  return d;
}

std::string lname(int64_t l, const char* suffix) { return "model.layers." + std::to_string(l) + "." + suffix; }

const at::Tensor& get(const std::map<std::string, at::Tensor>& w, const std::string& name) {
  auto it = w.find(name);
  WUSH_CHECK(it != w.end(), "latmix: the model has no tensor '%s'", name.c_str());
  return it->second;
}

bool ends_with(const std::string& s, const std::string& suffix) {
  return s.size() >= suffix.size() && s.compare(s.size() - suffix.size(), suffix.size(), suffix) == 0;
}

void check_shapes(const Dims& d, const LatmixTransforms& t) {
  WUSH_CHECK(t.t1.n() == d.H, "latmix: t1 has size %lld, the model's hidden size is %lld", (long long)t.t1.n(),
             (long long)d.H);
  WUSH_CHECK(int64_t(t.t2.size()) == d.L, "latmix: %zu t2 transforms for a model of %lld layers", t.t2.size(),
             (long long)d.L);
  for (const AffineTransform& a : t.t2)
    WUSH_CHECK(a.n() == d.hd, "latmix: a t2 transform has size %lld, the model's head_dim is %lld", (long long)a.n(),
               (long long)d.hd);
}

}  // namespace

std::map<std::string, at::Tensor> base_weights(const Model& m, at::Device dev, at::ScalarType s) {
  std::map<std::string, at::Tensor> w;
  for (const auto& [name, t] : m.weights) w[name] = t.to(dev, s);
  const std::string emb = "model.embed_tokens.weight", lm = "lm_head.weight";
  if (!w.count(emb) && w.count(lm)) w[emb] = w[lm];
  if (!w.count(lm)) {
    WUSH_CHECK(m.config.tie_word_embeddings && w.count(emb), "%s: no lm_head.weight and the embeddings are not tied",
               m.path.c_str());
    w[lm] = w[emb];
  }
  return w;
}

std::map<std::string, at::Tensor> transformed_weights(const std::map<std::string, at::Tensor>& base,
                                                      const ModelConfig& cfg, const LatmixTransforms& t) {
  const Dims d = dims_of(cfg);
  check_shapes(d, t);
  std::map<std::string, at::Tensor> out;
  const at::Tensor& E = get(base, "model.embed_tokens.weight");
  out["model.embed_tokens.weight"] = t.t1.apply(E);  // rows E A^T + v
  out["lm_head.weight"] = get(base, "lm_head.weight");

  // Every consumer of the stream at once: [W'_q; W'_k; W'_v; W'_gate; W'_up] (all layers) A^{-1}.
  const int in_idx[5] = {0, 1, 2, 4, 5};
  std::vector<at::Tensor> consumers;
  std::vector<int64_t> rows;
  for (int64_t l = 0; l < d.L; ++l) {
    const at::Tensor& g_in = get(base, lname(l, "input_layernorm.weight"));
    const at::Tensor& g_post = get(base, lname(l, "post_attention_layernorm.weight"));
    for (int i : in_idx) {
      const at::Tensor& W = get(base, linear_prefix(l, i) + ".weight");
      consumers.push_back(W * (i < 3 ? g_in : g_post));  // W diag(g)
      rows.push_back(W.size(0));
    }
  }
  at::Tensor Winv = t.t1.right_inverse(at::cat(consumers, 0));  // W' A^{-1}
  at::Tensor bshift = at::matmul(Winv, t.t1.shift);              // W' A^{-1} v
  auto Wparts = Winv.split_with_sizes(rows, 0);
  auto bparts = bshift.split_with_sizes(rows, 0);

  // Every producer into the stream at once: A [W_o B2^{-1} | W_down] (all layers).
  std::vector<at::Tensor> producers;
  std::vector<int64_t> cols;
  std::vector<at::Tensor> o_shift;  // W_o B2^{-1} [v2; ...] per layer, before A
  for (int64_t l = 0; l < d.L; ++l) {
    const at::Tensor& Wo = get(base, linear_prefix(l, 3) + ".weight");  // [H, nh*hd]
    at::Tensor Wo2 = t.t2[size_t(l)].right_inverse(Wo.reshape({d.H * d.nh, d.hd})).reshape({d.H, d.nh * d.hd});
    o_shift.push_back(at::matmul(Wo2, t.t2[size_t(l)].shift.repeat({d.nh})));
    producers.push_back(Wo2);
    cols.push_back(Wo2.size(1));
    const at::Tensor& Wd = get(base, linear_prefix(l, 6) + ".weight");
    producers.push_back(Wd);
    cols.push_back(Wd.size(1));
  }
  auto Pparts = t.t1.left(at::cat(producers, 1)).split_with_sizes(cols, 1);
  at::Tensor Ao_shift = t.t1.linear(at::stack(o_shift, 0));  // [L, H]: A W_o B2^{-1} [v2; ...]

  size_t k = 0;
  for (int64_t l = 0; l < d.L; ++l) {
    for (int i : in_idx) {
      const std::string p = linear_prefix(l, i);
      auto bit = base.find(p + ".bias");
      at::Tensor W = Wparts[k], b = -bparts[k];
      if (bit != base.end()) b = b + bit->second;
      ++k;
      if (i == 2) {  // v_proj rows: B2 per KV head, + v2
        const AffineTransform& t2 = t.t2[size_t(l)];
        W = t2.left(W.reshape({d.nkv, d.hd, d.H}).transpose(0, 1).reshape({d.hd, d.nkv * d.H}))
                .reshape({d.hd, d.nkv, d.H})
                .transpose(0, 1)
                .reshape({d.nkv * d.hd, d.H});
        b = t2.apply(b.reshape({d.nkv, d.hd})).reshape({d.nkv * d.hd});
      }
      out[p + ".weight"] = W;
      out[p + ".bias"] = b;
    }
    out[linear_prefix(l, 3) + ".weight"] = Pparts[size_t(2 * l)];
    out[linear_prefix(l, 3) + ".bias"] = -Ao_shift[l];
    out[linear_prefix(l, 6) + ".weight"] = Pparts[size_t(2 * l + 1)];
    for (const char* n : {"input_layernorm.weight", "post_attention_layernorm.weight"})
      out[lname(l, n)] = at::ones_like(get(base, lname(l, n)));
  }
  return out;
}

at::Tensor latmix_norm(const AffineTransform& t1, double eps, const std::string& name, const at::Tensor& h,
                       const at::Tensor& gain) {
  at::Tensor hf = h.scalar_type() == at::kDouble ? h : h.to(at::kFloat);
  at::Tensor u = t1.inverse(hf);                                            // A^{-1} (h~ - v) = h
  at::Tensor r = at::rsqrt(u.pow(2).mean(-1, /*keepdim=*/true) + eps);     // the original statistic
  if (name == "model.norm") return gain * (u * r).to(h.scalar_type());     // original coordinates
  return (t1.shift + (hf - t1.shift) * r).to(h.scalar_type());             // T1(h / r)
}

at::Tensor block_hadamard(const at::Tensor& x, int64_t G) {
  const int64_t C = x.size(-1), Cp = (C + G - 1) / G * G;
  at::Tensor xp = Cp == C ? x : at::constant_pad_nd(x, {0, Cp - C});
  auto shape = xp.sizes().vec();
  shape.back() = Cp / G;
  shape.push_back(G);
  at::Tensor Had = hadamard_matrix(G).to(x.device(), x.scalar_type());
  return at::matmul(xp.reshape(shape), Had).reshape(xp.sizes());
}

std::function<at::Tensor(const std::string&, const at::Tensor&, const at::Tensor&)> LatmixOnline::norm_hook() const {
  struct Cache {
    std::mutex mu;
    std::map<std::string, AffineTransform> by_device;
  };
  auto cache = std::make_shared<Cache>();
  AffineTransform base = t1;
  double e = eps;
  return [cache, base, e](const std::string& name, const at::Tensor& h, const at::Tensor& gain) {
    at::ScalarType s = h.scalar_type() == at::kDouble ? at::kDouble : at::kFloat;
    std::string key = h.device().str() + c10::toString(s);
    const AffineTransform* t;
    {
      std::lock_guard<std::mutex> lock(cache->mu);
      auto it = cache->by_device.find(key);
      if (it == cache->by_device.end()) it = cache->by_device.emplace(key, base.to(h.device(), s)).first;
      t = &it->second;
    }
    return latmix_norm(*t, e, name, h, gain);
  };
}

LatmixModel apply_latmix(const Model& m, const LatmixTransforms& t) {
  c10::NoGradGuard ng;
  LatmixTransforms td = t.detached().to(at::kCPU, at::kFloat);
  std::map<std::string, at::Tensor> base = base_weights(m, at::kCPU, at::kFloat);
  LatmixModel r;
  r.model.config = m.config;
  r.model.config.tie_word_embeddings = false;
  r.model.config.dtype = "float32";
  r.model.path = m.path;
  r.model.tokenizer_path = m.tokenizer_path;
  r.model.weights = base;
  for (auto& [name, w] : transformed_weights(base, m.config, td)) r.model.weights[name] = w.contiguous();
  r.online.t1 = td.t1;
  r.online.eps = m.config.rms_norm_eps;
  r.online.hadamard_group = t.group;
  return r;
}

ForwardHooks training_hooks(Transformer& tr, const AffineTransform* t1, Format format, int64_t group,
                            bool scale_grad) {
  ForwardHooks hk;
  const double eps = tr.config().rms_norm_eps;
  hk.norm = [t1, eps](const std::string& name, const at::Tensor& h, const at::Tensor& gain) {
    return latmix_norm(*t1, eps, name, h, gain);
  };
  Transformer* trp = &tr;
  hk.linear = [trp, format, group, scale_grad](const std::string& name, const at::Tensor& x) {
    at::Tensor W = trp->weight(name + ".weight"), xx = x;
    if (ends_with(name, "mlp.down_proj")) {  // (x Had)(W Had)^T = x W^T, zero-padded to G
      xx = block_hadamard(x, group);
      W = block_hadamard(W, group);
    }
    xx = mx_fake_quant_ste(xx, format, group, scale_grad);
    const std::string b = name + ".bias";
    return trp->has_weight(b) ? at::linear(xx, W, trp->weight(b)) : at::linear(xx, W);
  };
  return hk;
}

}  // namespace wush::latmix

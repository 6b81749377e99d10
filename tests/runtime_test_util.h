// Helpers for the model-runtime tests: data paths, tiny random models, a naive float64
// reference block written independently of src/model/forward.cpp (loops over heads and positions).
#pragma once
#include <ATen/ATen.h>
#include <ATen/CPUGeneratorImpl.h>
#include <gtest/gtest.h>

#include <unistd.h>

#include <cmath>
#include <cstdio>
#include <functional>
#include <string>
#include <vector>

#include "core/error.h"
#include "core/runtime.h"
#include "model/model.h"

namespace wush::testing {

// The message of the wush::Error that f throws, or "(no error)".
inline std::string error_message(const std::function<void()>& f) {
  try {
    f();
  } catch (const wush::Error& e) {
    return e.what();
  }
  return "(no error)";
}

inline std::string data_path(const std::string& rel) {
  std::string d = default_data_dir();
  return d.empty() ? rel : d + "/" + rel;
}

// Runs the wush CLI; returns its exit code, stdout in *out and stderr in *err.
inline int run_cli(const std::string& args, std::string* out, std::string* err) {
  // One file per process: CTest runs test processes in parallel.
  std::string errf = ::testing::TempDir() + "wush_cli_stderr_" + std::to_string(getpid()) + ".txt";
  std::string cmd = std::string(WUSH_CLI_PATH) + " " + args + " 2>" + errf;
  FILE* p = popen(cmd.c_str(), "r");
  std::string o;
  char buf[4096];
  size_t n;
  while ((n = fread(buf, 1, sizeof buf, p)) > 0) o.append(buf, n);
  int rc = pclose(p);
  if (out) *out = o;
  if (err) {
    err->clear();
    if (FILE* f = fopen(errf.c_str(), "r")) {
      while ((n = fread(buf, 1, sizeof buf, f)) > 0) err->append(buf, n);
      fclose(f);
    }
  }
  return WIFEXITED(rc) ? WEXITSTATUS(rc) : -1;
}

struct TinySpec {
  int64_t hidden = 16, inter = 24, layers = 2, heads = 4, kv_heads = 2, vocab = 32, max_pos = 64;
  bool bias = false, qk_norm = false, tied = true, llama3 = false;
};

// A random model in Hugging Face names; norm gains around 1 so every path matters.
inline Model tiny_model(const TinySpec& s, uint64_t seed = 1) {
  at::Generator gen = at::detail::createCPUGenerator(seed);
  auto rnd = [&](std::vector<int64_t> shape, double scale) {
    return at::randn(shape, gen, at::kFloat) * scale;
  };
  Model m;
  m.path = "tiny";
  ModelConfig& c = m.config;
  c.hidden_size = s.hidden;
  c.intermediate_size = s.inter;
  c.num_layers = s.layers;
  c.num_heads = s.heads;
  c.num_kv_heads = s.kv_heads;
  c.head_dim = s.hidden / s.heads;
  c.vocab_size = s.vocab;
  c.max_position = s.max_pos;
  c.tie_word_embeddings = s.tied;
  c.attention_bias = s.bias;
  c.qk_norm = s.qk_norm;
  if (s.llama3) {
    c.rope_scaling.type = "llama3";
    c.rope_scaling.factor = 8;
    c.rope_scaling.low_freq_factor = 1;
    c.rope_scaling.high_freq_factor = 4;
    c.rope_scaling.original_max_position = 64;
  }
  const int64_t H = s.hidden, hd = c.head_dim, q = s.heads * hd, kv = s.kv_heads * hd;
  auto& w = m.weights;
  w["model.embed_tokens.weight"] = rnd({s.vocab, H}, 1.0);
  if (!s.tied) w["lm_head.weight"] = rnd({s.vocab, H}, 0.3);
  w["model.norm.weight"] = 1 + rnd({H}, 0.2);
  const std::vector<int64_t> shapes[7] = {{q, H}, {kv, H}, {kv, H}, {H, q}, {s.inter, H}, {s.inter, H}, {H, s.inter}};
  for (int64_t l = 0; l < s.layers; ++l) {
    std::string p = "model.layers." + std::to_string(l) + ".";
    w[p + "input_layernorm.weight"] = 1 + rnd({H}, 0.2);
    w[p + "post_attention_layernorm.weight"] = 1 + rnd({H}, 0.2);
    for (int i = 0; i < 7; ++i) w[linear_prefix(l, i) + ".weight"] = rnd(shapes[i], 0.4);
    if (s.bias)
      for (int i = 0; i < 3; ++i) w[linear_prefix(l, i) + ".bias"] = rnd({shapes[i][0]}, 0.3);
    if (s.qk_norm) {
      w[p + "self_attn.q_norm.weight"] = 1 + rnd({hd}, 0.2);
      w[p + "self_attn.k_norm.weight"] = 1 + rnd({hd}, 0.2);
    }
  }
  return m;
}

// ---- float64 reference, written from the equations (HF Llama conventions) ------------------
using Vec = std::vector<double>;
using Mat = std::vector<Vec>;  // [T][dim]

inline Vec vec_of(const at::Tensor& t) {
  at::Tensor d = t.to(at::kDouble).contiguous();
  return Vec(d.data_ptr<double>(), d.data_ptr<double>() + d.numel());
}

// y = W x (+ b), W [out, in] row-major
inline Vec matvec(const at::Tensor& W, const Vec& x, const at::Tensor* b = nullptr) {
  Vec w = vec_of(W);
  const size_t out = size_t(W.size(0)), in = size_t(W.size(1));
  Vec y(out, 0.0);
  for (size_t r = 0; r < out; ++r) {
    double s = 0;
    for (size_t c = 0; c < in; ++c) s += w[r * in + c] * x[c];
    y[r] = s;
  }
  if (b) {
    Vec bv = vec_of(*b);
    for (size_t r = 0; r < out; ++r) y[r] += bv[r];
  }
  return y;
}

inline Vec rmsnorm_ref(const Vec& x, const Vec& g, double eps) {
  double ss = 0;
  for (double v : x) ss += v * v;
  double inv = 1.0 / std::sqrt(ss / double(x.size()) + eps);
  Vec y(x.size());
  for (size_t i = 0; i < x.size(); ++i) y[i] = g[i] * x[i] * inv;
  return y;
}

// Inverse frequencies theta^(-2j/hd), with llama3 scaling (Meta's apply_scaling) if configured.
inline Vec inv_freq_ref(const ModelConfig& c) {
  Vec f;
  for (int64_t j = 0; j < c.head_dim / 2; ++j) {
    double v = std::pow(c.rope_theta, -2.0 * double(j) / double(c.head_dim));
    if (c.rope_scaling.type == "llama3") {
      const RopeScaling& s = c.rope_scaling;
      double wavelen = 2 * M_PI / v, lo = s.original_max_position / s.low_freq_factor,
             hi = s.original_max_position / s.high_freq_factor;
      if (wavelen > lo) {
        v = v / s.factor;
      } else if (wavelen >= hi) {
        double sm = (s.original_max_position / wavelen - s.low_freq_factor) / (s.high_freq_factor - s.low_freq_factor);
        v = (1 - sm) * v / s.factor + sm * v;
      }
    }
    f.push_back(v);
  }
  return f;
}

// Rotate-half RoPE of one head's vector at position pos, in place (x[j], x[j+hd/2] pairs).
inline void rope_ref(double* x, int64_t hd, int64_t pos, const Vec& inv_freq) {
  for (int64_t j = 0; j < hd / 2; ++j) {
    double a = x[j], b = x[j + hd / 2], th = double(pos) * inv_freq[size_t(j)];
    x[j] = a * std::cos(th) - b * std::sin(th);
    x[j + hd / 2] = b * std::cos(th) + a * std::sin(th);
  }
}

// One transformer block at positions 0..T-1 (causal), float64.
inline Mat block_ref(const Model& m, int64_t l, const Mat& x) {
  const ModelConfig& c = m.config;
  const int64_t T = int64_t(x.size()), nh = c.num_heads, nkv = c.num_kv_heads, hd = c.head_dim;
  const double eps = c.rms_norm_eps;
  auto W = [&](const std::string& s) { return m.weights.at("model.layers." + std::to_string(l) + "." + s); };
  auto B = [&](const std::string& s) -> const at::Tensor* {
    auto it = m.weights.find("model.layers." + std::to_string(l) + "." + s);
    return it == m.weights.end() ? nullptr : &it->second;
  };
  const Vec inv_freq = inv_freq_ref(c);
  const size_t nT = static_cast<size_t>(T);
  Mat q(nT), k(nT), v(nT);
  for (int64_t t = 0; t < T; ++t) {
    Vec n1 = rmsnorm_ref(x[size_t(t)], vec_of(W("input_layernorm.weight")), eps);
    q[size_t(t)] = matvec(W("self_attn.q_proj.weight"), n1, B("self_attn.q_proj.bias"));
    k[size_t(t)] = matvec(W("self_attn.k_proj.weight"), n1, B("self_attn.k_proj.bias"));
    v[size_t(t)] = matvec(W("self_attn.v_proj.weight"), n1, B("self_attn.v_proj.bias"));
    for (int64_t h = 0; h < nh; ++h) {
      double* qh = q[size_t(t)].data() + h * hd;
      if (c.qk_norm) {
        Vec n = rmsnorm_ref(Vec(qh, qh + hd), vec_of(W("self_attn.q_norm.weight")), eps);
        std::copy(n.begin(), n.end(), qh);
      }
      rope_ref(qh, hd, t, inv_freq);
    }
    for (int64_t h = 0; h < nkv; ++h) {
      double* kh = k[size_t(t)].data() + h * hd;
      if (c.qk_norm) {
        Vec n = rmsnorm_ref(Vec(kh, kh + hd), vec_of(W("self_attn.k_norm.weight")), eps);
        std::copy(n.begin(), n.end(), kh);
      }
      rope_ref(kh, hd, t, inv_freq);
    }
  }
  Mat out(nT);
  for (int64_t t = 0; t < T; ++t) {
    Vec o(size_t(nh * hd), 0.0);
    for (int64_t h = 0; h < nh; ++h) {
      const int64_t g = h / (nh / nkv);  // the KV head this query head reads
      Vec s(size_t(t + 1));
      double mx = -1e300;
      for (int64_t u = 0; u <= t; ++u) {
        double d = 0;
        for (int64_t i = 0; i < hd; ++i) d += q[size_t(t)][size_t(h * hd + i)] * k[size_t(u)][size_t(g * hd + i)];
        s[size_t(u)] = d / std::sqrt(double(hd));
        mx = std::max(mx, s[size_t(u)]);
      }
      double z = 0;
      for (double& e : s) z += (e = std::exp(e - mx));
      for (int64_t u = 0; u <= t; ++u)
        for (int64_t i = 0; i < hd; ++i) o[size_t(h * hd + i)] += s[size_t(u)] / z * v[size_t(u)][size_t(g * hd + i)];
    }
    Vec h1 = matvec(W("self_attn.o_proj.weight"), o);
    for (size_t i = 0; i < h1.size(); ++i) h1[i] += x[size_t(t)][i];
    Vec n2 = rmsnorm_ref(h1, vec_of(W("post_attention_layernorm.weight")), eps);
    Vec g = matvec(W("mlp.gate_proj.weight"), n2), u = matvec(W("mlp.up_proj.weight"), n2);
    for (size_t i = 0; i < g.size(); ++i) g[i] = g[i] / (1 + std::exp(-g[i])) * u[i];
    Vec d = matvec(W("mlp.down_proj.weight"), g);
    for (size_t i = 0; i < d.size(); ++i) d[i] += h1[i];
    out[size_t(t)] = d;
  }
  return out;
}

inline Mat mat_of(const at::Tensor& t2d) {
  Mat r;
  for (int64_t i = 0; i < t2d.size(0); ++i) r.push_back(vec_of(t2d[i]));
  return r;
}

// max |a - b| / max |a|
inline double max_rel_diff(const Mat& a, const at::Tensor& b2d) {
  double m = 0, s = 0;
  Mat bm = mat_of(b2d);
  for (size_t i = 0; i < a.size(); ++i)
    for (size_t j = 0; j < a[i].size(); ++j) m = std::max(m, std::abs(a[i][j] - bm[i][j])), s = std::max(s, std::abs(a[i][j]));
  return m / s;
}

}  // namespace wush::testing

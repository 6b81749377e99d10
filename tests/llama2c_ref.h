// A float64 re-implementation of llama2.c run.c's forward() on the raw checkpoint floats
// (interleaved-pair RoPE, unpermuted weights): the independent reference for the loader's
// q/k permutation and for perplexity.
#pragma once
#include <cmath>
#include <cstdint>
#include <cstring>
#include <string>
#include <vector>

#include "core/atomic_file.h"

namespace wush::testing {

struct Llama2cRef {
  int dim, hidden, layers, heads, kv_heads, vocab, seq_len;
  bool shared;
  std::vector<float> f;
  // offsets of each tensor in f
  size_t emb, rms_att, wq, wk, wv, wo, rms_ffn, w1, w2, w3, rms_final, wcls;

  explicit Llama2cRef(const std::string& path) {
    std::string b = read_file(path);
    int32_t h[7];
    std::memcpy(h, b.data(), 28);
    dim = h[0], hidden = h[1], layers = h[2], heads = h[3], kv_heads = h[4], vocab = std::abs(h[5]), seq_len = h[6];
    shared = h[5] > 0;
    f.resize((b.size() - 28) / 4);
    std::memcpy(f.data(), b.data() + 28, f.size() * 4);
    const size_t D = size_t(dim), L = size_t(layers), KV = size_t(dim / heads * kv_heads), Hd = size_t(hidden);
    size_t o = 0;
    auto take = [&](size_t n) { size_t r = o; o += n; return r; };
    emb = take(size_t(vocab) * D);
    rms_att = take(L * D);
    wq = take(L * D * D);
    wk = take(L * KV * D);
    wv = take(L * KV * D);
    wo = take(L * D * D);
    rms_ffn = take(L * D);
    w1 = take(L * Hd * D);
    w2 = take(L * D * Hd);
    w3 = take(L * Hd * D);
    rms_final = take(D);
    take(size_t(seq_len) * D / size_t(heads));  // freq_cis_real + freq_cis_imag
    wcls = shared ? emb : take(size_t(vocab) * D);
  }

  // out[r] = sum_c W[r*n + c] x[c], W at offset w
  void matmul(std::vector<double>& out, const std::vector<double>& x, size_t w, int n, int d) const {
    out.assign(size_t(d), 0.0);
    for (int r = 0; r < d; ++r) {
      double s = 0;
      for (int c = 0; c < n; ++c) s += double(f[w + size_t(r) * size_t(n) + size_t(c)]) * x[size_t(c)];
      out[size_t(r)] = s;
    }
  }
  void rmsnorm(std::vector<double>& out, const std::vector<double>& x, size_t g) const {
    double ss = 0;
    for (double v : x) ss += v * v;
    ss = 1.0 / std::sqrt(ss / double(x.size()) + 1e-5);
    out.resize(x.size());
    for (size_t i = 0; i < x.size(); ++i) out[i] = double(f[g + i]) * (ss * x[i]);
  }

  // Logits [T][vocab] of every position, run.c's loop over positions with its KV cache.
  std::vector<std::vector<double>> logits(const std::vector<int32_t>& tokens) const {
    const int hs = dim / heads, kv_dim = hs * kv_heads, kv_mul = heads / kv_heads;
    const size_t D = size_t(dim);
    std::vector<std::vector<std::vector<double>>> kc(static_cast<size_t>(layers)), vc(static_cast<size_t>(layers));
    std::vector<std::vector<double>> out;
    std::vector<double> x(D), xb, q, k, v, hb, hb2, tmp;
    for (size_t pos = 0; pos < tokens.size(); ++pos) {
      for (size_t i = 0; i < D; ++i) x[i] = f[emb + size_t(tokens[pos]) * D + i];
      for (int l = 0; l < layers; ++l) {
        const size_t L = size_t(l);
        rmsnorm(xb, x, rms_att + L * D);
        matmul(q, xb, wq + L * D * D, dim, dim);
        matmul(k, xb, wk + L * size_t(kv_dim) * D, dim, kv_dim);
        matmul(v, xb, wv + L * size_t(kv_dim) * D, dim, kv_dim);
        for (int i = 0; i < dim; i += 2) {  // RoPE on interleaved pairs
          int head_dim = i % hs;
          double freq = 1.0 / std::pow(10000.0, double(head_dim) / double(hs));
          double val = double(pos) * freq, fcr = std::cos(val), fci = std::sin(val);
          for (int r = 0; r < (i < kv_dim ? 2 : 1); ++r) {
            std::vector<double>& vec = r == 0 ? q : k;
            double v0 = vec[size_t(i)], v1 = vec[size_t(i + 1)];
            vec[size_t(i)] = v0 * fcr - v1 * fci;
            vec[size_t(i + 1)] = v0 * fci + v1 * fcr;
          }
        }
        kc[L].push_back(k);
        vc[L].push_back(v);
        xb.assign(D, 0.0);
        for (int h = 0; h < heads; ++h) {
          std::vector<double> att(pos + 1);
          double mx = -1e300;
          for (size_t t = 0; t <= pos; ++t) {
            double s = 0;
            for (int i = 0; i < hs; ++i) s += q[size_t(h * hs + i)] * kc[L][t][size_t((h / kv_mul) * hs + i)];
            att[t] = s / std::sqrt(double(hs));
            mx = std::max(mx, att[t]);
          }
          double z = 0;
          for (double& a : att) z += (a = std::exp(a - mx));
          for (size_t t = 0; t <= pos; ++t)
            for (int i = 0; i < hs; ++i) xb[size_t(h * hs + i)] += att[t] / z * vc[L][t][size_t((h / kv_mul) * hs + i)];
        }
        matmul(tmp, xb, wo + L * D * D, dim, dim);
        for (size_t i = 0; i < D; ++i) x[i] += tmp[i];
        rmsnorm(xb, x, rms_ffn + L * D);
        matmul(hb, xb, w1 + L * size_t(hidden) * D, dim, hidden);
        matmul(hb2, xb, w3 + L * size_t(hidden) * D, dim, hidden);
        for (size_t i = 0; i < hb.size(); ++i) hb[i] = hb[i] / (1.0 + std::exp(-hb[i])) * hb2[i];
        matmul(tmp, hb, w2 + L * D * size_t(hidden), hidden, dim);
        for (size_t i = 0; i < D; ++i) x[i] += tmp[i];
      }
      rmsnorm(xb, x, rms_final);
      std::vector<double> lg;
      matmul(lg, xb, wcls, dim, vocab);
      out.push_back(lg);
    }
    return out;
  }

  // log p(tokens[t] | tokens[<t]) for t >= 1
  std::vector<double> logprobs(const std::vector<int32_t>& tokens) const {
    auto lg = logits(tokens);
    std::vector<double> r;
    for (size_t t = 0; t + 1 < tokens.size(); ++t) {
      double mx = -1e300, z = 0;
      for (double v : lg[t]) mx = std::max(mx, v);
      for (double v : lg[t]) z += std::exp(v - mx);
      r.push_back(lg[t][size_t(tokens[t + 1])] - mx - std::log(z));
    }
    return r;
  }
};

}  // namespace wush::testing

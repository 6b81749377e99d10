#include "latmix/init.h"

#include <c10/core/GradMode.h>
#include <ATen/CPUGeneratorImpl.h>

#include "core/error.h"
#include "model/forward.h"
#include "transforms/hadamard.h"
#include "transforms/wush_block.h"

namespace wush::latmix {

namespace {

at::Tensor haar_block(int64_t b, at::Generator& gen) {
  at::Tensor A = at::randn({b, b}, gen, at::TensorOptions().dtype(at::kDouble));
  auto [Q, R] = at::linalg_qr(A);
  return Q * at::where(R.diagonal() < 0, -at::ones({b}, at::kDouble), at::ones({b}, at::kDouble)).unsqueeze(0);
}

// 1 on the diagonal blocks, 0 off them.
at::Tensor block_mask(int64_t n, int64_t block) {
  at::Tensor idx = at::arange(n, at::kLong).div(block, "floor");
  return idx.unsqueeze(1).eq(idx.unsqueeze(0)).to(at::kDouble);
}

void add_offblock_noise(AffineTransform& t, int64_t block, double noise, at::Generator& gen) {
  if (noise <= 0) return;
  const int64_t n = t.n();
  at::Tensor off = 1 - block_mask(n, block);
  auto o = at::TensorOptions().dtype(at::kDouble);
  if (t.kind == Param::LU) t.lower = t.lower + noise * at::randn({n, n}, gen, o) * at::tril(off, -1);
  else t.skew = t.skew + noise * at::randn({n, n}, gen, o) * off;
  t.upper = t.upper + noise * at::randn({n, n}, gen, o) * at::triu(off, 1);
}

at::Tensor block_diag_of(const std::vector<at::Tensor>& blocks) {
  int64_t n = 0;
  for (const at::Tensor& b : blocks) n += b.size(0);
  at::Tensor A = at::zeros({n, n}, at::kDouble);
  int64_t i = 0;
  for (const at::Tensor& b : blocks) {
    A.slice(0, i, i + b.size(0)).slice(1, i, i + b.size(0)).copy_(b);
    i += b.size(0);
  }
  return A;
}

// Second moments for the wush initialization (see init.h), fp64.
struct WushStats {
  at::Tensor Gx1, Gw1;                 // [H, H]
  std::vector<at::Tensor> Gx2, Gw2;    // per layer [hd, hd]
};

WushStats wush_stats(const Model& m, const at::Tensor& calib, int64_t windows) {
  WUSH_CHECK(calib.defined() && calib.dim() == 2 && calib.size(0) > 0,
             "latmix --init wush needs calibration windows");
  Transformer tr(m, at::kCPU, at::kFloat);
  const ModelConfig& c = tr.config();
  const int64_t H = c.hidden_size, hd = c.head_dim, L = c.num_layers;
  WushStats s;
  s.Gx1 = at::zeros({H, H}, at::kDouble);
  s.Gx2.assign(size_t(L), at::zeros({hd, hd}, at::kDouble));
  int64_t n1 = 0;
  std::vector<int64_t> n2(size_t(L), 0);
  ForwardHooks hk;
  hk.norm = [&](const std::string& name, const at::Tensor& h, const at::Tensor&) {
    if (name != "model.norm") {  // gain-free normalized stream
      at::Tensor z = (h.to(at::kDouble) * at::rsqrt(h.to(at::kDouble).pow(2).mean(-1, true) + c.rms_norm_eps))
                         .reshape({-1, H});
      s.Gx1 += at::matmul(z.t(), z);
      n1 += z.size(0);
    }
    return at::Tensor();
  };
  hk.on_linear_input = [&](const std::string& name, const at::Tensor& x) {
    for (int64_t l = 0; l < L; ++l)
      if (name == linear_prefix(l, 3)) {
        at::Tensor y = x.to(at::kDouble).reshape({-1, hd});  // every head's slice
        s.Gx2[size_t(l)] = s.Gx2[size_t(l)] + at::matmul(y.t(), y);
        n2[size_t(l)] += y.size(0);
      }
  };
  c10::NoGradGuard ng;
  const int64_t nw = std::min<int64_t>(windows, calib.size(0));
  for (int64_t i = 0; i < nw; ++i) tr.forward(calib.narrow(0, i, 1), &hk);
  s.Gx1 /= double(n1);
  for (int64_t l = 0; l < L; ++l) s.Gx2[size_t(l)] = s.Gx2[size_t(l)] / double(n2[size_t(l)]);

  s.Gw1 = at::zeros({H, H}, at::kDouble);
  int64_t count = 0;
  for (int64_t l = 0; l < L; ++l) {
    at::Tensor g_in = tr.weight("model.layers." + std::to_string(l) + ".input_layernorm.weight").to(at::kDouble);
    at::Tensor g_post = tr.weight("model.layers." + std::to_string(l) + ".post_attention_layernorm.weight").to(at::kDouble);
    for (int i : {0, 1, 2, 4, 5}) {
      at::Tensor W = tr.weight(linear_prefix(l, i) + ".weight").to(at::kDouble) * (i < 3 ? g_in : g_post);
      s.Gw1 += at::matmul(W.t(), W) / double(W.size(0));
      ++count;
    }
    at::Tensor Wo = tr.weight(linear_prefix(l, 3) + ".weight").to(at::kDouble).reshape({H, -1, hd});  // [H, nh, hd]
    at::Tensor Wh = Wo.transpose(0, 1);                                                              // [nh, H, hd]
    s.Gw2.push_back(at::matmul(Wh.transpose(1, 2), Wh).mean(0) / double(H));
  }
  s.Gw1 /= double(count);
  return s;
}

// The wush-local blocks of (Gw, Gx) along the diagonal, blocks of `block`.
at::Tensor wush_block_diagonal(const at::Tensor& Gw, const at::Tensor& Gx, int64_t block, const std::string& what) {
  const int64_t n = Gw.size(0);
  WUSH_CHECK(n % block == 0 && is_power_of_two(block),
             "%s: --init wush needs the size %lld to be a multiple of a power-of-two block (%lld)", what.c_str(),
             (long long)n, (long long)block);
  WushBlockOptions o;
  o.round_bf16 = false;
  std::vector<at::Tensor> blocks;
  for (int64_t i = 0; i < n; i += block)
    blocks.push_back(wush_local_block(Gw.slice(0, i, i + block).slice(1, i, i + block),
                                      Gx.slice(0, i, i + block).slice(1, i, i + block), o, what));
  return block_diag_of(blocks);
}

}  // namespace

Init parse_init(const std::string& s) {
  if (s == "hadamard") return Init::Hadamard;
  if (s == "orthogonal") return Init::Orthogonal;
  if (s == "wush") return Init::Wush;
  WUSH_FAIL("latmix: --init '%s' is not known (valid: hadamard, orthogonal, wush)", s.c_str());
}

std::string init_name(Init i) {
  switch (i) {
    case Init::Hadamard: return "hadamard";
    case Init::Orthogonal: return "orthogonal";
    default: return "wush";
  }
}

at::Tensor random_block_diagonal(int64_t n, int64_t block, Init init, at::Generator& gen) {
  std::vector<at::Tensor> blocks;
  for (int64_t i = 0; i < n; i += block) {
    const int64_t b = std::min(block, n - i);
    if (init == Init::Hadamard && is_power_of_two(b)) {
      at::Tensor signs = at::randint(0, 2, {b}, gen, at::TensorOptions().dtype(at::kDouble)) * 2 - 1;
      blocks.push_back(hadamard_matrix(b) * signs.unsqueeze(0));  // H diag(signs)
    } else {
      blocks.push_back(haar_block(b, gen));
    }
  }
  return block_diag_of(blocks);
}

LatmixTransforms init_latmix(const Model& m, const InitOptions& opt, const at::Tensor& calib, int64_t wush_windows) {
  const ModelConfig& c = m.config;
  const int64_t H = c.hidden_size, L = c.num_layers;
  const int64_t hd = c.head_dim > 0 ? c.head_dim : H / c.num_heads;
  WUSH_CHECK(opt.group > 0, "latmix: group must be positive");
  const int64_t b1 = std::min(opt.group, H), b2 = std::min(opt.group, hd);
  at::Generator gen = at::make_generator<at::CPUGeneratorImpl>(opt.seed);
  LatmixTransforms t;
  t.kind = opt.param;
  t.group = opt.group;
  WushStats ws;
  if (opt.init == Init::Wush) ws = wush_stats(m, calib, wush_windows);
  auto make = [&](int64_t n, int64_t block, const at::Tensor& Gw, const at::Tensor& Gx, const std::string& what) {
    at::Tensor A0 = opt.init == Init::Wush ? wush_block_diagonal(Gw, Gx, block, what)
                                           : random_block_diagonal(n, block, opt.init, gen);
    AffineTransform a = AffineTransform::from_matrix(A0, opt.param, what, block);
    add_offblock_noise(a, block, opt.noise, gen);
    return a;
  };
  t.t1 = make(H, b1, ws.Gw1, ws.Gx1, "latmix t1");
  for (int64_t l = 0; l < L; ++l) {
    at::Tensor Gw = opt.init == Init::Wush ? ws.Gw2[size_t(l)] : at::Tensor();
    at::Tensor Gx = opt.init == Init::Wush ? ws.Gx2[size_t(l)] : at::Tensor();
    t.t2.push_back(make(hd, b2, Gw, Gx, "latmix t2 of layer " + std::to_string(l)));
  }
  t.info = {{"init", init_name(opt.init)}, {"param", param_name(opt.param)}, {"noise", opt.noise}, {"seed", opt.seed}};
  return t;
}

}  // namespace wush::latmix

// LATMiX (src/latmix/, REFERENCE.md §5): the affine parameterizations (exact inverse, exact
// representation of a given matrix, autograd against float64 finite differences), the STE MX
// fake-quant against a scalar reference of REFERENCE §1, the folded model reproducing the
// original logits, the file format, training (loss goes down, deterministic) and the CLI.
#include <ATen/CPUGeneratorImpl.h>
#include <gtest/gtest.h>

#include <cmath>
#include <fstream>

#include <unistd.h>

#include "core/atomic_file.h"
#include "core/error.h"
#include "formats/format.h"
#include "latmix/fold.h"
#include "latmix/init.h"
#include "latmix/loss_curve.h"
#include "latmix/mx_ste.h"
#include "latmix/train.h"
#include "model/forward.h"
#include "model/tokenizer.h"
#include "pipeline/calibration.h"
#include "latmix_test_util.h"
#include "runtime_test_util.h"

using namespace wush;
using namespace wush::latmix;
using namespace wush::testing;
using namespace wush::latmix_test;

namespace {

// A transform far from orthogonal: the initialization plus random factors, scales and shift.
AffineTransform random_affine(int64_t n, Param p, uint64_t seed, double spread = 0.3) {
  at::Generator g = gen_of(seed);
  at::Tensor A0 = random_block_diagonal(n, 32, p == Param::LU ? Init::Hadamard : Init::Orthogonal, g);
  AffineTransform t = AffineTransform::from_matrix(A0, p, "test", 32);
  auto o = at::TensorOptions().dtype(at::kDouble);
  (p == Param::LU ? t.lower : t.skew) += spread * 0.3 * at::randn({n, n}, g, o);
  t.upper += spread * 0.3 * at::randn({n, n}, g, o);
  t.log_s += spread * at::randn({n}, g, o);
  t.shift = spread * at::randn({n}, g, o);
  return t;
}

// ---- scalar MX reference (REFERENCE.md §1), one group ----------------------------------------
double e2m1_rne(double y) {  // nearest of the magnitudes, ties to the even code
  static const double mag[8] = {0, 0.5, 1, 1.5, 2, 3, 4, 6};
  double a = std::fabs(y);
  int best = 0;
  for (int c = 1; c < 8; ++c) {
    double d = std::fabs(a - mag[c]), db = std::fabs(a - mag[best]);
    if (d < db || (d == db && c % 2 == 0)) best = c;
  }
  return std::copysign(mag[best], y);
}

std::vector<double> mx_ref(const std::vector<double>& x, Format f) {
  double amax = 0;
  for (double v : x) amax = std::max(amax, std::fabs(v));
  std::vector<double> y(x.size(), 0.0);
  if (amax == 0) return y;
  const double e = std::floor(std::log2(amax));
  for (size_t i = 0; i < x.size(); ++i) {
    if (f == Format::MXFP4) {
      double s = std::ldexp(1.0, int(e));
      y[i] = e2m1_rne(3 * x[i] / s) * s / 3;
    } else {
      double X = std::ldexp(1.0, int(e) - 2);
      y[i] = std::min(7.0, std::max(-8.0, std::nearbyint(x[i] / X))) * X;  // FE_TONEAREST: half to even
    }
  }
  return y;
}

ForwardHooks folded_hooks(const LatmixOnline& on, Transformer& tr, bool hadamard) {
  ForwardHooks hk;
  hk.norm = on.norm_hook();
  if (hadamard) {
    Transformer* t = &tr;
    const int64_t G = on.hadamard_group;
    hk.linear = [t, G](const std::string& name, const at::Tensor& x) {
      if (name.find("down_proj") == std::string::npos) return at::Tensor();
      return at::linear(block_hadamard(x, G), block_hadamard(t->weight(name + ".weight"), G));
    };
  }
  return hk;
}

// Logits of m and of apply_latmix(m, t) with the online norm (and the down_proj Hadamard).
void expect_folded_reproduces(const Model& m, const LatmixTransforms& t, const at::Tensor& tokens, const char* what) {
  Transformer ref(m);
  at::Tensor want = ref.forward(tokens);
  LatmixModel lm = apply_latmix(m, t);
  Transformer tr(lm.model);
  for (bool had : {false, true}) {
    ForwardHooks hk = folded_hooks(lm.online, tr, had);
    EXPECT_LT(rel_diff(tr.forward(tokens, &hk), want), 1e-4) << what << (had ? " (with the Hadamard)" : "");
  }
  // Without the online norm the plain RMSNorm sees A h + v: the logits are wrong (the test can fail).
  EXPECT_GT(rel_diff(tr.forward(tokens), want), 1e-2) << what;
}

// Like run_cli, with a stderr file of our own (the shared one in /tmp races with other test binaries).
int run_wush(const std::string& args, std::string* out, std::string* err) {
  std::string errf = ::testing::TempDir() + "latmix_cli_stderr_" + std::to_string(getpid()) + ".txt";
  FILE* p = popen((std::string(WUSH_CLI_PATH) + " " + args + " 2>" + errf).c_str(), "r");
  out->clear();
  char buf[4096];
  size_t n;
  while ((n = fread(buf, 1, sizeof buf, p)) > 0) out->append(buf, n);
  int rc = pclose(p);
  *err = path_exists(errf) ? read_file(errf) : "";
  return WIFEXITED(rc) ? WEXITSTATUS(rc) : -1;
}

}  // namespace

// ---- parameterization -----------------------------------------------------------------------

TEST(LatmixAffine, InverseIsExactForBothParameterizations) {
  for (Param p : {Param::LU, Param::QR}) {
    AffineTransform t = random_affine(40, p, 3).to(at::kCPU, at::kFloat);  // a 32 block + an 8 block
    at::Tensor A = t.matrix(), I = at::eye(40, at::kFloat);
    EXPECT_LT((at::matmul(A, t.solve(I)) - I).abs().max().item<double>(), 1e-5) << param_name(p);
    EXPECT_LT((at::matmul(t.right_inverse(I), A) - I).abs().max().item<double>(), 1e-5) << param_name(p);
    EXPECT_LT((at::matmul(A.t(), t.solve_t(I)) - I).abs().max().item<double>(), 1e-5) << param_name(p);
    at::Tensor x = at::randn({3, 5, 40}, gen_of(4), at::kFloat);
    EXPECT_LT(rel_diff(t.inverse(t.apply(x)), x), 1e-5) << param_name(p);
    // The parameterization's determinant: log|det A| = sum log|s|.
    EXPECT_NEAR(std::get<1>(at::linalg_slogdet(A.to(at::kDouble))).item<double>(), t.log_abs_det().item<double>(), 1e-4);
  }
}

TEST(LatmixAffine, FromMatrixRepresentsTheTargetExactly) {
  at::Generator g = gen_of(9);
  for (Param p : {Param::LU, Param::QR}) {
    at::Tensor A0 = at::randn({12, 12}, g, at::kDouble);  // dense, general
    AffineTransform t = AffineTransform::from_matrix(A0, p, "dense");
    EXPECT_LT((t.matrix() - A0).abs().max().item<double>(), 1e-10) << param_name(p);
    if (p == Param::QR) {
      EXPECT_LT((t.skew + t.skew.t()).abs().max().item<double>(), 1e-12);  // G skew: O = exp(G)
    }
    for (Init init : {Init::Hadamard, Init::Orthogonal}) {
      at::Tensor B = random_block_diagonal(72, 32, init, g);  // blocks 32, 32, 8
      EXPECT_LT((at::matmul(B, B.t()) - at::eye(72, at::kDouble)).abs().max().item<double>(), 1e-12);
      AffineTransform tb = AffineTransform::from_matrix(B, p, "blocks", 32);
      EXPECT_LT((tb.matrix() - B).abs().max().item<double>(), 1e-10) << param_name(p) << " " << init_name(init);
      EXPECT_NEAR(tb.log_abs_det().item<double>(), 0.0, 1e-10);  // orthogonal: |det| = 1
      // The factors stay block-diagonal: nothing off the blocks.
      at::Tensor blk = at::arange(72, at::kLong).div(32, "floor");
      at::Tensor off = blk.unsqueeze(1).ne(blk.unsqueeze(0));
      at::Tensor f = p == Param::LU ? tb.lower : tb.skew;
      EXPECT_EQ(f.masked_select(off).abs().max().item<double>(), 0.0);
    }
  }
  // A Hadamard block is random-signed: two seeds give different matrices.
  at::Generator g1 = gen_of(1), g2 = gen_of(2);
  EXPECT_FALSE(random_block_diagonal(32, 32, Init::Hadamard, g1).equal(random_block_diagonal(32, 32, Init::Hadamard, g2)));
}

TEST(LatmixAffine, GradientsMatchFiniteDifferencesInFloat64) {
  const int64_t n = 5;
  at::Generator g = gen_of(21);
  at::Tensor A0 = at::randn({n, n}, g, at::kDouble) + 3 * at::eye(n, at::kDouble);
  at::Tensor C1 = at::randn({n, n}, g, at::kDouble), W = at::randn({3, n}, g, at::kDouble);
  at::Tensor C2 = at::randn({3, n}, g, at::kDouble), y = at::randn({4, n}, g, at::kDouble);
  at::Tensor C3 = at::randn({4, n}, g, at::kDouble);
  for (Param p : {Param::LU, Param::QR}) {
    AffineTransform t = AffineTransform::from_matrix(A0, p, "fd");
    (p == Param::LU ? t.lower : t.skew) += 0.2 * at::randn({n, n}, g, at::kDouble);
    t.shift = 0.3 * at::randn({n}, g, at::kDouble);
    auto f = [&](const AffineTransform& a) {
      return (C1 * a.matrix()).sum() + (C2 * a.right_inverse(W)).sum() + (C3 * a.inverse(y)).sum() +
             0.7 * a.volume_penalty();
    };
    t.set_requires_grad(true);
    std::vector<at::Tensor> params = t.parameters();
    at::Tensor out = f(t);
    out.backward();
    const double h = 1e-6;
    for (size_t k = 0; k < params.size(); ++k) {
      at::Tensor grad = params[k].grad();
      ASSERT_TRUE(grad.defined()) << param_name(p) << " parameter " << k;
      at::Tensor flat = params[k].detach().view(-1);
      double worst = 0, scale = 1e-3;
      for (int64_t i = 0; i < flat.numel(); ++i) {
        const double x0 = flat[i].item<double>();
        flat[i] = x0 + h;
        const double fp = f(t).item<double>();
        flat[i] = x0 - h;
        const double fm = f(t).item<double>();
        flat[i] = x0;
        const double fd = (fp - fm) / (2 * h), an = grad.view(-1)[i].item<double>();
        // Entries the parameterization ignores (diagonal/upper part of `lower`, ...) have gradient 0 both ways.
        worst = std::max(worst, std::fabs(fd - an));
        scale = std::max(scale, std::fabs(an));
      }
      EXPECT_LT(worst / scale, 1e-6) << param_name(p) << " parameter " << k;
    }
  }
}

// ---- STE fake-quant ---------------------------------------------------------------------------

TEST(LatmixSte, ForwardEqualsTheMxRuleBitForBit) {
  at::Generator g = gen_of(5);
  // 6 tokens x 70 features (3 groups, the last padded); wide dynamic range; one all-zero group.
  at::Tensor x = at::randn({6, 70}, g, at::kFloat) * at::exp(2 * at::randn({6, 1}, g, at::kFloat));
  x[2].narrow(0, 32, 32).zero_();
  // Exact ties in a group of amax 1 (MXFP4: s = 1; MXINT4: X = 1/4). MXFP4: 3 x / s = 0.75 is the
  // only E2M1 tie a float x can hit exactly (x = s/4) -> 1. MXINT4: x / X = 0.5, 1.5, 2.5, -2.5
  // -> 0, 2, 2, -2 (half to even).
  x[5].narrow(0, 0, 32).zero_();
  const float ties[] = {1.0f, 0.25f, 0.125f, 0.375f, 0.625f, -0.625f};
  for (int i = 0; i < 6; ++i) x[5][i] = ties[i];
  for (Format f : {Format::MXFP4, Format::MXINT4}) {
    at::Tensor y = mx_fake_quant(x, f);
    at::Tensor ys = mx_fake_quant_ste(x, f);
    EXPECT_TRUE(y.equal(ys)) << ste_format_name(f);
    for (int64_t r = 0; r < 6; ++r)
      for (int64_t g0 = 0; g0 < 70; g0 += 32) {
        const int64_t w = std::min<int64_t>(32, 70 - g0);
        std::vector<double> grp(32, 0.0);
        for (int64_t j = 0; j < w; ++j) grp[size_t(j)] = x[r][g0 + j].item<double>();
        std::vector<double> want = mx_ref(grp, f);
        for (int64_t j = 0; j < w; ++j)
          ASSERT_EQ(float(want[size_t(j)]), y[r][g0 + j].item<float>()) << ste_format_name(f) << " row " << r << " col " << g0 + j;
      }
  }
  at::Tensor q = mx_fake_quant(x, Format::MXFP4);
  EXPECT_EQ(q[5][1].item<float>() * 3, 1.0f);  // E2M1(0.75) = 1 (ties to the even mantissa)
  EXPECT_EQ(q[5][0].item<float>(), 1.0f);      // amax: 3 -> 3 exactly
  EXPECT_EQ(q[2].narrow(0, 32, 32).abs().max().item<float>(), 0.0f);  // all-zero group
  at::Tensor qi = mx_fake_quant(x, Format::MXINT4) * 4;
  const float want_int[] = {4, 1, 0, 2, 2, -2};
  for (int i = 0; i < 6; ++i) EXPECT_EQ(qi[5][i].item<float>(), want_int[i]) << "mxint4 tie " << i;
}

TEST(LatmixSte, PassesGradientOneInsideTheRange) {
  at::Generator g = gen_of(6);
  at::Tensor x = at::randn({4, 64}, g, at::kDouble).requires_grad_(true);
  at::Tensor w = at::randn({4, 64}, g, at::kDouble);
  (mx_fake_quant_ste(x, Format::MXFP4) * w).sum().backward();
  EXPECT_TRUE(x.grad().equal(w));  // reference MXFP4 never clips: gradient 1 everywhere
  // MXINT4: amax 1.9 -> X = 0.25, 1.9 / X = 7.6 rounds past 7 and clips: gradient 0 there only.
  at::Tensor z = at::full({1, 32}, 0.3, at::kDouble);
  z[0][0] = 1.9;
  z[0][1] = -1.9;  // -7.6 rounds to -8: inside the range
  z.requires_grad_(true);
  mx_fake_quant_ste(z, Format::MXINT4).sum().backward();
  EXPECT_EQ(z.grad()[0][0].item<double>(), 0.0);
  EXPECT_EQ(z.grad()[0][1].item<double>(), 1.0);
  EXPECT_EQ(z.grad()[0].narrow(0, 2, 30).min().item<double>(), 1.0);
  EXPECT_THROW(mx_fake_quant(x, Format::MXFP8), Error);
}

// NVFP4 (G = 16, the activations' fixed g = 10) and INT4 (G = 32, midrise, RMS scale): the STE's
// forward is the format codec's fake-quantization, bit for bit (so that LATMiX trains against what
// the W4A4 evaluation computes).
TEST(LatmixSte, NvfpAndInt4ForwardEqualTheCodecs) {
  at::Generator g = gen_of(9);
  at::Tensor x = at::randn({64, 96}, g, at::kFloat) * at::exp(3 * at::randn({64, 1}, g, at::kFloat));
  x[3].zero_();
  x[4].narrow(0, 0, 32).fill_(0.5f);  // a constant group: every element on one INT4 level
  for (auto [f, G] : {std::pair<Format, int64_t>{Format::NVFP4, 16}, {Format::INT4, 32}}) {
    at::Tensor want = fake_quantize(x, f);
    at::Tensor got = mx_fake_quant(x, f, G);
    ASSERT_EQ(got.sizes(), want.sizes());
    EXPECT_EQ(got.view(at::kInt).ne(want.view(at::kInt)).sum().item<int64_t>(), 0) << ste_format_name(f);
    EXPECT_TRUE(mx_fake_quant_ste(x, f, G).equal(got)) << ste_format_name(f);
    EXPECT_EQ(parse_ste_format(ste_format_name(f)), f);
  }
  // INT4 clips beyond the outer levels: gradient 0 there, 1 inside. A group of 31 x 0.01 and one 1.0:
  // rms = 0.1792, s = bf16(0.3354 * 0.1792) ~ 0.06, so 1.0 / s ~ 16.6 lies past level 7.5.
  at::Tensor z = at::full({1, 32}, 0.01, at::kDouble);
  z[0][0] = 1.0;
  z.requires_grad_(true);
  mx_fake_quant_ste(z, Format::INT4, 32).sum().backward();
  EXPECT_EQ(z.grad()[0][0].item<double>(), 0.0);
  EXPECT_EQ(z.grad()[0].narrow(0, 1, 31).min().item<double>(), 1.0);
}

TEST(LatmixSte, ScaleGradientReachesTheAmaxElementOnly) {
  // q = x + scale * delta, delta fixed: d q_j / d amax = (q_j - x_j) / amax (mx_ste.h).
  at::Generator g = gen_of(8);
  for (Format f : {Format::MXFP4, Format::MXINT4}) {
    at::Tensor x = at::randn({1, 32}, g, at::kDouble);
    x[0][5] = -4.0;  // the amax element, negative
    at::Tensor w = at::randn({1, 32}, g, at::kDouble);
    at::Tensor xg = x.clone().requires_grad_(true);
    at::Tensor q = mx_fake_quant_ste(xg, f, 32, /*scale_grad=*/true);
    EXPECT_TRUE(q.equal(mx_fake_quant(x, f))) << "the value stays exact";
    (q * w).sum().backward();
    at::Tensor want = w.clone();
    want[0][5] += -1.0 * ((q.detach() - x) / 4.0 * w).sum();  // d amax / d x_5 = sign(x_5) = -1
    EXPECT_LT((xg.grad() - want).abs().max().item<double>(), 1e-12) << ste_format_name(f);
  }
}

// ---- folding ---------------------------------------------------------------------------------

TEST(LatmixFold, TinyRandomModelReproducesTheOriginalLogits) {
  at::Tensor tokens = at::randint(48, {2, 20}, gen_of(8), at::kLong);
  for (bool bias : {false, true}) {
    TinySpec s;
    s.hidden = 64, s.inter = 80, s.heads = 4, s.kv_heads = 2, s.vocab = 48, s.bias = bias, s.tied = !bias;
    Model m = tiny_model(s, 12);
    for (Param p : {Param::LU, Param::QR})
      expect_folded_reproduces(m, perturbed_init(m, p, 1), tokens,
                               (std::string(bias ? "qwen2-style untied " : "llama gqa tied ") + param_name(p)).c_str());
  }
}

TEST(LatmixFold, Stories260KReproducesTheOriginalLogits) {
  Model m = load_model(data_path(kStories));
  at::Tensor tokens = stories_calib(2, 64);
  for (Param p : {Param::LU, Param::QR})
    expect_folded_reproduces(m, perturbed_init(m, p, 2), tokens, ("stories260K " + param_name(p)).c_str());
  // The training student (same folding, hooks of fold.h) with quantization off: KL about 0.
  EXPECT_LT(distill_kl(m, perturbed_init(m, Param::LU, 3), tokens, Format::None), 1e-7);
}

TEST(LatmixFold, WushInitializationIsExactAndBlockDiagonal) {
  Model m = load_model(data_path(kStories));
  at::Tensor tokens = stories_calib(2, 64);
  for (Param p : {Param::LU, Param::QR}) {
    InitOptions o;
    o.param = p;
    o.init = Init::Wush;
    o.noise = 0;
    LatmixTransforms t = init_latmix(m, o, tokens);
    at::Tensor A = t.t1.matrix();
    EXPECT_EQ(A.slice(0, 0, 32).slice(1, 32, 64).abs().max().item<double>(), 0.0);
    EXPECT_GT(A.slice(0, 0, 32).slice(1, 0, 32).abs().max().item<double>(), 0.0);
    Transformer ref(m);
    LatmixModel lm = apply_latmix(m, t);
    Transformer tr(lm.model);
    ForwardHooks hk = folded_hooks(lm.online, tr, true);
    EXPECT_LT(rel_diff(tr.forward(tokens, &hk), ref.forward(tokens)), 1e-4) << param_name(p);
  }
  EXPECT_THROW(init_latmix(m, InitOptions{Param::LU, Init::Wush}), Error);  // no calibration windows
}

TEST(LatmixIo, SaveLoadRoundTrip) {
  Model m = tiny_model({}, 3);
  for (Param p : {Param::LU, Param::QR}) {
    LatmixTransforms t = perturbed_init(m, p, 4).to(at::kCPU, at::kFloat);
    t.format = Format::MXINT4;
    t.info = {{"steps", 7}};
    std::string path = ::testing::TempDir() + "latmix_io_" + param_name(p) + ".safetensors";
    save_latmix(path, t);
    LatmixTransforms r = load_latmix(path);
    EXPECT_EQ(r.kind, p);
    EXPECT_EQ(r.format, Format::MXINT4);
    EXPECT_EQ(r.info["steps"], 7);
    ASSERT_EQ(r.t2.size(), t.t2.size());
    EXPECT_TRUE(r.t1.matrix().equal(t.t1.matrix()));
    EXPECT_TRUE(r.t2[1].shift.equal(t.t2[1].shift));
  }
  std::string bad = ::testing::TempDir() + "latmix_io_bad.safetensors";
  write_file_atomic(bad, "not a file");
  EXPECT_THROW(load_latmix(bad), Error);
}

// ---- training --------------------------------------------------------------------------------

TEST(LatmixTrain, ScheduleWarmsUpThenDecays) {
  TrainOptions o;
  o.steps = 1000;
  o.lr = 2e-3;
  EXPECT_DOUBLE_EQ(scheduled_lr(o, 0), 2e-3 / 100);
  EXPECT_DOUBLE_EQ(scheduled_lr(o, 99), 2e-3);
  EXPECT_DOUBLE_EQ(scheduled_lr(o, 100), 2e-3);
  EXPECT_NEAR(scheduled_lr(o, 550), 1e-3, 1e-5);  // half way through the cosine
  EXPECT_LT(scheduled_lr(o, 999), 1e-8);
}

TEST(LatmixTrain, ShortRunLowersTheLossAndIsDeterministic) {
  Model m = load_model(data_path(kStories));
  at::Tensor tokens = stories_calib(8, 64);
  InitOptions io;
  io.seed = 7;
  LatmixTransforms init = init_latmix(m, io);
  TrainOptions o;
  o.steps = 20;
  o.lr = 1e-2;
  o.batch_size = 4;
  o.seed = 7;
  o.progress = false;
  TrainResult a = train_latmix(m, tokens, init, o);
  TrainResult b = train_latmix(m, tokens, init, o);
  ASSERT_EQ(a.curve.size(), 20u);
  for (size_t i = 0; i < a.curve.size(); ++i) EXPECT_EQ(a.curve[i].loss, b.curve[i].loss) << "step " << i;
  EXPECT_TRUE(a.transforms.t1.matrix().equal(b.transforms.t1.matrix()));
  // KL at T = 1 on the training windows (measured: 0.1398 -> 0.1265).
  const double before = distill_kl(m, init, tokens, Format::MXFP4);
  const double after = distill_kl(m, a.transforms, tokens, Format::MXFP4);
  EXPECT_LT(after, 0.95 * before) << before << " -> " << after;
  // The trained transforms are still exactly foldable.
  EXPECT_LT(distill_kl(m, a.transforms, tokens.narrow(0, 0, 1), Format::None), 1e-7);
  std::string csv = loss_curve_csv(a.curve), svg = loss_curve_svg(a.curve, "t<1>");
  EXPECT_EQ(std::count(csv.begin(), csv.end(), '\n'), 21);
  EXPECT_EQ(svg.rfind("<svg", 0), 0u);
  EXPECT_NE(svg.find("t&lt;1&gt;"), std::string::npos);
}

// ---- CLI -------------------------------------------------------------------------------------

TEST(LatmixCli, TrainsAndWritesTheOutputs) {
  std::string dir = ::testing::TempDir() + "latmix_cli_out", out, err;
  int rc = run_wush("-q latmix --model " + data_path(kStories) + " --calib " + data_path("text/tinystories_calib.txt") +
                       " --steps 3 --nsamples 4 --seqlen 32 --batch-size 2 --eval-windows 2 --param qr --out " + dir +
                       " --force",
                   &out, &err);
  ASSERT_EQ(rc, 0) << err;
  LatmixTransforms t = load_latmix(dir + "/transforms.safetensors");
  EXPECT_EQ(t.kind, Param::QR);
  EXPECT_EQ(t.t2.size(), 5u);
  EXPECT_EQ(t.info["init"], "orthogonal");
  std::string csv = read_file(dir + "/loss.csv");
  EXPECT_EQ(std::count(csv.begin(), csv.end(), '\n'), 4);
  EXPECT_TRUE(path_exists(dir + "/loss.svg") && path_exists(dir + "/summary.json"));
  EXPECT_NE(out.find("latmix: 3 steps"), std::string::npos) << out;

  rc = run_wush("latmix --model " + data_path(kStories) + " --calib " + data_path("text/tinystories_calib.txt") +
                   " --param svd --out " + dir + "_bad",
               &out, &err);
  EXPECT_EQ(rc, 1);
  EXPECT_NE(err.find("parameterization 'svd' is not known (valid: lu, qr)"), std::string::npos) << err;
}

// The differentiable ATen MX rules used in training equal the formats library bit for bit.
TEST(Latmix, SteFakeQuantEqualsFormatsLibrary) {
  at::Generator g = at::detail::createCPUGenerator(21);
  at::Tensor x = at::randn({64, 256}, g, at::kFloat) * at::exp(at::randn({64, 1}, g, at::kFloat) * 2);
  x.index_put_({3, 17}, 40.0f);
  x.index_put_({5}, 0.0f);
  for (wush::Format f : {wush::Format::MXFP4, wush::Format::MXINT4}) {
    at::Tensor a = wush::latmix::mx_fake_quant(x, f, 32);
    at::Tensor b = wush::fake_quantize(x, f);
    EXPECT_TRUE(at::equal(a, b)) << wush::format_name(f) << " max diff " << (a - b).abs().max().item<double>();
  }
}

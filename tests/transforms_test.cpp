// Block transforms (REFERENCE.md §2, §9): Hadamard order, exact inverse pairing of every
// transform, the WUSH balance identities with damping off, wus vs wush, Haar randomness,
// canonical signs, padding, checks and serialization.
#include <gtest/gtest.h>


#include "core/error.h"
#include "core/paths.h"
#include "transforms/block_linalg.h"
#include "transforms/hadamard.h"
#include "transforms/random_transform.h"
#include "transforms/transform_registry.h"
#include "transforms/wush_block.h"
#include "transform_test_util.h"

using namespace wush;
using wush::testing::rel_err;
using wush::testing::synthetic_layer;

namespace {

at::Tensor mT(const at::Tensor& x) { return x.transpose(-2, -1); }

std::unique_ptr<Transform> fitted(const std::string& name, const wush::testing::SyntheticLayer& L,
                                  int64_t G, bool damp = true, bool round = true,
                                  uint64_t seed = 7) {
  FitInput in;
  in.H = L.H;
  in.W = L.W;
  in.x_absmax = L.X.abs().amax(0);
  in.group = G;
  in.seed = seed;
  in.damp = damp;
  in.round_bf16 = round;
  in.layer = "test.layer";
  auto t = make_transform(name);
  t->fit(in);
  return t;
}

// Off-diagonal mass of D relative to its diagonal.
double offdiag_rel(const at::Tensor& D) {
  at::Tensor off = D - at::diag_embed(D.diagonal(0, -2, -1));
  return off.abs().max().item<double>() / D.diagonal(0, -2, -1).abs().max().item<double>();
}

// Relative spread of each matrix's diagonal: (max - min) / mean, worst over the batch.
double diag_spread(const at::Tensor& M) {
  at::Tensor d = M.diagonal(0, -2, -1);
  return ((d.amax(-1) - d.amin(-1)) / d.mean(-1)).max().item<double>();
}

std::string error_of(const std::function<void()>& f) {
  try {
    f();
  } catch (const Error& e) {
    return e.what();
  }
  return "";
}

}  // namespace

TEST(Hadamard, OrthonormalAndSymmetric) {
  for (int64_t G : {16, 32, 64, 128}) {
    at::Tensor h = hadamard_matrix(G);
    EXPECT_LT((at::mm(h, h.t()) - at::eye(G, at::kDouble)).abs().max().item<double>(), 1e-14) << G;
    EXPECT_TRUE(at::equal(h, h.t())) << G;
    EXPECT_TRUE(at::allclose(h.abs(), at::full({G, G}, 1.0 / std::sqrt(double(G)), at::kDouble)));
  }
}

TEST(Hadamard, ScipySylvesterOrderG4) {
  // scipy.linalg.hadamard(4) / 2
  const double e[4][4] = {{1, 1, 1, 1}, {1, -1, 1, -1}, {1, 1, -1, -1}, {1, -1, -1, 1}};
  at::Tensor h = hadamard_matrix(4);
  for (int i = 0; i < 4; ++i)
    for (int k = 0; k < 4; ++k) EXPECT_EQ(h[i][k].item<double>(), e[i][k] / 2) << i << "," << k;
  EXPECT_THROW(hadamard_matrix(24), Error);
}

// (W T^{-1})(T x) == W x and T^{-1}(T x) == x, for every transform, with and without the bf16
// rounding (the weight side always uses the rounded matrices) and with padding (C = 80, G = 32).
TEST(Transforms, ExactInversePairing) {
  for (int64_t C : {96, 80}) {
    auto L = synthetic_layer(512, C, 64, 1);
    at::Tensor x = L.X.narrow(0, 0, 40).reshape({4, 10, C});
    at::Tensor y = at::matmul(x, L.W.t());
    for (const auto& info : all_transforms())
      for (bool round : {false, true}) {
        auto t = fitted(info.name, L, 32, /*damp=*/true, round);
        at::Tensor xt = t->apply(x);
        ASSERT_EQ(xt.sizes(), (std::vector<int64_t>{4, 10, 96})) << info.name;
        at::Tensor Wt = t->weight_side(L.W);
        ASSERT_EQ(Wt.sizes(), (std::vector<int64_t>{64, 96}));
        EXPECT_LT(rel_err(at::matmul(xt, Wt.t()), y), 1e-10) << info.name << " C=" << C;
        EXPECT_LT(rel_err(t->inverse(xt), x), 1e-10) << info.name << " C=" << C;
        // each block of x~ is T_j x_j (blocks() is what runs online)
        at::Tensor b1 = at::mv(t->blocks()[1], x[2][3].narrow(0, 32, 32));
        EXPECT_LT(rel_err(xt[2][3].narrow(0, 32, 32), b1), 1e-12) << info.name;
      }
  }
}

TEST(Transforms, Fp32ApplyKeepsDtype) {
  auto L = synthetic_layer(256, 64, 48, 2);
  auto t = fitted("wush", L, 32);
  at::Tensor x = L.X.narrow(0, 0, 8).to(at::kFloat);
  at::Tensor xt = t->apply(x);
  EXPECT_EQ(xt.scalar_type(), at::kFloat);
  EXPECT_LT(rel_err(xt.to(at::kDouble), t->apply(x.to(at::kDouble))), 1e-5);
}

// §2 checks with damping off and no rounding: both transformed second moments of a block equal
// Had diag(s) Had^T, s from an independent SVD (wush: of U_jj W_j^T / sqrt(R), descending;
// wush-local: of W_j Lx / sqrt(R) with H_jj = Lx Lx^T, ascending), so their diagonals are constant.
TEST(Transforms, WushBalancesActivationAndWeightMoments) {
  const int64_t C = 96, R = 80, G = 32, nb = C / G;
  auto L = synthetic_layer(2048, C, R, 3);
  const at::Tensor had = hadamard_matrix(G);
  const at::Tensor Wt = column_blocks_t(L.W, G);  // [nb, G, R]
  for (std::string name : {"wush", "wush-local"}) {
    auto t = fitted(name, L, G, /*damp=*/false, /*round=*/false);
    const at::Tensor T = t->blocks();
    at::Tensor act_moment, s;
    if (name == "wush") {
      at::Tensor Ujj = diagonal_blocks(mT(at::linalg_cholesky(L.H)), G);  // Schur factors
      act_moment = at::matmul(at::matmul(T, at::matmul(mT(Ujj), Ujj)), mT(T));
      s = at::linalg_svdvals(at::matmul(Ujj, Wt)) / std::sqrt(double(R));  // descending
    } else {
      at::Tensor Hjj = diagonal_blocks(L.H, G);
      act_moment = at::matmul(at::matmul(T, Hjj), mT(T));
      at::Tensor Lx = at::linalg_cholesky(Hjj);
      s = std::get<0>(at::sort(at::linalg_svdvals(at::matmul(mT(Wt), Lx)), -1)) /
          std::sqrt(double(R));  // ascending
    }
    at::Tensor Wtil = t->weight_side(L.W);
    at::Tensor Wtb = column_blocks_t(Wtil, G);
    at::Tensor w_moment = at::matmul(Wtb, mT(Wtb)) / double(R);
    for (const at::Tensor& M : {act_moment, w_moment}) {
      EXPECT_LT(diag_spread(M), 1e-8) << name;
      at::Tensor D = at::matmul(at::matmul(had, M), had);  // Had^T M Had (Had symmetric)
      EXPECT_LT(offdiag_rel(D), 1e-8) << name;
      EXPECT_LT(rel_err(D.diagonal(0, -2, -1), s), 1e-8) << name;
    }
    EXPECT_EQ(T.size(0), nb);
  }
}

TEST(Transforms, WusIsWushWithoutHadamard) {
  auto L = synthetic_layer(512, 96, 64, 4);
  for (bool damp : {false, true}) {
    auto wush = fitted("wush", L, 32, damp, /*round=*/false);
    auto wus = fitted("wus", L, 32, damp, /*round=*/false);
    at::Tensor had_wus = at::matmul(hadamard_matrix(32), wus->blocks());
    EXPECT_LT(rel_err(wush->blocks(), had_wus), 1e-12);
    EXPECT_GT(rel_err(wush->blocks(), wus->blocks()), 0.1);
  }
}

// wush_block's QR reduction equals the direct formula Had diag(s)^{1/2} V^T U^{-T} with the SVD
// of the full G x R target (explicit inverse here, as an independent reference).
TEST(Transforms, WushBlockEqualsDirectFormula) {
  const int64_t G = 16, R = 200;
  auto L = synthetic_layer(1024, 2 * G, R, 5);
  at::Tensor Ujj = diagonal_blocks(mT(at::linalg_cholesky(damp(L.H))), G);
  at::Tensor Y = at::matmul(Ujj, column_blocks_t(L.W, G));
  WushBlockOptions opt;
  opt.round_bf16 = false;
  at::Tensor T = wush_block(Ujj, Y, opt);
  auto [V, s, Vh] = at::linalg_svd(Y, false);
  V = canonical_signs(V);
  s = s / std::sqrt(double(R));
  s = s + 0.01 * s.mean(-1, true);
  at::Tensor ref = at::matmul(at::matmul(hadamard_matrix(G) * s.sqrt().unsqueeze(-2), mT(V)),
                              mT(at::linalg_inv(Ujj)));
  EXPECT_LT(rel_err(T, ref), 1e-10);
  // rounding: exactly bf16-representable
  opt.round_bf16 = true;
  at::Tensor Tb = wush_block(Ujj, Y, opt);
  EXPECT_TRUE(at::equal(Tb, Tb.to(at::kBFloat16).to(at::kDouble)));
  EXPECT_LT(rel_err(Tb, T), 1e-2);
}

// The per-block free functions reproduce the whole-layer fits block by block (the GPTQ entry
// points), single [G, G] blocks included; bit for bit on the CPU (same LAPACK call per matrix).
TEST(Transforms, BlockFunctionsMatchLayerFits) {
  const int64_t G = 32, R = 64;
  auto L = synthetic_layer(512, 96, R, 15);
  auto wl = fitted("wush-local", L, G);
  auto wu = fitted("wush", L, G);
  at::Tensor U = damped_upper_cholesky(L.H, true, "t");
  for (int64_t j = 0; j < 3; ++j) {
    at::Tensor Wj = L.W.narrow(1, j * G, G);
    at::Tensor Hjj = L.H.narrow(0, j * G, G).narrow(1, j * G, G);
    EXPECT_TRUE(at::equal(wush_local_block_from_weight(Wj, Hjj), wl->blocks()[j])) << j;
    at::Tensor Ujj = U.narrow(0, j * G, G).narrow(1, j * G, G);
    at::Tensor T = wush_block(Ujj, at::matmul(Ujj, Wj.t()));
    EXPECT_TRUE(at::equal(T, wu->blocks()[j])) << j;
  }
}

TEST(Transforms, CanonicalSigns) {
  at::Tensor V = std::get<0>(at::linalg_qr(at::randn({5, 8, 8}, at::kDouble)));
  at::Tensor flips = at::where(at::randn({5, 1, 8}, at::kDouble) < 0, -1.0, 1.0).to(at::kDouble);
  at::Tensor c = canonical_signs(V);
  EXPECT_TRUE(at::equal(canonical_signs(V * flips), c));
  at::Tensor lead = c.gather(-2, c.abs().argmax(-2, true));
  EXPECT_TRUE((lead > 0).all().item<bool>());
}

TEST(Transforms, RandomIsOrthogonalAndSeeded) {
  auto L = synthetic_layer(64, 96, 32, 6);
  auto a = fitted("random", L, 32, true, /*round=*/false, /*seed=*/11);
  auto b = fitted("random", L, 32, true, false, 11);
  auto c = fitted("random", L, 32, true, false, 12);
  EXPECT_TRUE(at::equal(a->blocks(), b->blocks()));
  EXPECT_GT((a->blocks() - c->blocks()).abs().max().item<double>(), 0.1);
  EXPECT_EQ(a->seed(), 11u);
  at::Tensor QQt = at::matmul(a->blocks(), mT(a->blocks()));
  EXPECT_LT((QQt - at::eye(32, at::kDouble)).abs().max().item<double>(), 1e-13);
  // the three blocks differ from each other
  EXPECT_GT((a->blocks()[0] - a->blocks()[1]).abs().max().item<double>(), 0.1);
}

// Haar: E[Q_ii] = 0 for every i (QR without the sign(diag R) correction gives Q_00 < 0 always
// with LAPACK's Householder QR), det = +1 and -1 equally often, E[Q_ik^2] = 1/G.
TEST(Transforms, RandomIsHaar) {
  const int64_t n = 4000, G = 4;
  at::Tensor Q = haar_orthogonal(n, G, 123);
  at::Tensor diag_sign = at::sign(Q.diagonal(0, -2, -1));  // [n, G]
  for (int64_t i = 0; i < G; ++i)
    EXPECT_LT(std::abs(diag_sign.select(1, i).mean().item<double>()), 0.06) << i;  // sd 0.016
  double pos_det = (at::linalg_det(Q) > 0).to(at::kDouble).mean().item<double>();
  EXPECT_NEAR(pos_det, 0.5, 0.03);  // sd 0.008
  EXPECT_LT((Q.pow(2).mean(0) - 1.0 / G).abs().max().item<double>(), 0.02);
}

TEST(Transforms, SmoothQuantMatchesFormula) {
  auto L = synthetic_layer(256, 64, 48, 8);
  auto t = fitted("smoothquant", L, 32, true, /*round=*/false);
  at::Tensor ax = L.X.abs().amax(0), aw = L.W.abs().amax(0);
  at::Tensor s = ax.sqrt() / aw.sqrt();  // a = 0.5
  at::Tensor diag = t->blocks().diagonal(0, -2, -1).reshape({64});
  EXPECT_LT(rel_err(diag, 1.0 / s), 1e-14);
  EXPECT_LT(offdiag_rel(t->blocks()), 1e-300);
}

TEST(Transforms, IdentityAndHadamardBlocks) {
  FitInput in;
  in.channels = 40;
  in.group = 16;
  auto id = make_transform("identity");
  id->fit(in);
  EXPECT_EQ(id->padded_channels(), 48);
  EXPECT_TRUE(at::equal(id->blocks(), at::eye(16, at::kDouble).expand({3, 16, 16})));
  auto h = make_transform("hadamard");
  in.round_bf16 = false;
  h->fit(in);
  EXPECT_TRUE(at::equal(h->blocks()[2], hadamard_matrix(16)));
  at::Tensor x = at::randn({5, 40}, at::kDouble);
  at::Tensor xt = id->apply(x);
  EXPECT_TRUE(at::equal(xt.narrow(1, 0, 40), x));
  EXPECT_TRUE(at::equal(xt.narrow(1, 40, 8), at::zeros({5, 8}, at::kDouble)));
}

// Padding with damping off still fits (padded diagonal = 1% of the mean real diagonal), and the
// padded channels of x~ for wush/wush-local are driven by real channels only through T.
TEST(Transforms, PaddingWithoutDamping) {
  auto L = synthetic_layer(1024, 80, 64, 9);
  for (std::string name : {"wush", "wush-local", "wus"}) {
    auto t = fitted(name, L, 32, /*damp=*/false, /*round=*/true);
    EXPECT_EQ(t->padded_channels(), 96);
    at::Tensor x = L.X.narrow(0, 0, 16);
    EXPECT_LT(rel_err(at::matmul(t->apply(x), t->weight_side(L.W).t()), at::matmul(x, L.W.t())),
              1e-10)
        << name;
  }
}

TEST(Transforms, CholeskyRetriesOnSingularH) {
  // N = 16 tokens < C = 64: H has rank 16, so the undamped factorization needs the retries.
  auto L = synthetic_layer(16, 64, 64, 10);
  at::Tensor U = damped_upper_cholesky(L.H, /*damp=*/false, "t");
  EXPECT_TRUE(at::equal(U, U.triu()));
  at::Tensor added = at::matmul(mT(U), U) - L.H;  // k * 1% mean(diag) * I, k >= 1
  const double step = 0.01 * L.H.diagonal().mean().item<double>();
  const double k = added.diagonal().mean().item<double>() / step;
  EXPECT_GE(k, 0.999);
  EXPECT_NEAR(k, std::round(k), 1e-6);
  EXPECT_LT(offdiag_rel(added), 1e-9);
  EXPECT_THROW(damped_upper_cholesky(at::zeros({4, 4}, at::kDouble), true, "t"), Error);
}

TEST(Transforms, ChecksNameLayerAndRule) {
  auto L = synthetic_layer(256, 64, 16, 11);  // R = 16 < G = 32
  std::string e = error_of([&] { fitted("wush", L, 32); });
  EXPECT_NE(e.find("R >= G"), std::string::npos) << e;
  EXPECT_NE(e.find("wush-local"), std::string::npos) << e;
  EXPECT_NE(e.find("test.layer"), std::string::npos) << e;
  EXPECT_NO_THROW(fitted("wush-local", L, 32));  // damped Gram: any R

  auto bad = synthetic_layer(256, 64, 48, 12);
  bad.H[3][5] = NAN;
  e = error_of([&] { fitted("wush", bad, 32); });
  EXPECT_NE(e.find("test.layer"), std::string::npos) << e;
  EXPECT_NE(e.find("H (activation second moment) contains NaN or Inf"), std::string::npos) << e;
  bad = synthetic_layer(256, 64, 48, 12);
  bad.W[1][2] = INFINITY;
  e = error_of([&] { fitted("wush-local", bad, 32); });
  EXPECT_NE(e.find("W (weight) contains NaN or Inf"), std::string::npos) << e;

  auto t = make_transform("hadamard");
  e = error_of([&] { t->apply(at::zeros({2, 32}, at::kDouble)); });
  EXPECT_NE(e.find("before fit"), std::string::npos) << e;
  e = error_of([&] { make_transform("wush2"); });
  EXPECT_NE(e.find("unknown transform 'wush2' (valid: identity, hadamard"), std::string::npos) << e;
  FitInput in;
  in.W = L.W;
  in.group = 32;
  e = error_of([&] { make_transform("wush")->fit(in); });
  EXPECT_NE(e.find("needs the activation second moment H"), std::string::npos) << e;
  auto h = fitted("hadamard", L, 32);
  e = error_of([&] { h->apply(at::zeros({2, 65}, at::kDouble)); });
  EXPECT_NE(e.find("expected C = 64"), std::string::npos) << e;
}

TEST(Transforms, SerializeRoundTrip) {
  auto L = synthetic_layer(256, 80, 48, 13);
  at::Tensor x = L.X.narrow(0, 0, 4);
  for (const auto& info : all_transforms()) {
    auto t = fitted(info.name, L, 32, true, true, /*seed=*/987654321987ull);
    std::string bytes = t->serialize();
    auto u = Transform::deserialize(bytes);
    EXPECT_EQ(u->name(), info.name);
    EXPECT_EQ(u->channels(), 80);
    EXPECT_EQ(u->group(), 32);
    EXPECT_EQ(u->seed(), 987654321987ull);
    EXPECT_TRUE(at::equal(u->blocks(), t->blocks())) << info.name;
    EXPECT_TRUE(at::equal(u->apply(x), t->apply(x))) << info.name;
    EXPECT_THROW(Transform::deserialize(bytes.substr(0, bytes.size() - 8)), Error);
  }
  auto t = fitted("wush", L, 32);
  std::string path = wush::path_join(wush::temp_dir(), "wush_transform_test.st");
  t->save(path);
  auto u = Transform::load(path);
  EXPECT_TRUE(at::equal(u->blocks(), t->blocks()));
  wush::remove_file(path);
  std::string bytes = t->serialize();
  bytes.replace(bytes.find("wush-transform"), 14, "wush-transfoRm");
  std::string e = error_of([&] { Transform::deserialize(bytes, "f.st"); });
  EXPECT_NE(e.find("f.st: not a wush transform"), std::string::npos) << e;
}

// CPU and CUDA fits agree (canonical signs make eigen/singular vectors device-independent).
TEST(Transforms, CudaMatchesCpu) {
  if (!at::hasCUDA()) GTEST_SKIP() << "no CUDA device";
  auto L = synthetic_layer(1024, 128, 96, 14);
  for (std::string name : {"wush", "wush-local", "wus", "smoothquant"}) {
    auto cpu = fitted(name, L, 32, true, /*round=*/false);
    FitInput in;
    in.H = L.H.cuda();
    in.W = L.W.cuda();
    in.x_absmax = L.X.abs().amax(0).cuda();
    in.group = 32;
    in.round_bf16 = false;
    auto gpu = make_transform(name);
    gpu->fit(in);
    EXPECT_LT(rel_err(gpu->blocks().cpu(), cpu->blocks()), 1e-9) << name;
    at::Tensor x = L.X.narrow(0, 0, 8);
    EXPECT_LT(rel_err(gpu->apply(x.cuda()).cpu(), cpu->apply(x)), 1e-9) << name;
  }
}

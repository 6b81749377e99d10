// wush layer-loss and src/pipeline/layer_loss.h (REFERENCE.md §6 per-layer loss, §2 transforms):
// the identity loss equals a float64 recomputation with wush::fake_quantize on the model's own
// block inputs; wush beats hadamard on a correlated heavy-tailed layer; the random transform is a
// seed average; --all-blocks agrees with --block runs; bad names are clear CLI errors.
#include <gtest/gtest.h>

#include <nlohmann/json.hpp>

#include "core/atomic_file.h"
#include "formats/format.h"
#include "model/forward.h"
#include "model/tokenizer.h"
#include "pipeline/calibration.h"
#include "pipeline/layer_loss.h"
#include "pipeline/quantize_linear.h"
#include "runtime_test_util.h"
#include "transform_test_util.h"

using namespace wush;
using wush::testing::data_path;
using wush::testing::run_cli;

namespace {

const std::string kStories = "models/stories260K.bin";
const std::string kCalibArgs = " --calib " + data_path("text/tinystories_calib.txt") + " --nsamples 2 --seqlen 64";

nlohmann::json run_json(const std::string& args, const std::string& tag) {
  std::string js = ::testing::TempDir() + "layer_loss_" + tag + "_" + std::to_string(getpid()) + ".json";
  std::string out, err;
  EXPECT_EQ(run_cli("-q --threads 1 layer-loss --model " + data_path(kStories) + kCalibArgs + " " + args + " --json " + js,
                    &out, &err),
            0)
      << err;
  return nlohmann::json::parse(read_file(js));
}

// The raw input of linear `i` of `layer` in stories260K on the same calibration windows,
// captured with an observer of our own.
at::Tensor stories_input(const Model& m, int64_t layer, int i) {
  auto tok = load_tokenizer(m.tokenizer_path);
  CalibrationOptions o;
  o.nsamples = 2;
  o.seqlen = 64;
  at::Tensor tokens = load_calibration(*tok, data_path("text/tinystories_calib.txt"), o).tokens;
  Transformer tf(m);
  at::Tensor X;
  ForwardHooks hk;
  hk.on_linear_input = [&](const std::string& name, const at::Tensor& x) {
    if (name == linear_prefix(layer, i)) X = x.reshape({-1, x.size(-1)}).clone();
  };
  tf.forward(tokens, &hk);
  return X;
}

// ||X W^T - FQ(X) FQ(W)^T||^2 / numel in float64 (identity transform, no bias in stories260K).
double identity_loss_f64(const at::Tensor& X, const at::Tensor& W, Format f) {
  at::Tensor y = at::mm(X.to(at::kDouble), W.to(at::kDouble).t());
  at::Tensor xq = fake_quantize(X.to(at::kFloat), f).to(at::kDouble);
  at::Tensor wq = fake_quantize(W.to(at::kFloat), f).to(at::kDouble);
  return (y - at::mm(xq, wq.t())).pow(2).mean().item<double>();
}

// A one-linear "model" whose q_proj of block 0 sees the synthetic correlated heavy-tailed inputs.
struct SyntheticBlock {
  Model m;
  BlockInputs in;
};

SyntheticBlock synthetic_block(int64_t N, int64_t C, int64_t R, uint64_t seed) {
  auto L = wush::testing::synthetic_layer(N, C, R, seed);
  SyntheticBlock s;
  s.m.weights[linear_prefix(0, 0) + ".weight"] = L.W.to(at::kFloat);
  s.in.layer = 0;
  for (int i = 0; i < 7; ++i) s.in.source[size_t(i)] = 0;
  s.in.X.fill(L.X.to(at::kFloat));
  s.in.stats.add(linear_prefix(0, 0), s.in.X[0]);
  return s;
}

}  // namespace

TEST(LayerLoss, IdentityMatchesFloat64FakeQuantize) {
  nlohmann::json j = run_json("--block 1 --formats mxfp4,int4 --transforms identity", "identity");
  Model m = load_model(data_path(kStories));
  for (int i : {0, 6}) {  // q (C = 64, two groups) and down (C = 172, padded)
    at::Tensor X = stories_input(m, 1, i);
    at::Tensor W = m.weight(linear_prefix(1, i) + ".weight");
    for (Format f : {Format::MXFP4, Format::INT4}) {
      double want = identity_loss_f64(X, W, f);
      double got = j["loss"][format_name(f)]["identity"][kLinearShort[i]].get<double>();
      EXPECT_GT(want, 0);
      EXPECT_NEAR(got, want, 1e-5 * want) << format_name(f) << " " << kLinearShort[i];
    }
  }
  EXPECT_EQ(j["block"].get<int>(), 1);
  EXPECT_EQ(j["calibration"]["nsamples"].get<int>(), 2);
}

TEST(LayerLoss, WushBeatsHadamardOnCorrelatedHeavyTailedLayer) {
  SyntheticBlock s = synthetic_block(2048, 128, 128, 31);
  for (Format f : {Format::MXFP4, Format::INT4}) {
    double had = linear_layer_loss(s.m, 0, 0, s.in, "hadamard", f, 1);
    double wush = linear_layer_loss(s.m, 0, 0, s.in, "wush", f, 1);
    double local = linear_layer_loss(s.m, 0, 0, s.in, "wush-local", f, 1);
    double ident = linear_layer_loss(s.m, 0, 0, s.in, "identity", f, 1);
    EXPECT_LT(wush, had) << format_name(f);
    EXPECT_LT(local, had) << format_name(f);
    EXPECT_LT(had, ident) << format_name(f);
  }
}

TEST(LayerLoss, RandomIsTheMeanOverSeeds) {
  SyntheticBlock s = synthetic_block(512, 64, 64, 5);
  const double avg = linear_layer_loss(s.m, 0, 0, s.in, "random", Format::MXFP4, 10);
  // Independent: quantize_linear with each seed, loss on X, averaged here.
  LinearQuantInput li;
  li.name = linear_prefix(0, 0);
  li.W = s.m.weight(li.name + ".weight");
  li.stats = &s.in.stats_of(0);
  std::vector<double> each;
  double sum = 0;
  for (uint64_t k = 0; k < 10; ++k) {
    li.seed = k * 1000003ull;
    each.push_back(layer_loss(quantize_linear(li, parse_recipe("random:mxfp4:rtn")), li.W, li.bias, s.in.X[0]));
    sum += each.back();
  }
  EXPECT_NEAR(avg, sum / 10, 1e-12 * avg);
  EXPECT_NE(each[0], each[1]);  // seeds give different rotations
  const double one = linear_layer_loss(s.m, 0, 0, s.in, "random", Format::MXFP4, 1);
  EXPECT_DOUBLE_EQ(one, each[0]);
  EXPECT_GT(std::abs(avg - one), 1e-4 * avg);
}

TEST(LayerLoss, AllBlocksAgreesWithSingleBlockRunsAndAverages) {
  const std::string sel = "--formats nvfp4 --transforms identity,hadamard,wus";
  nlohmann::json all = run_json("--all-blocks " + sel, "all");
  nlohmann::json b2 = run_json("--block 2 " + sel, "b2");
  ASSERT_EQ(all["blocks"].size(), 5u);  // stories260K has 5 blocks
  for (const char* tr : {"identity", "hadamard", "wus"})
    for (int i = 0; i < 7; ++i) {
      const char* lin = kLinearShort[i];
      EXPECT_DOUBLE_EQ(all["blocks"]["2"]["nvfp4"][tr][lin].get<double>(), b2["loss"]["nvfp4"][tr][lin].get<double>());
      double mean = 0;
      for (auto& [b, t] : all["blocks"].items()) mean += t["nvfp4"][tr][lin].get<double>() / 5;
      EXPECT_NEAR(all["loss"]["nvfp4"][tr][lin].get<double>(), mean, 1e-12 * mean) << tr << " " << lin;
    }
  EXPECT_EQ(all["padding"].size(), 1u);  // down: 172 -> 176 for G = 16
}

TEST(LayerLoss, CliRejectsBadNames) {
  struct Case {
    std::string args, expect;
  };
  const std::vector<Case> cases = {
      {"--formats mxfp5", "--formats: unknown or ungrouped format 'mxfp5'"},
      {"--formats int8", "'int8'"},
      {"--transforms identity,wush2", "--transforms: unknown transform 'wush2'"},
      {"--block 9", "--block 9"},
  };
  for (const Case& c : cases) {
    std::string out, err;
    EXPECT_EQ(run_cli("-q --threads 1 layer-loss --model " + data_path(kStories) + kCalibArgs + " " + c.args, &out, &err), 1)
        << c.args;
    EXPECT_NE(err.find(c.expect), std::string::npos) << c.args << ": " << err;
  }
  std::string out, err;
  EXPECT_NE(run_cli("layer-loss --model " + data_path(kStories) + " --block 0 --all-blocks" + kCalibArgs, &out, &err), 0);
}

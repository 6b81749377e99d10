// The quantization pipeline (REFERENCE.md §3-§4, §8): every method reproduces the model with format
// "none"; a saved and reloaded checkpoint gives bit-identical logits; GPTQ beats RTN on a layer;
// GPTQ-WUSH with its error feedback off equals RTN-WUSH; bad inputs are clear errors.
#include <gtest/gtest.h>


#include "core/atomic_file.h"
#include "core/error.h"
#include "core/paths.h"
#include "model/safetensors.h"
#include "model/tokenizer.h"
#include "pipeline/calibration.h"
#include "pipeline/checkpoint.h"
#include "pipeline/quantize_linear.h"
#include "pipeline/quantize_model.h"
#include "quant/calib_stats.h"
#include "quant/gptq_wush.h"
#include "runtime_test_util.h"
#include "transforms/block_linalg.h"
#include "transforms/wush_block.h"

using wush::testing::data_path;

namespace {

const wush::Model& stories() {
  static wush::Model m = wush::load_model(data_path("models/stories260K.bin"));
  return m;
}

// Calibration windows from the model's own vocabulary: a fixed pseudo-random token stream.
at::Tensor calib_tokens(int64_t n, int64_t len, uint64_t seed) {
  at::Generator g = at::detail::createCPUGenerator(seed);
  at::Tensor t = at::randint(3, 512, {n, len}, g, at::kLong);
  t.select(1, 0).fill_(1);
  return t;
}

at::Tensor eval_tokens() { return calib_tokens(2, 96, 99); }

double rel_diff(const at::Tensor& a, const at::Tensor& b) {
  return ((a - b).abs().max() / b.abs().max()).item<double>();
}

}  // namespace

TEST(Pipeline, FormatNoneReproducesTheModelForEveryMethod) {
  const wush::Model& m = stories();
  at::Tensor ref = wush::Transformer(m).forward(eval_tokens());
  at::Tensor calib = calib_tokens(4, 128, 5);
  for (const char* t : {"identity", "hadamard", "random", "smoothquant", "wus", "wush", "wush-local"})
    for (const char* w : {"rtn", "gptq"}) {
      wush::QuantizeOptions o;
      o.recipe = wush::parse_recipe(std::string(t) + ":none:" + w);
      wush::QuantizedModel qm = wush::quantize_model(m, calib, o);
      at::Tensor got = qm.transformer().forward(eval_tokens());
      EXPECT_LT(rel_diff(got, ref), 1e-5) << o.recipe.to_string();
    }
}

TEST(Pipeline, SavedCheckpointGivesIdenticalLogits) {
  const wush::Model& m = stories();
  at::Tensor calib = calib_tokens(4, 128, 6);
  std::string dir = wush::path_join(wush::temp_dir(), "wush_ckpt_test_" + std::to_string(getpid()));
  wush::remove_tree(dir);
  for (const char* r : {"wush:mxfp4:gptq", "wush-local:mxfp4:gptq", "hadamard:nvfp4:rtn", "identity:int4:gptq",
                        "random:mxint4:rtn", "smoothquant:mxfp4-ocp:rtn:w4a16"}) {
    wush::QuantizeOptions o;
    o.recipe = wush::parse_recipe(r);
    wush::QuantizedModel qm = wush::quantize_model(m, calib, o);
    at::Tensor a = qm.transformer().forward(eval_tokens());
    wush::CheckpointOptions co;
    co.force = true;
    co.always_index = true;  // exercise shards + index
    wush::save_quantized(qm, dir, co);
    ASSERT_TRUE(wush::is_quantized_checkpoint(dir));
    wush::QuantizedModel back = wush::load_quantized(dir);
    EXPECT_EQ(back.recipe, qm.recipe) << r;
    at::Tensor b = back.transformer().forward(eval_tokens());
    EXPECT_EQ((a - b).abs().max().item<double>(), 0.0) << r;
    // And the W4A4 model is really quantized: its logits differ from full precision.
    EXPECT_GT(rel_diff(a, wush::Transformer(m).forward(eval_tokens())), 1e-3) << r;
  }
  wush::remove_tree(dir);
}

TEST(Pipeline, CheckpointTensorsFollowTheReferenceLayout) {
  const wush::Model& m = stories();
  wush::QuantizeOptions o;
  o.recipe = wush::parse_recipe("hadamard:mxfp4:rtn");
  wush::QuantizedModel qm = wush::quantize_model(m, at::Tensor(), o);
  std::string dir = wush::path_join(wush::temp_dir(), "wush_layout_test_" + std::to_string(getpid()));
  wush::CheckpointOptions co;
  co.force = true;
  wush::save_quantized(qm, dir, co);
  std::map<std::string, std::string> meta;
  auto t = wush::read_safetensors(wush::path_join(dir, "model.safetensors"), &meta);
  EXPECT_EQ(meta["format"], "pt");
  const std::string p = "model.layers.1.self_attn.q_proj";
  EXPECT_FALSE(t.count(p + ".weight"));
  EXPECT_EQ(t.at(p + ".e2m1").dtype, "U8");
  EXPECT_EQ(t.at(p + ".e2m1").shape(), (std::vector<int64_t>{64, 32}));
  EXPECT_EQ(t.at(p + ".scale_quant").dtype, "F8_E8M0");
  EXPECT_EQ(t.at(p + ".scale_quant").shape(), (std::vector<int64_t>{64, 2}));
  EXPECT_EQ(t.at(p + ".transform").dtype, "BF16");
  EXPECT_EQ(t.at(p + ".transform").shape(), (std::vector<int64_t>{2, 32, 32}));
  EXPECT_EQ(t.at(p + ".weight_global_scale").shape(), std::vector<int64_t>{});
  EXPECT_FLOAT_EQ(t.at(p + ".weight_global_scale").data.item<float>(), 1.0f / 3.0f);
  EXPECT_FLOAT_EQ(t.at(p + ".activation_scale_scale").data.item<float>(), 4.0f);
  // down_proj's 172 inputs are padded to 192 and the true width recorded.
  const std::string d = "model.layers.0.mlp.down_proj";
  EXPECT_EQ(t.at(d + ".e2m1").shape(), (std::vector<int64_t>{64, 96}));
  EXPECT_EQ(t.at(d + ".in_features").data.item<int64_t>(), 172);
  // Decode one weight from the layout's definition alone: E2M1(code) * 2^(e-127) * (1/3).
  const float e2m1[8] = {0, 0.5, 1, 1.5, 2, 3, 4, 6};
  uint8_t c = t.at(p + ".e2m1").data[3][5].item<uint8_t>();
  uint8_t e = t.at(p + ".scale_quant").data[3][0].item<uint8_t>();
  float lo = (c & 8 ? -1 : 1) * e2m1[c & 7] * std::ldexp(1.0f, int(e) - 127) / 3.0f;
  EXPECT_EQ(lo, qm.linears->at(p).dense[3][10].item<float>());
  auto cfg = nlohmann::json::parse(wush::read_file(wush::path_join(dir, "config.json")));
  EXPECT_EQ(cfg["quantization_config"]["quant_method"], "wush");
  EXPECT_EQ(cfg["quantization_config"]["recipe"], "hadamard:mxfp4:rtn");
  wush::remove_tree(dir);
}

// Regression (86db7db): q/k/v and gate/up share one input, recorded once. Detecting "the same input"
// by data pointer let gate/up's input, allocated where o_proj's freed input had been, pass for
// o_proj's: gate/up were quantized with o_proj's statistics. Every linear's statistics must equal
// those of its own input, recomputed here in fp64 from a plain recording forward.
TEST(Pipeline, SharedInputStatisticsBelongToEachLinear) {
  const wush::Model& m = stories();
  wush::Transformer tf(m);
  // The pipeline's default batch (8 windows) at the model's context: 1 MiB activations, the size at
  // which the allocator handed o_proj's freed input buffer to gate/up's input.
  at::Tensor calib = calib_tokens(16, 512, 7);
  std::vector<at::Tensor> h;
  for (int64_t b = 0; b < calib.size(0); b += 8) h.push_back(tf.embed(calib.slice(0, b, b + 8)));
  for (int64_t layer = 0; layer < m.config.num_layers; ++layer) {
    std::map<std::string, at::Tensor> ref;  // name -> sum of x x^T, fp64
    std::map<std::string, int64_t> count;
    wush::ForwardHooks rec;
    rec.on_linear_input = [&](const std::string& name, const at::Tensor& x) {
      at::Tensor X = x.to(at::kDouble).reshape({-1, x.size(-1)});
      at::Tensor xtx = X.t().matmul(X);
      ref[name] = ref.count(name) ? ref[name] + xtx : xtx;
      count[name] += X.size(0);
    };
    for (const auto& hb : h) tf.block(layer, hb, &rec);

    wush::BlockStats bs = wush::collect_block_stats(tf, layer, h);
    ASSERT_EQ(ref.size(), 7u);
    for (const auto& [name, want] : ref) {
      const wush::LayerStats& got = bs.of(name);
      EXPECT_EQ(got.count(), count[name]) << name;
      EXPECT_LT(rel_diff(got.xtx(), want), 1e-6) << name << " has another linear's statistics";
    }
    // The sharing itself: k, v read q's statistics, up reads gate's; nothing else is shared.
    const auto pre = [&](int i) { return wush::linear_prefix(layer, i); };
    std::map<std::string, std::string> expect_alias = {{pre(1), pre(0)}, {pre(2), pre(0)}, {pre(5), pre(4)}};
    EXPECT_EQ(bs.alias, expect_alias);
    // The test can tell o_proj's input from gate's (same width, different activations).
    EXPECT_GT(rel_diff(ref[pre(3)], ref[pre(4)]), 1e-2);
    for (auto& hb : h) hb = tf.block(layer, hb);
  }
}

TEST(Pipeline, GptqBeatsRtnOnALayerForEveryFormat) {
  const wush::Model& m = stories();
  const std::string p = "model.layers.2.mlp.up_proj";
  // Inputs of that layer from the model itself.
  wush::Transformer tf(m);
  at::Tensor X;
  wush::ForwardHooks hk;
  hk.on_linear_input = [&](const std::string& n, const at::Tensor& x) {
    if (n == p) X = x.reshape({-1, x.size(-1)}).clone();
  };
  tf.forward(calib_tokens(8, 128, 7), &hk);
  wush::LayerStats st(p);
  st.add(X);
  for (const auto& f : wush::all_formats()) {
    if (f.group == 0 || f.bits > 4) continue;
    wush::LinearQuantInput in;
    in.name = p;
    in.W = m.weight(p + ".weight");
    in.stats = &st;
    auto rtn = wush::quantize_linear(in, wush::parse_recipe(std::string("identity:") + f.name + ":rtn:w4a16"));
    auto gptq = wush::quantize_linear(in, wush::parse_recipe(std::string("identity:") + f.name + ":gptq:w4a16"));
    double lr = wush::layer_loss(rtn, in.W, {}, X), lg = wush::layer_loss(gptq, in.W, {}, X);
    EXPECT_LT(lg, lr) << f.name << " rtn " << lr << " gptq " << lg;
  }
}

TEST(Pipeline, GptqWushWithoutFeedbackEqualsRtnWush) {
  at::Generator g = at::detail::createCPUGenerator(11);
  const int64_t R = 48, C = 64, N = 512;
  at::Tensor A = at::randn({C, C}, g, at::kDouble) / 8;
  A.diagonal().add_(1.0);
  at::Tensor X = A.matmul(at::randn({C, N}, g, at::kDouble) * at::rand({C, 1}, g, at::kDouble) * 3);
  at::Tensor W = at::randn({R, C}, g, at::kDouble);
  wush::LayerStats st("layer");
  st.add(X.t().to(at::kFloat));
  at::Tensor H = st.H();
  wush::FormatQuantizer fq(wush::Format::MXFP4, 1.0f);
  wush::GptqWushOptions off;
  off.error_feedback = false;
  wush::LinearQuantInput in;
  in.name = "layer";
  in.W = W;
  in.stats = &st;
  {
    auto rtn = wush::quantize_linear(in, wush::parse_recipe("wush:mxfp4:rtn"));
    auto fit = [](const at::Tensor& U, const at::Tensor& Y) { return wush::wush_block(U, Y); };
    auto r = wush::gptq_wush_babai(W, H, fq, fit, off);
    EXPECT_LT((r.T.to(at::kFloat) - rtn.T).abs().max().item<double>(), 1e-6);
    double flipped = (r.wq.to(at::kFloat) != rtn.dense).to(at::kDouble).mean().item<double>();
    EXPECT_LT(flipped, 1e-3) << "wush";
  }
  {
    auto rtn = wush::quantize_linear(in, wush::parse_recipe("wush-local:mxfp4:rtn"));
    auto fit = [](const at::Tensor& Wj, const at::Tensor& Hjj) {
      return wush::wush_local_block(Wj.t().matmul(Wj) / double(Wj.size(0)), Hjj);
    };
    auto r = wush::gptq_wush_local(W, H, fq, fit, off);
    EXPECT_LT((r.T.to(at::kFloat) - rtn.T).abs().max().item<double>(), 1e-6);
    double flipped = (r.wq.to(at::kFloat) != rtn.dense).to(at::kDouble).mean().item<double>();
    EXPECT_LT(flipped, 1e-3) << "wush-local";
  }
}

TEST(Pipeline, RecipesRoundTrip) {
  for (const auto& t : wush::recipe_transforms())
    for (const auto& f : wush::all_formats())
      for (const char* w : {"rtn", "gptq"}) {
        wush::Recipe r = wush::parse_recipe(t + ":" + f.name + ":" + w);
        EXPECT_EQ(wush::parse_recipe(r.to_string()), r);
      }
  try {
    wush::parse_recipe("wush:mxfp5:gptq");
    FAIL();
  } catch (const wush::Error& e) {
    EXPECT_NE(std::string(e.what()).find("mxfp5"), std::string::npos);
  }
  EXPECT_THROW(wush::parse_recipe("wash:mxfp4:gptq"), wush::Error);
  EXPECT_THROW(wush::parse_recipe("wush:mxfp4:awq"), wush::Error);
}

TEST(Pipeline, CliBadInputsAreOneLineErrors) {
  std::string out, err;
  const std::string model = "--model " + data_path("models/stories260K.bin");
  const std::string calib = " --calib " + data_path("text/tinystories_calib.txt");
  std::string dir = wush::path_join(wush::temp_dir(), "wush_cli_q_" + std::to_string(getpid()));
  wush::remove_tree(dir);
  auto expect_err = [&](const std::string& args, const std::string& needle) {
    int rc = wush::testing::run_cli("quantize " + model + " " + args, &out, &err);
    EXPECT_EQ(rc, 1) << args << "\n" << err;
    EXPECT_NE(err.find(needle), std::string::npos) << args << "\n" << err;
  };
  expect_err("--calib /nonexistent/calib.txt --recipe wush:mxfp4:gptq --out " + dir, "no such text file");
  expect_err(calib + " --seqlen 1024 --recipe wush:mxfp4:gptq --out " + dir, "above the model's context");
  expect_err(calib + " --recipe wush:int8:gptq --out " + dir, "whole rows");
  expect_err("--recipe wush:mxfp4:gptq --out " + dir, "needs calibration");
  EXPECT_FALSE(wush::path_exists(dir));
  // A good run, then the same output again without --force.
  ASSERT_EQ(wush::testing::run_cli("--quiet quantize " + model + calib + " --nsamples 4 --seqlen 64 --recipe hadamard:mxfp4:rtn --out " + dir, &out, &err), 0) << err;
  EXPECT_TRUE(wush::is_quantized_checkpoint(dir));
  // The checkpoint runs through info and generate (its W4A4 layers as the forward's default hooks).
  ASSERT_EQ(wush::testing::run_cli("info " + dir, &out, &err), 0) << err;
  EXPECT_NE(out.find("hadamard:mxfp4:rtn"), std::string::npos) << out;
  ASSERT_EQ(wush::testing::run_cli("--quiet generate --model " + dir + " --max-new-tokens 8", &out, &err), 0) << err;
  EXPECT_EQ(out.rfind("Once upon a time", 0), 0u) << out;
  expect_err(calib + " --recipe hadamard:mxfp4:rtn --out " + dir, "already exists");
  wush::remove_tree(dir);
}

// A format whose group does not suit a layer: WUSH's SVD needs at least G output rows (REFERENCE §9),
// with RTN and inside GPTQ alike; the error names the layer and the way out.
// Wrong calibration files: empty, too short for one window, not text (a model file); each error
// names the file and the problem (the CLI test above covers a missing file).
TEST(Pipeline, WrongCalibrationFilesAreClearErrors) {
  auto tok = wush::load_tokenizer(data_path("models/tok512.bin"));
  const std::string bad = wush::path_join(wush::temp_dir(), "wush_calib_" + std::to_string(getpid()));
  ASSERT_TRUE(wush::make_dirs(bad));
  wush::write_file_atomic(wush::path_join(bad, "empty.txt"), " \n");
  wush::write_file_atomic(wush::path_join(bad, "short.txt"), "Once upon a time there was a cat.");
  auto expect_err = [&](const std::string& file, const std::string& needle) {
    try {
      wush::load_calibration(*tok, file, wush::CalibrationOptions{});
      ADD_FAILURE() << file << " accepted";
    } catch (const wush::Error& e) {
      std::string msg = e.what();
      EXPECT_NE(msg.find(file), std::string::npos) << msg;
      EXPECT_NE(msg.find(needle), std::string::npos) << msg;
    }
  };
  expect_err(wush::path_join(bad, "empty.txt"), "calibration file is empty");
  expect_err(wush::path_join(bad, "short.txt"), "fewer than one window of --seqlen 512");
  expect_err(data_path("models/stories260K.bin"), "not a text file");
  wush::remove_tree(bad);
}

TEST(Pipeline, WushRefusesLayersWithFewerRowsThanTheGroup) {
  at::Generator g = at::detail::createCPUGenerator(3);
  wush::LayerStats st("tiny.k_proj");
  st.add(at::randn({256, 64}, g, at::kFloat));
  wush::LinearQuantInput in;
  in.name = "tiny.k_proj";
  in.W = at::randn({16, 64}, g, at::kFloat);  // 16 rows < G = 32 (MXFP4), = G for NVFP4
  in.stats = &st;
  for (const char* r : {"wush:mxfp4:gptq", "wush-local:mxfp4:gptq", "wush:mxfp4:rtn"}) {
    try {
      wush::quantize_linear(in, wush::parse_recipe(r));
      ADD_FAILURE() << r << " accepted 16 rows with G = 32";
    } catch (const wush::Error& e) {
      std::string msg = e.what();
      EXPECT_NE(msg.find("tiny.k_proj"), std::string::npos) << msg;
      EXPECT_NE(msg.find("R >= G"), std::string::npos) << msg;
    }
  }
  // The same layer suits NVFP4 (G = 16) and data-free transforms.
  EXPECT_NO_THROW(wush::quantize_linear(in, wush::parse_recipe("wush:nvfp4:gptq")));
  EXPECT_NO_THROW(wush::quantize_linear(in, wush::parse_recipe("hadamard:mxfp4:gptq")));
}

TEST(Pipeline, InterruptedRunsLeaveNothingBehind) {
  std::string base = wush::path_join(wush::temp_dir(), "wush_interrupt_" + std::to_string(getpid()));
  wush::remove_tree(base);
  wush::make_dirs(base);
  const std::string out = wush::path_join(base, "q");
  // A leftover of a SIGKILLed run (pid 999999999 does not exist) is cleaned by the next run.
  wush::make_dirs(wush::path_join(base, ".wush-tmp-q-999999999-1"));
  std::string o, e;
  const std::string args = "--quiet quantize --model " + data_path("models/stories260K.bin") + " --calib " +
                           data_path("text/tinystories_calib.txt") + " --recipe wush:mxfp4:gptq --out " + out;
  // SIGTERM mid-run: no output directory, no temporary directory.
  int rc = wush::testing::run_cli(args.substr(0) + " & p=$!; sleep 1.5; kill -TERM $p; wait $p; exit $?", &o, &e);
  EXPECT_NE(rc, 0);
  EXPECT_FALSE(wush::path_exists(out));
  rc = wush::testing::run_cli("--quiet quantize --model " + data_path("models/stories260K.bin") +
                                  " --recipe hadamard:nvfp4:rtn --out " + out,
                              &o, &e);
  EXPECT_EQ(rc, 0) << e;
  EXPECT_TRUE(wush::is_quantized_checkpoint(out));
  int entries = 0;
  for (const std::string& name : wush::list_dir(base)) entries += name.rfind(".wush-tmp", 0) == 0;
  EXPECT_EQ(entries, 0);
  wush::remove_tree(base);
}

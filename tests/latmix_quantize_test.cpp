// LATMiX through the quantization pipeline (REFERENCE.md §5, §4, §8; docs/FORMAT.md): with
// format none the quantized LATMiX model reproduces the original logits; a saved and reloaded
// LATMiX checkpoint gives bit-identical logits; `wush quantize --transform latmix-*` trains or
// loads the transforms end to end; misuse is a clear error.
#include <gtest/gtest.h>


#include <unistd.h>

#include "core/paths.h"
#include "core/atomic_file.h"
#include "core/error.h"
#include "latmix/fold.h"
#include "latmix_test_util.h"
#include "model/forward.h"
#include "model/safetensors.h"
#include "pipeline/checkpoint.h"
#include "pipeline/quantize_linear.h"
#include "pipeline/quantize_model.h"
#include "runtime_test_util.h"

using namespace wush;
using namespace wush::latmix;
using namespace wush::latmix_test;
using wush::testing::data_path;

namespace {

const Model& stories() {
  static Model m = load_model(data_path(kStories));
  return m;
}

std::string temp_dir(const std::string& name) {
  return wush::path_join(wush::temp_dir(), "wush_" + name + "_" + std::to_string(getpid()));
}

QuantizedModel quantize_latmix(const std::string& recipe, const LatmixTransforms& t, const at::Tensor& calib) {
  QuantizeOptions o;
  o.recipe = parse_recipe(recipe);
  o.latmix = std::make_shared<LatmixTransforms>(t);
  return quantize_model(stories(), calib, o);
}

// save_quantized + load_quantized of qm; the logits of both on `tokens` must agree bit for bit.
QuantizedModel save_and_load(const QuantizedModel& qm, const std::string& dir) {
  CheckpointOptions co;
  co.force = true;
  save_quantized(qm, dir, co);
  EXPECT_TRUE(is_quantized_checkpoint(dir));
  return load_quantized(dir);
}

}  // namespace

// Format none: every linear keeps its folded weights (identity, or the down_proj Hadamard), so
// the quantized pipeline must reproduce the original model through T1's online norm, with a
// strongly non-orthogonal A and v != 0; and after save + load, bit for bit.
TEST(LatmixQuantize, FormatNoneReproducesTheOriginalLogitsThroughSaveAndLoad) {
  const Model& m = stories();
  at::Tensor tokens = stories_calib(2, 96), calib = stories_calib(4, 64);
  at::Tensor want = Transformer(m).forward(tokens);
  const std::string dir = temp_dir("latmix_none");
  for (const char* r : {"latmix-lu:none:gptq", "latmix-qr:none:rtn"}) {
    const Param p = std::string(r).rfind("latmix-lu", 0) == 0 ? Param::LU : Param::QR;
    QuantizedModel qm = quantize_latmix(r, perturbed_init(m, p, 11), calib);
    ASSERT_TRUE(qm.latmix) << r;
    at::Tensor got = qm.transformer().forward(tokens);
    EXPECT_LT(rel_diff(got, want), 1e-4) << r;
    // The down_proj block Hadamard is the only online block transform.
    EXPECT_TRUE(qm.linears->at("model.layers.0.mlp.down_proj").T.defined()) << r;
    EXPECT_EQ(qm.linears->at("model.layers.0.mlp.down_proj").transform, "hadamard") << r;
    EXPECT_FALSE(qm.linears->at("model.layers.0.self_attn.q_proj").T.defined()) << r;

    QuantizedModel back = save_and_load(qm, dir);
    EXPECT_EQ(back.recipe, qm.recipe) << r;
    ASSERT_TRUE(back.latmix) << r;
    EXPECT_EQ(back.latmix->kind, p) << r;
    EXPECT_TRUE(back.latmix->t1.matrix().equal(qm.latmix->t1.matrix())) << r;
    EXPECT_EQ((back.transformer().forward(tokens) - got).abs().max().item<double>(), 0.0) << r;

    // Without T1's online norm the folded model is wrong (the test can fail).
    back.latmix.reset();
    EXPECT_GT(rel_diff(back.transformer().forward(tokens), want), 1e-2) << r;
  }
  wush::remove_tree(dir);
}

// A W4A4 LATMiX checkpoint: the T1/T2 tensors and header in the layout, logits identical to the
// in-memory model after load, and really quantized.
TEST(LatmixQuantize, SavedW4A4CheckpointGivesIdenticalLogits) {
  const Model& m = stories();
  at::Tensor tokens = stories_calib(2, 96), calib = stories_calib(4, 64);
  const std::string dir = temp_dir("latmix_w4a4");
  for (const char* r : {"latmix-lu:mxfp4:gptq", "latmix-qr:mxint4:rtn"}) {
    const Param p = std::string(r).rfind("latmix-lu", 0) == 0 ? Param::LU : Param::QR;
    LatmixTransforms t = perturbed_init(m, p, 12);
    t.info = {{"steps", 5}};
    QuantizedModel qm = quantize_latmix(r, t, calib);
    at::Tensor a = qm.transformer().forward(tokens);
    QuantizedModel back = save_and_load(qm, dir);
    EXPECT_EQ((back.transformer().forward(tokens) - a).abs().max().item<double>(), 0.0) << r;
    EXPECT_GT(rel_diff(a, Transformer(m).forward(tokens)), 1e-3) << r;

    auto cfg = nlohmann::json::parse(read_file(dir + "/config.json"));
    const auto& lx = cfg["quantization_config"]["latmix"];
    EXPECT_EQ(lx["param"], param_name(p)) << r;
    EXPECT_EQ(lx["group"], 32) << r;
    EXPECT_EQ(lx["layers"], 5) << r;
    EXPECT_EQ(lx["info"]["steps"], 5) << r;
    EXPECT_EQ(cfg["quantization_config"]["transform"], std::string(r).substr(0, 9)) << r;
    EXPECT_EQ(cfg["tie_word_embeddings"], false) << r;
    auto st = read_safetensors(dir + "/model.safetensors");
    EXPECT_EQ(st.at("latmix.t1.shift").dtype, "F32") << r;
    EXPECT_EQ(st.at("latmix.t1.upper").shape(), (std::vector<int64_t>{64, 64})) << r;
    EXPECT_EQ(st.at("latmix.t2.4.log_s").shape(), std::vector<int64_t>{8}) << r;
    EXPECT_EQ(st.count("latmix.t1.perm"), p == Param::LU ? 1u : 0u) << r;
    // The folded biases of q/k/v/o/gate/up (-W' A^{-1} v, ...) travel as <p>.bias.
    EXPECT_TRUE(st.count("model.layers.2.mlp.gate_proj.bias")) << r;
    EXPECT_FALSE(back.base.weights.count("latmix.t1.shift")) << r;
  }
  wush::remove_tree(dir);
}

TEST(LatmixQuantize, MisuseIsAClearError) {
  const Model& m = stories();
  at::Tensor calib = stories_calib(2, 32);
  QuantizeOptions o;
  o.recipe = parse_recipe("latmix-lu:mxfp4:gptq");
  auto expect_error = [&](const std::string& part) {
    try {
      quantize_model(m, calib, o);
      ADD_FAILURE() << "no error, expected: " << part;
    } catch (const Error& e) {
      EXPECT_NE(std::string(e.what()).find(part), std::string::npos) << e.what();
    }
  };
  expect_error("needs trained LATMiX transforms");
  o.latmix = std::make_shared<LatmixTransforms>(perturbed_init(m, Param::QR, 1));
  expect_error("the LATMiX transforms given are latmix-qr");
  o.recipe = parse_recipe("wush:mxfp4:gptq");
  expect_error("the transform is not latmix-lu/latmix-qr");
  o.recipe = parse_recipe("latmix-qr:nvfp4:rtn");
  expect_error("made for group 32, the format's is 16");
  LinearQuantInput in;
  in.name = "x";
  in.W = at::zeros({32, 32});
  EXPECT_THROW(quantize_linear(in, parse_recipe("latmix-lu:mxfp4:rtn")), Error);
  EXPECT_EQ(linear_recipe(parse_recipe("latmix-qr:mxint4:gptq"), 6).to_string(), "hadamard:mxint4:gptq");
  EXPECT_EQ(linear_recipe(parse_recipe("latmix-qr:mxint4:gptq"), 3).to_string(), "identity:mxint4:gptq");
  EXPECT_EQ(parse_recipe("latmix-lu:mxfp4:gptq").display_name(), "GPTQ-LATMiX-LU");
}

// End to end through the CLI: train inside `wush quantize`, or load a `wush latmix` result.
TEST(LatmixQuantize, CliTrainsOrLoadsTheTransforms) {
  const std::string base = temp_dir("latmix_cli"), model = data_path(kStories),
                    calib = data_path("text/tinystories_calib.txt");
  const std::string small = " --calib " + calib + " --nsamples 4 --seqlen 32";
  std::string out, err;
  int rc = wush::testing::run_cli("-q quantize --model " + model + small +
                                      " --transform latmix-qr --weights gptq --steps 2 --lr 1e-3 --batch-size 2"
                                      " --out " + base + "_q --force",
                                  &out, &err);
  ASSERT_EQ(rc, 0) << err;
  EXPECT_NE(out.find("latmix: 2 steps"), std::string::npos) << out;
  QuantizedModel q = load_quantized(base + "_q");
  ASSERT_TRUE(q.latmix);
  EXPECT_EQ(q.latmix->kind, Param::QR);
  EXPECT_EQ(q.latmix->info["steps"], 2);
  EXPECT_EQ(q.latmix->info["batch_size"], 2);
  EXPECT_EQ(q.latmix->info["init"], "orthogonal");
  EXPECT_EQ(q.recipe.to_string(), "latmix-qr:mxfp4:gptq");

  rc = wush::testing::run_cli("-q latmix --model " + model + small + " --steps 2 --param lu --out " + base + "_t --force",
                              &out, &err);
  ASSERT_EQ(rc, 0) << err;
  rc = wush::testing::run_cli("-q quantize --model " + model + " --recipe latmix-lu:mxint4:rtn --latmix " + base +
                                  "_t --out " + base + "_l --force",
                              &out, &err);
  ASSERT_EQ(rc, 0) << err;
  LatmixTransforms t = load_latmix(base + "_t/transforms.safetensors");
  QuantizedModel l = load_quantized(base + "_l");
  ASSERT_TRUE(l.latmix);
  EXPECT_TRUE(l.latmix->t1.matrix().equal(t.t1.matrix()));

  // Misuse: one line naming the option.
  rc = wush::testing::run_cli("quantize --model " + model + small + " --recipe wush:mxfp4:rtn --latmix " + base +
                                  "_t --out " + base + "_bad",
                              &out, &err);
  EXPECT_EQ(rc, 1);
  EXPECT_NE(err.find("--latmix and the latmix training options need --transform latmix-lu or latmix-qr"),
            std::string::npos)
      << err;
  rc = wush::testing::run_cli("quantize --model " + model + " --recipe latmix-qr:mxfp4:rtn --latmix " + base +
                                  "_t --out " + base + "_bad",
                              &out, &err);
  EXPECT_EQ(rc, 1);
  EXPECT_NE(err.find("the LATMiX transforms given are latmix-lu"), std::string::npos) << err;
  EXPECT_FALSE(path_exists(base + "_bad"));
  for (const char* s : {"_q", "_t", "_l"}) wush::remove_tree(base + s);
}

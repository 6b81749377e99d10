// wush sweep (tools/cmd_sweep.cpp) as scripts/accuracy uses it: --kl rows carry the KL divergence
// and top-1 agreement with the full-precision model, the perplexity from the same pass (checked
// against perplexity() of the same quantized model built through the library), the quantization
// time and the peak resident memory. Also the pieces of the accuracy study around it: the default
// recipe of `wush quantize` and the chart titles of `wush report`.
#include <gtest/gtest.h>

#include <nlohmann/json.hpp>

#include <cmath>

#include "core/atomic_file.h"
#include "eval/perplexity.h"
#include "eval/report.h"
#include "model/llama2c.h"
#include "pipeline/calibration.h"
#include "pipeline/quantize_model.h"
#include "runtime_test_util.h"

using namespace wush;
using namespace wush::testing;

TEST(SweepCli, KlRowsMatchTheLibrary) {
  const std::string model = data_path("models/stories260K.bin"), calib = data_path("text/tinystories_calib.txt");
  std::string text = read_file(data_path("text/tinystories_val_1000.txt"));
  size_t pos = 0;
  for (int i = 0; i < 12; ++i) pos = text.find("<|endoftext|>", pos) + 13;
  const std::string dir = ::testing::TempDir(), txt = dir + "sweep12.txt", js = dir + "sweep12.json";
  write_file_atomic(txt, text.substr(0, pos));
  std::string out, err;
  ASSERT_EQ(run_cli("-q --threads 1 sweep --model " + model + " --calib " + calib +
                        " --nsamples 4 --seqlen 128 --ppl " + txt + " --kl --recipes identity:mxfp4:rtn,wush-local:nvfp4:rtn --json " + js,
                    &out, &err),
            0)
      << err;
  const auto j = nlohmann::json::parse(read_file(js));
  ASSERT_EQ(j.at("rows").size(), 3u);
  EXPECT_EQ(j["rows"][0]["name"], "FP32");
  EXPECT_FALSE(j["rows"][0].contains("kl"));
  EXPECT_EQ(j["transform_damping"], true);
  EXPECT_EQ(j["bf16_transform"], true);

  Model m = load_llama2c(model);
  auto tok = load_tokenizer(m.tokenizer_path);
  CalibrationOptions co;
  co.nsamples = 4;
  co.seqlen = 128;
  CalibrationSet cs = load_calibration(*tok, calib, co);
  const double fp_ppl = j["rows"][0]["ppl"]["sweep12"]["ppl"].get<double>();
  for (size_t i = 1; i < 3; ++i) {
    const auto& row = j["rows"][i];
    const auto& kl = row.at("kl").at("sweep12");
    EXPECT_GT(kl["kl"].get<double>(), 0) << row;
    EXPECT_GT(kl["top1"].get<double>(), 0.3);
    EXPECT_LT(kl["top1"].get<double>(), 1.0);
    EXPECT_GT(row["quantize_seconds"].get<double>(), 0);
    EXPECT_GT(row["peak_rss_mib"].get<double>(), 1);
    const auto& p = row["ppl"]["sweep12"];
    EXPECT_NEAR(p["ppl"].get<double>(), std::exp(p["nll"].get<double>()), 1e-9);
    EXPECT_GT(p["ppl"].get<double>(), fp_ppl);
    // The same recipe through the library, scored by perplexity().
    QuantizeOptions o;
    o.recipe = parse_recipe(row["recipe"].get<std::string>());
    QuantizedModel qm = quantize_model(m, cs.tokens, o);
    Transformer t = qm.transformer();
    PplResult want = perplexity(t, *tok, text.substr(0, pos), {}, "sweep12");
    EXPECT_EQ(p["tokens"].get<int64_t>(), want.tokens);
    // (thread counts differ between the CLI and this process: summation order, not method)
    EXPECT_NEAR(p["nll"].get<double>(), want.nll, 2e-4) << row["recipe"];
  }
}

// LATMiX rows take one trained directory each (sweep does not train): a count that does not match
// the latmix recipes is refused before anything is loaded.
TEST(SweepCli, LatmixDirectoriesMatchTheLatmixRecipes) {
  const std::string base = "-q sweep --model " + data_path("models/stories260K.bin") + " --calib " +
                           data_path("text/tinystories_calib.txt") + " --ppl " +
                           data_path("text/tinystories_val_1000.txt") + " --recipes ";
  std::string out, err;
  EXPECT_NE(run_cli(base + "identity:mxfp4:rtn,latmix-lu:mxfp4:gptq,latmix-qr:mxfp4:gptq --latmix /nonexistent-a",
                    &out, &err), 0);
  EXPECT_NE(err.find("--latmix: 1 directories for 2 latmix-lu/-qr recipes"), std::string::npos) << err;
  EXPECT_NE(run_cli(base + "identity:mxfp4:rtn --latmix /nonexistent-a", &out, &err), 0);
  EXPECT_NE(err.find("1 directories for 0 latmix"), std::string::npos) << err;
  EXPECT_NE(run_cli(base + "latmix-lu:mxfp4:gptq --latmix /nonexistent-a", &out, &err), 0);
  EXPECT_NE(err.find("--latmix /nonexistent-a: no transforms.safetensors"), std::string::npos) << err;
}

// The defaults of `wush quantize` (docs/ACCURACY.md, "Defaults"): no recipe flags = GPTQ with the
// wush-local transform in MXFP4, W4A4; without --calib that needs calibration and says so.
TEST(QuantizeCli, DefaultRecipeIsGptqWushLocalMxfp4) {
  const std::string model = data_path("models/stories260K.bin"), calib = data_path("text/tinystories_calib.txt");
  const std::string dir = ::testing::TempDir() + "wush_default_recipe_" + std::to_string(getpid());
  std::string out, err;
  ASSERT_EQ(run_cli("-q --threads 1 quantize --model " + model + " --calib " + calib +
                        " --nsamples 2 --seqlen 64 --force --out " + dir + " --json -",
                    &out, &err),
            0)
      << err;
  const auto j = nlohmann::json::parse(out.substr(out.find('{')));
  EXPECT_EQ(j["recipe"], "wush-local:mxfp4:gptq");
  EXPECT_EQ(j["name"], "GPTQ-WUSH-LOCAL");
  EXPECT_NE(run_cli("-q quantize --model " + model + " --force --out " + dir, &out, &err), 0);
  EXPECT_NE(err.find("needs calibration"), std::string::npos) << err;
}

// scripts/accuracy draws its charts with `wush report --title/--y-label` (perplexity increase per
// format, layer loss per linear): the first chart takes them; without them it keeps its defaults.
TEST(ReportTitles, FirstChartTakesTitleAndYLabel) {
  ReportRow a{"RTN-H", nlohmann::json::parse(R"({"ppl": {"MXFP4": {"ppl": 1.24}, "NVFP4": {"ppl": 0.69}}})")};
  ReportRow b{"RTN-WUSH", nlohmann::json::parse(R"({"ppl": {"MXFP4": {"ppl": 1.09}, "NVFP4": {"ppl": 0.52}}})")};
  Report r = build_report({a, b}, "", "W4A4 perplexity minus FP32's", "perplexity increase");
  EXPECT_NE(r.ppl_svg.find("W4A4 perplexity minus FP32&apos;s"), std::string::npos) << r.ppl_svg.substr(0, 400);
  EXPECT_NE(r.ppl_svg.find("perplexity increase"), std::string::npos);
  EXPECT_NE(r.ppl_svg.find("1.24"), std::string::npos);
  EXPECT_NE(r.ppl_svg.find("NVFP4"), std::string::npos);
  Report d = build_report({a, b}, "");
  EXPECT_NE(d.ppl_svg.find("Perplexity per method (lower is better)"), std::string::npos);
}

// wush formats / wush quant-error, run as a user runs them (WUSH_CLI_PATH).
#include <gtest/gtest.h>

#include <cmath>
#include <cstdlib>

#include <nlohmann/json.hpp>

#include "core/atomic_file.h"
#include "core/paths.h"
#include "formats/format.h"
#include "formats/synthetic.h"


namespace {
int run(const std::string& args) {
  return std::system((std::string(WUSH_CLI_PATH) + " -q " + args + " >/dev/null 2>&1").c_str());
}
}  // namespace

TEST(FormatsCli, FormatsJsonListsTheTable) {
  std::string out = wush::path_join(wush::temp_dir(), "wush_formats_cli.json");
  ASSERT_EQ(run("formats --json " + out), 0);
  const auto j = nlohmann::json::parse(wush::read_file(out));
  ASSERT_EQ(j["formats"].size(), wush::all_formats().size());
  EXPECT_EQ(j["formats"][2]["name"], "nvfp4");
  EXPECT_EQ(j["formats"][2]["group"], 16);
  EXPECT_EQ(j["formats"][2]["scale"], "e4m3");
}

TEST(FormatsCli, QuantErrorMatchesTheLibrary) {
  std::string out = wush::path_join(wush::temp_dir(), "wush_quant_error_cli.json");
  ASSERT_EQ(run("quant-error --format nvfp4 --dist student-t --rows 8 --cols 64 --seed 3 --json " +
                out),
            0);
  const auto j = nlohmann::json::parse(wush::read_file(out));
  const at::Tensor x = wush::synthetic(wush::Dist::StudentT3, 8, 64, 3).to(at::kDouble);
  const at::Tensor e = wush::fake_quantize(x, wush::Format::NVFP4).to(at::kDouble) - x;
  const double sqnr = 10 * std::log10(x.pow(2).sum().item<double>() / e.pow(2).sum().item<double>());
  EXPECT_NEAR(j["results"][0]["sqnr_db"].get<double>(), sqnr, 1e-9);
  EXPECT_NE(run("quant-error --format mxfp5"), 0);
  EXPECT_NE(run("quant-error --dist cauchy"), 0);
}

// wush quant-error: MSE and SQNR of fake-quantizing seeded synthetic data (REFERENCE.md §1 formats).
//   wush quant-error --format all --dist all --rows 1024 --cols 4096 --json out.json
#include <cmath>
#include <cstdio>

#include "cli.h"
#include "core/error.h"
#include "formats/format.h"
#include "formats/synthetic.h"

namespace {

struct Params {
  std::string format = "all", dist = "gaussian", global = "fixed", json;
  int64_t rows = 1024, cols = 4096;
  uint64_t seed = 0;
};

nlohmann::json measure(wush::Format f, wush::Dist d, const std::string& dname, const Params& p) {
  const at::Tensor x = wush::synthetic(d, p.rows, p.cols, p.seed);
  wush::QuantOptions opt;
  opt.tensor_name = "synthetic";
  opt.global_mode = p.global == "tensor-amax" ? wush::GlobalScaleMode::TensorAmax
                                              : wush::GlobalScaleMode::Fixed;
  int64_t overflow = 0;
  const at::Tensor y = wush::fake_quantize(x, f, opt, &overflow);
  const at::Tensor xd = x.to(at::kDouble), err = y.to(at::kDouble) - xd;
  const double sig = xd.pow(2).sum().item<double>(), noise = err.pow(2).sum().item<double>();
  const double mse = noise / double(x.numel());
  const double sqnr = noise > 0 ? 10.0 * std::log10(sig / noise) : INFINITY;
  std::printf("%-10s %-10s %14.6e %9.3f %9lld\n", wush::format_name(f).c_str(), dname.c_str(), mse,
              sqnr, (long long)overflow);
  return {{"format", wush::format_name(f)}, {"dist", dname}, {"mse", mse}, {"sqnr_db", sqnr},
          {"overflow_groups", overflow}};
}

}  // namespace

static wush::cli::Register reg(
    "quant-error", "MSE and SQNR (dB) of quantizing seeded synthetic data in each format",
    [](CLI::App& app) -> wush::cli::Action {
      auto p = std::make_shared<Params>();
      app.add_option("--format", p->format, "format name, or 'all'")->capture_default_str();
      app.add_option("--dist", p->dist, "gaussian | laplace | student-t | outliers | all")
          ->capture_default_str();
      app.add_option("--rows", p->rows, "rows of the tensor")->capture_default_str();
      app.add_option("--cols", p->cols, "columns (the grouped dimension)")->capture_default_str();
      app.add_option("--seed", p->seed, "seed of the synthetic data")->capture_default_str();
      app.add_option("--global", p->global, "NVFP4 global scale: fixed (g = 10) | tensor-amax")
          ->capture_default_str();
      app.add_option("--json", p->json, "also write the results as JSON to FILE ('-' = stdout)");
      return [p] {
        WUSH_CHECK(p->rows > 0 && p->cols > 0, "--rows %lld and --cols %lld must be > 0",
                   (long long)p->rows, (long long)p->cols);
        WUSH_CHECK(p->global == "fixed" || p->global == "tensor-amax",
                   "--global '%s': expected fixed or tensor-amax", p->global.c_str());
        std::vector<wush::Format> formats;
        if (p->format == "all")
          for (const wush::FormatTraits& t : wush::all_formats()) formats.push_back(t.id);
        else
          formats.push_back(wush::parse_format(p->format));
        std::vector<std::pair<wush::Dist, std::string>> dists;
        if (p->dist == "all") dists = wush::all_dists();
        else dists.push_back({wush::parse_dist(p->dist), p->dist});
        std::printf("%lld x %lld, seed %llu, nvfp4 global scale: %s\n", (long long)p->rows,
                    (long long)p->cols, (unsigned long long)p->seed, p->global.c_str());
        std::printf("%-10s %-10s %14s %9s %9s\n", "format", "dist", "mse", "sqnr_db", "overflow");
        nlohmann::json rows = nlohmann::json::array();
        for (auto& [d, dname] : dists)
          for (wush::Format f : formats) rows.push_back(measure(f, d, dname, *p));
        if (!p->json.empty())
          wush::cli::write_json(p->json, {{"rows", p->rows}, {"cols", p->cols}, {"seed", p->seed},
                                          {"global", p->global}, {"results", rows}});
        return 0;
      };
    });

// wush sweep: quantize a model with several recipes in memory and print their perplexities next to
// full precision, one table (the README's main job and the RESULTS tables).
#include <cstdio>
#include <sstream>

#include "cli.h"
#include "core/atomic_file.h"
#include "core/paths.h"
#include "eval/perplexity.h"
#include "pipeline/quantize_model.h"
#include "quant_args.h"
#include "runtime_args.h"

namespace {

struct SweepArgs {
  wush::cli::RuntimeArgs rt;
  wush::cli::CalibArgs calib;
  std::vector<std::string> recipes, ppl;
  wush::PplOptions popt;
  std::string json;
  int64_t batch = 8;
};

std::vector<std::string> split_list(const std::vector<std::string>& v) {
  std::vector<std::string> out;
  for (const auto& s : v) {
    std::stringstream ss(s);
    for (std::string t; std::getline(ss, t, ',');)
      if (!t.empty()) out.push_back(t);
  }
  return out;
}

wush::cli::Register reg(
    "sweep", "quantize with several recipes in memory and compare their perplexity with full precision",
    [](CLI::App& app) -> wush::cli::Action {
      auto a = std::make_shared<SweepArgs>();
      a->rt.add(app);
      a->calib.add(app);
      app.add_option("--recipes", a->recipes, "comma-separated recipes, e.g. identity:mxfp4:rtn,wush:mxfp4:gptq")
          ->required();
      app.add_option("--ppl", a->ppl, "evaluation text file(s)")->required();
      app.add_option("--ppl-mode", a->popt.mode, "stories or windows (default: by file content)");
      app.add_option("--eval-seqlen", a->popt.seqlen, "evaluation window / story cut (0 = the model's context)")
          ->capture_default_str();
      app.add_option("--batch-size", a->batch, "sequences per forward pass")->capture_default_str();
      app.add_option("--json", a->json, "write every row ('-' = stdout)");
      return [a] {
        std::vector<wush::Recipe> recipes;
        for (const auto& s : split_list(a->recipes)) recipes.push_back(wush::parse_recipe(s));
        std::vector<std::pair<std::string, std::string>> texts;
        for (const auto& f : split_list(a->ppl)) {
          std::string p = wush::resolve_data_path(f);
          WUSH_CHECK(wush::path_exists(p) && !wush::is_directory(p), "--ppl %s: no such text file", f.c_str());
          texts.emplace_back(wush::path_stem(p), wush::read_file(p));
        }
        wush::Model m = a->rt.load();
        auto tok = a->rt.load_tok(m);
        wush::CalibrationSet cs = a->calib.load(*tok, m.config.max_position);
        a->popt.batch_size = a->batch;
        nlohmann::json rows = nlohmann::json::array();
        auto eval = [&](wush::Transformer& t, const std::string& name, const std::string& recipe, double qsecs) {
          nlohmann::json row = {{"name", name}, {"recipe", recipe}, {"quantize_seconds", qsecs}, {"ppl", nlohmann::json::object()}};
          for (const auto& [stem, text] : texts) {
            wush::PplResult r = wush::perplexity(t, *tok, text, a->popt, stem);
            row["ppl"][stem] = {{"tokens", r.tokens}, {"nll", r.nll}, {"ppl", r.ppl}};
          }
          rows.push_back(row);
          std::printf("%-22s %-28s", name.c_str(), recipe.c_str());
          for (const auto& [stem, text] : texts) std::printf(" %12.4f", row["ppl"][stem]["ppl"].get<double>());
          std::printf("\n");
          std::fflush(stdout);
        };
        std::printf("%-22s %-28s", "method", "recipe");
        for (const auto& [stem, text] : texts) std::printf(" %12s", stem.substr(0, 12).c_str());
        std::printf("\n");
        {
          wush::Transformer fp(m, a->rt.torch_device(), at::kFloat);
          eval(fp, "FP32", "-", 0);
        }
        for (const auto& r : recipes) {
          wush::QuantizeOptions o;
          o.recipe = r;
          o.batch = a->batch;
          o.device = a->rt.torch_device();
          wush::QuantizeReport rep;
          wush::QuantizedModel qm = wush::quantize_model(m, cs.tokens, o, &rep);
          wush::Transformer t = qm.transformer(a->rt.torch_device());
          eval(t, r.display_name() + " " + wush::format_name(r.format), r.to_string(), rep.seconds);
        }
        if (!a->json.empty())
          wush::cli::write_json(a->json, {{"model", m.path}, {"calibration", a->calib.to_json(cs)}, {"rows", rows}});
        return 0;
      };
    });

}  // namespace

// wush sweep: quantize a model with several recipes in memory and print their perplexities next to
// full precision, one table (the README's main job and the RESULTS tables). --kl adds the KL
// divergence to the full-precision model and the top-1 agreement (REFERENCE.md §6) per text; every
// JSON row records the quantization time and the process's peak resident memory during it.
#include <cmath>
#include <cstdio>
#include <sstream>

#include "cli.h"
#include "core/atomic_file.h"
#include "core/paths.h"
#include "eval/kl_divergence.h"
#include "eval/perplexity.h"
#include "latmix_args.h"
#include "peak_memory.h"
#include "pipeline/quantize_model.h"
#include "quant_args.h"
#include "runtime_args.h"

namespace {

struct SweepArgs {
  wush::cli::RuntimeArgs rt;
  wush::cli::CalibArgs calib;
  std::vector<std::string> recipes, ppl, latmix;
  wush::PplOptions popt;
  std::string json;
  int64_t batch = 8;
  bool kl = false, no_damp = false, no_bf16 = false;
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
      app.add_option("--max-sequences", a->popt.max_sequences,
                     "score only the first N windows / stories of each text (0 = all)")->capture_default_str();
      app.add_option("--batch-size", a->batch, "sequences per forward pass")->capture_default_str();
      app.add_option("--json", a->json, "write every row ('-' = stdout)");
      app.add_flag("--kl", a->kl, "also KL(p_fp || p_method) and top-1 agreement with the full-precision model");
      app.add_flag("--no-transform-damping", a->no_damp, "fit WUSH transforms without their 1% damping (REFERENCE §2)");
      app.add_option("--latmix", a->latmix, "trained `wush latmix --out` directories, one per latmix-lu/-qr "
                                            "recipe in --recipes order (comma-separated)");
      app.add_flag("--no-bf16-transform", a->no_bf16, "keep T_j in full precision (no bf16 rounding, REFERENCE §2)");
      return [a] {
        std::vector<wush::Recipe> recipes;
        for (const auto& s : split_list(a->recipes)) recipes.push_back(wush::parse_recipe(s));
        // The i-th LATMiX recipe uses the i-th --latmix directory (REFERENCE §5; sweep does not train).
        const std::vector<std::string> latmix_dirs = split_list(a->latmix);
        size_t n_latmix = 0;
        for (const auto& r : recipes) n_latmix += wush::is_latmix(r.transform);
        WUSH_CHECK(latmix_dirs.size() == n_latmix,
                   "--latmix: %zu directories for %zu latmix-lu/-qr recipes in --recipes (one each, in order; "
                   "train them with `wush latmix --out DIR`)", latmix_dirs.size(), n_latmix);
        std::vector<std::shared_ptr<const wush::latmix::LatmixTransforms>> latmix_tf;
        for (const auto& d : latmix_dirs) latmix_tf.push_back(wush::cli::load_latmix_dir(d));
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
        wush::Transformer fp(m, a->rt.torch_device(), at::kFloat);
        auto eval = [&](wush::Transformer& t, const std::string& name, const wush::Recipe* r, double qsecs,
                        double peak_mib) {
          nlohmann::json row = {{"name", name}, {"recipe", r ? r->to_string() : "-"}, {"quantize_seconds", qsecs},
                                {"ppl", nlohmann::json::object()}};
          if (r) row["method"] = r->display_name(), row["format"] = wush::format_name(r->format);
          if (peak_mib > 0) row["peak_rss_mib"] = peak_mib;
          for (const auto& [stem, text] : texts) {
            if (a->kl && r) {
              // One pass gives both: the KL pass scores the same sequences as perplexity() and
              // returns the method's mean NLL of the next tokens.
              wush::KlResult k = wush::kl_divergence_text({&fp}, {&t}, *tok, text, a->popt, stem);
              row["kl"][stem] = {{"kl", k.kl}, {"top1", k.top1}, {"tokens", k.tokens}};
              row["ppl"][stem] = {{"tokens", k.tokens}, {"nll", k.nll_q}, {"ppl", std::exp(k.nll_q)}};
            } else {
              wush::PplResult p = wush::perplexity(t, *tok, text, a->popt, stem);
              row["ppl"][stem] = {{"tokens", p.tokens}, {"nll", p.nll}, {"ppl", p.ppl}};
            }
          }
          rows.push_back(row);
          std::printf("%-22s %-28s", name.c_str(), row["recipe"].get<std::string>().c_str());
          for (const auto& [stem, text] : texts) {
            std::printf(" %12.4f", row["ppl"][stem]["ppl"].get<double>());
            if (row.contains("kl")) std::printf("  KL %.4f top-1 %.4f", row["kl"][stem]["kl"].get<double>(),
                                                row["kl"][stem]["top1"].get<double>());
          }
          std::printf("  (%.1f s)\n", qsecs);
          std::fflush(stdout);
        };
        std::printf("%-22s %-28s", "method", "recipe");
        for (const auto& [stem, text] : texts) std::printf(" %12s", stem.substr(0, 12).c_str());
        std::printf("\n");
        eval(fp, "FP32", nullptr, 0, -1);
        size_t next_latmix = 0;
        for (const auto& r : recipes) {
          wush::QuantizeOptions o;
          if (wush::is_latmix(r.transform)) o.latmix = latmix_tf[next_latmix++];
          o.recipe = r;
          o.batch = a->batch;
          o.device = a->rt.torch_device();
          o.transform_damp = !a->no_damp;
          o.round_bf16 = !a->no_bf16;
          wush::QuantizeReport rep;
          const bool rss = wush::cli::reset_peak_rss();
          wush::QuantizedModel qm = wush::quantize_model(m, cs.tokens, o, &rep);
          const double peak = rss ? wush::cli::peak_rss_mib() : -1;
          wush::Transformer t = qm.transformer(a->rt.torch_device());
          eval(t, r.display_name() + " " + wush::format_name(r.format), &r, rep.seconds, peak);
        }
        if (!a->json.empty())
          wush::cli::write_json(a->json, {{"model", m.path},
                                          {"calibration", a->calib.to_json(cs)},
                                          {"device", a->rt.device},
                                          {"transform_damping", !a->no_damp},
                                          {"bf16_transform", !a->no_bf16},
                                          {"max_sequences", a->popt.max_sequences},
                                          {"latmix", latmix_dirs},
                                          {"rows", rows}});
        return 0;
      };
    });

}  // namespace

// wush quantize: a model + calibration text -> a W4A4 (or W4A16) checkpoint (REFERENCE.md §4, §8).
#include <sys/resource.h>

#include <cstdio>

#include "cli.h"
#include "core/atomic_file.h"
#include "eval/perplexity.h"
#include "pipeline/checkpoint.h"
#include "pipeline/layer_loss.h"
#include "pipeline/quantize_model.h"
#include "latmix_args.h"
#include "quant_args.h"
#include "runtime_args.h"

namespace {

// Peak resident set size of this process so far, in MiB (Linux reports ru_maxrss in KiB).
double peak_rss_mib() {
  rusage ru{};
  getrusage(RUSAGE_SELF, &ru);
  return double(ru.ru_maxrss) / 1024.0;
}

struct QuantizeArgs {
  wush::cli::RuntimeArgs rt;
  wush::cli::CalibArgs calib;
  wush::cli::RecipeArgs recipe;
  wush::cli::LatmixQuantArgs latmix;
  std::string out, json;
  bool force = false;
  int64_t batch = 8;
  uint64_t transform_seed = 0;
  std::string mxfp4_rule = "reference";
};

// --mxfp4-rule ocp: MXFP4 with the OCP scale rule (REFERENCE §1), the MXFP4 that vLLM and llama.cpp
// can load (§8 exports: power-of-two scales, global scale 1).
void apply_mxfp4_rule(wush::Recipe& r, const std::string& rule) {
  WUSH_CHECK(rule == "reference" || rule == "ocp", "--mxfp4-rule '%s' (valid: reference, ocp)", rule.c_str());
  if (rule == "reference") return;
  WUSH_CHECK(r.format == wush::Format::MXFP4 || r.format == wush::Format::MXFP4_OCP,
             "--mxfp4-rule ocp applies to MXFP4, not to %s", wush::format_name(r.format).c_str());
  r.format = wush::Format::MXFP4_OCP;
}

wush::cli::Register reg(
    "quantize", "quantize a model's linears to W4A4/W4A16 with a block transform and RTN or GPTQ",
    [](CLI::App& app) -> wush::cli::Action {
      auto a = std::make_shared<QuantizeArgs>();
      a->rt.add(app);
      a->recipe.add(app);
      a->calib.add(app);
      app.add_option("--out", a->out, "output checkpoint directory (docs/FORMAT.md)")->required();
      app.add_flag("--force", a->force, "replace an existing output directory");
      app.add_option("--batch-size", a->batch, "calibration windows per forward pass")->capture_default_str();
      app.add_option("--transform-seed", a->transform_seed, "seed of the random transform (latmix: of the init and the batch order)")->capture_default_str();
      app.add_option("--mxfp4-rule", a->mxfp4_rule,
                     "MXFP4 scale rule: reference (s = 2^floor(log2 amax), global 1/3) or ocp (exportable)")
          ->capture_default_str();
      a->latmix.add(app);  // after --batch-size
      app.add_option("--json", a->json, "write a summary (per-layer timings, recipe, calibration) ('-' = stdout)");
      return [a] {
        wush::Recipe r = a->recipe.get();
        apply_mxfp4_rule(r, a->mxfp4_rule);
        WUSH_CHECK(a->force || !wush::path_exists(a->out), "%s: output already exists (pass --force to replace it)",
                   a->out.c_str());
        wush::Model m = a->rt.load();
        auto tok = a->rt.load_tok(m);
        wush::CalibrationSet cs = a->calib.load(*tok, m.config.max_position);
        wush::QuantizeOptions o;
        o.recipe = r;
        o.batch = a->batch;
        o.seed = a->transform_seed;
        o.device = a->rt.torch_device();
        o.latmix = a->latmix.get(r, m, cs.tokens, o.device, a->batch, a->transform_seed);
        // REFERENCE § Notation: widths that are not a multiple of G are zero-padded, and we say so.
        std::vector<std::string> padding = wush::padding_notes(m.config, {r.format});
        for (const auto& n : padding) std::fprintf(stderr, "wush: note: %s\n", n.c_str());
        wush::QuantizeReport rep;
        wush::QuantizedModel qm = wush::quantize_model(m, cs.tokens, o, &rep);
        qm.calibration = a->calib.to_json(cs);
        wush::CheckpointOptions co;
        co.force = a->force;
        wush::save_quantized(qm, a->out, co);
        std::printf("%s: %s (%s), %zu linears quantized in %.1f s -> %s\n", m.path.c_str(), r.to_string().c_str(),
                    r.display_name().c_str(), qm.linears->size(), rep.seconds, a->out.c_str());
        if (!a->json.empty())
          wush::cli::write_json(a->json, {{"model", m.path}, {"out", a->out}, {"recipe", r.to_string()},
                                          {"name", r.display_name()}, {"calibration", qm.calibration},
                                          {"seconds", rep.seconds}, {"peak_rss_mib", peak_rss_mib()},
                                          {"padding", padding},
                                          {"layers", rep.layers}});
        return 0;
      };
    });

}  // namespace

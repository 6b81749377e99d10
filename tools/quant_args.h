// Options shared by the subcommands that quantize (quantize, sweep, layer-loss): the recipe and the
// calibration set, declared once.
#pragma once
#include <optional>
#include <string>

#include "cli.h"
#include "core/atomic_file.h"
#include "core/error.h"
#include "core/runtime.h"
#include "pipeline/calibration.h"
#include "pipeline/recipe.h"

namespace wush::cli {

struct CalibArgs {
  std::string calib;
  int64_t nsamples = 128, seqlen = 512;
  std::optional<uint64_t> seed;

  void add(CLI::App& app) {
    app.add_option("--calib", calib, "calibration text (a *_calib.txt file; never the evaluation text)");
    app.add_option("--nsamples", nsamples, "calibration windows")->capture_default_str();
    app.add_option("--seqlen", seqlen, "tokens per calibration window")->capture_default_str();
    app.add_option("--seed", seed, "draw the windows at random with this seed (default: the first ones)");
  }
  // Checks against the model's context; returns undefined tokens when no --calib was given.
  CalibrationSet load(const Tokenizer& tok, int64_t max_position) const {
    CalibrationSet cs;
    if (calib.empty()) return cs;
    WUSH_CHECK(seqlen <= max_position, "--seqlen %lld is above the model's context of %lld tokens",
               (long long)seqlen, (long long)max_position);
    std::string path = resolve_data_path(calib);
    WUSH_CHECK(path_exists(path) && !is_directory(path), "--calib %s: no such text file", calib.c_str());
    CalibrationOptions o;
    o.nsamples = nsamples;
    o.seqlen = seqlen;
    o.seed = seed;
    cs = load_calibration(tok, path, o);
    if (!cs.note.empty()) std::fprintf(stderr, "wush: warning: %s\n", cs.note.c_str());
    return cs;
  }
  nlohmann::json to_json(const CalibrationSet& cs) const {
    if (!cs.tokens.defined()) return nullptr;
    return {{"file", cs.file}, {"nsamples", cs.tokens.size(0)}, {"seqlen", seqlen},
            {"seed", seed ? nlohmann::json(*seed) : nlohmann::json(nullptr)}};
  }
};

// Defaults from docs/ACCURACY.md (gutenberg-llama-16M, MXFP4 W4A4): GPTQ beats RTN for every
// transform, and GPTQ-WUSH-LOCAL has the lowest perplexity and KL (wush-local also works for any R,
// where wush's SVD form needs R >= G). Damping and bf16 T stay on (REFERENCE §2, both releases).
struct RecipeArgs {
  std::string recipe, format = "mxfp4", transform = "wush-local", weights = "gptq", acts = "quantized";

  void add(CLI::App& app) {
    app.add_option("--recipe", recipe, "transform:format:weights[:w4a16], e.g. wush:mxfp4:gptq (overrides the three below)");
    app.add_option("--format", format, "mxfp4, mxfp4-ocp, nvfp4, mxint4, int4, none")->capture_default_str();
    app.add_option("--transform", transform, "identity, hadamard, random, smoothquant, wus, wush, wush-local, wush-search, latmix-lu, latmix-qr")
        ->capture_default_str();
    app.add_option("--weights", weights, "rtn or gptq")->capture_default_str();
    app.add_option("--acts", acts, "quantized (W4A4) or fp (W4A16)")->capture_default_str();
  }
  Recipe get() const {
    if (!recipe.empty()) return parse_recipe(recipe);
    WUSH_CHECK(acts == "quantized" || acts == "fp", "--acts '%s' (valid: quantized, fp)", acts.c_str());
    return parse_recipe(transform + ":" + format + ":" + weights + (acts == "fp" ? ":w4a16" : ""));
  }
};

}  // namespace wush::cli

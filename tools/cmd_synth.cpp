// wush synth: a Hugging Face directory with seeded random weights in the shapes of a real model.
#include "cli.h"
#include "model/synth.h"

static wush::cli::Register reg("synth", "write a synthetic model (seeded random weights, real shapes)",
                               [](CLI::App& app) -> wush::cli::Action {
                                 auto p = std::make_shared<wush::SynthParams>();
                                 std::string presets;
                                 for (const auto& n : wush::synth_presets()) presets += (presets.empty() ? "" : ", ") + n;
                                 app.add_option("--preset", p->preset, "model shape: " + presets)->required();
                                 app.add_option("--out", p->out, "output directory")->required();
                                 app.add_option("--layers", p->layers, "transformer blocks")->capture_default_str();
                                 app.add_option("--dtype", p->dtype, "bf16 | fp32")->capture_default_str();
                                 app.add_option("--outliers", p->outliers,
                                                "outlier channels (RMSNorm gain 50) in the hidden size")
                                     ->capture_default_str();
                                 app.add_option("--seed", p->seed, "random seed")->capture_default_str();
                                 app.add_flag("--force", p->force, "replace an existing output");
                                 return [p] {
                                   wush::synth_model(*p);
                                   std::printf("wrote %s (%s, %lld layers)\n", p->out.c_str(), p->preset.c_str(),
                                               (long long)p->layers);
                                   return 0;
                                 };
                               });

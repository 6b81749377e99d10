// `wush quantize` options of the LATMiX recipes (latmix-lu, latmix-qr; REFERENCE.md §5): either a
// trained `wush latmix --out DIR` result (--latmix DIR), or training options, trained on the
// quantize command's calibration windows before the pipeline runs.
#pragma once
#include <cstdio>
#include <memory>
#include <string>

#include "cli.h"
#include "core/error.h"
#include "core/progress.h"
#include "core/runtime.h"
#include "latmix/learn.h"
#include "latmix/mx_ste.h"
#include "pipeline/recipe.h"

namespace wush::cli {

// A trained `wush latmix --out DIR` result (the directory or its transforms.safetensors), as given
// to --latmix.
inline std::shared_ptr<const latmix::LatmixTransforms> load_latmix_dir(const std::string& dir) {
  std::string path = resolve_data_path(dir);
  if (is_directory(path)) path += "/transforms.safetensors";
  WUSH_CHECK(path_exists(path), "--latmix %s: no transforms.safetensors there (a `wush latmix --out` directory)",
             dir.c_str());
  return std::make_shared<latmix::LatmixTransforms>(latmix::load_latmix(path));
}

struct LatmixQuantArgs {
  std::string dir, init;
  latmix::TrainOptions train;
  double noise = 1e-3;
  const CLI::Option* batch_size = nullptr;  // the command's own --batch-size (shared, see add())
  std::vector<const CLI::Option*> training;

  // Call after the command declared --batch-size: it also sets the training batch (default 4).
  void add(CLI::App& app) {
    app.add_option("--latmix", dir, "latmix-lu/-qr: a trained `wush latmix --out` directory (or its "
                                    "transforms.safetensors); without it the transforms are trained here");
    training = {
        app.add_option("--steps", train.steps, "latmix training: optimizer steps")->capture_default_str(),
        app.add_option("--lr", train.lr, "latmix training: peak learning rate (AdamW)")->capture_default_str(),
        app.add_option("--temperature", train.temperature, "latmix training: distillation temperature")
            ->capture_default_str(),
        app.add_option("--reg", train.reg, "latmix training: lambda of the volume regularizer")->capture_default_str(),
        app.add_option("--init", init, "latmix training: hadamard | orthogonal | wush (default: hadamard for lu, "
                                       "orthogonal for qr)"),
        app.add_option("--noise", noise, "latmix training: std of the initial off-block noise")->capture_default_str()};
    batch_size = app.get_option("--batch-size");
  }

  // Null for the other recipes. seed: the init's and the batch order's; batch: the command's
  // --batch-size value (used for training only when given).
  std::shared_ptr<const latmix::LatmixTransforms> get(const Recipe& r, const Model& m, const at::Tensor& tokens,
                                                      at::Device dev, int64_t batch, uint64_t seed) const {
    bool trained_here = false;
    for (const CLI::Option* o : training) trained_here |= o->count() > 0;
    if (!is_latmix(r.transform)) {
      WUSH_CHECK(dir.empty() && !trained_here, "--latmix and the latmix training options need --transform "
                                               "latmix-lu or latmix-qr (recipe %s)", r.to_string().c_str());
      return nullptr;
    }
    if (!dir.empty()) {
      WUSH_CHECK(!trained_here, "--latmix %s: already trained; drop the training options (--steps, --lr, ...)",
                 dir.c_str());
      return load_latmix_dir(dir);
    }
    WUSH_CHECK(tokens.defined(), "recipe %s trains LATMiX transforms: give --calib FILE (or --latmix DIR)",
               r.to_string().c_str());
    latmix::TrainOptions t = train;
    t.format = latmix::parse_ste_format(format_name(r.format));
    t.device = dev;
    t.seed = seed;
    t.progress = progress_enabled();
    if (batch_size && batch_size->count() > 0) t.batch_size = batch;
    latmix::InitOptions io;
    io.group = traits(r.format).group;  // the transform blocks are the format's groups (NVFP4: 16)
    io.param = latmix::parse_param(r.transform.substr(7));  // "latmix-lu" -> "lu"
    io.init = init.empty() ? (io.param == latmix::Param::LU ? latmix::Init::Hadamard : latmix::Init::Orthogonal)
                           : latmix::parse_init(init);
    io.noise = noise;
    io.seed = seed;
    latmix::LearnResult res = latmix::learn_latmix(m, tokens, io, t);
    std::printf("latmix: %lld steps in %.1f s; KL(T=1, fp weights) %.5f -> %.5f\n", (long long)t.steps,
                res.summary["train_seconds"].get<double>(), res.summary["kl_before"].get<double>(),
                res.summary["kl_after"].get<double>());
    return std::make_shared<latmix::LatmixTransforms>(std::move(res.transforms));
  }
};

}  // namespace wush::cli

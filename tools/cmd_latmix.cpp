// wush latmix: learn LATMiX affine transforms by distillation (REFERENCE.md §5) and save them with
// their loss curve. The transforms file is what `wush quantize --transform latmix-lu|latmix-qr`
// folds into the model (latmix::apply_latmix) before GPTQ.
#include <chrono>
#include <cstdio>

#include "cli.h"
#include "core/atomic_file.h"
#include "core/progress.h"
#include "latmix/learn.h"
#include "latmix/loss_curve.h"
#include "latmix/mx_ste.h"
#include "pipeline/calibration.h"
#include "runtime_args.h"

namespace {

struct LatmixArgs {
  wush::cli::RuntimeArgs rt;
  std::string calib, format = "mxfp4", param = "lu", init, out;
  wush::CalibrationOptions cal;
  wush::latmix::TrainOptions train;
  wush::latmix::InitOptions init_opt;
  int64_t eval_windows = 8;
  bool force = false;
};

wush::cli::Register reg("latmix", "learn LATMiX affine transforms by distillation (REFERENCE §5)", [](CLI::App& app) -> wush::cli::Action {
  auto a = std::make_shared<LatmixArgs>();
  a->cal.seqlen = 256;
  app.add_option("--model", a->rt.model, "llama2.c .bin or Hugging Face directory")->required();
  app.add_option("--tokenizer", a->rt.tokenizer, "tokenizer file (default: the one found beside the model)");
  app.add_option("--calib", a->calib, "calibration text (a *_calib.txt file)")->required();
  app.add_option("--format", a->format, "activation format trained against: mxfp4, mxint4, nvfp4, int4 (none: no quantization)")
      ->capture_default_str();
  app.add_option("--param", a->param, "parameterization: lu (A = P L (U + diag s)) or qr (A = exp(skew) (R + diag s))")
      ->capture_default_str();
  app.add_option("--init", a->init, "hadamard | orthogonal | wush (default: hadamard for lu, orthogonal for qr)");
  app.add_option("--noise", a->init_opt.noise, "std of the initial off-block noise")->capture_default_str();
  app.add_option("--steps", a->train.steps, "optimizer steps")->capture_default_str();
  app.add_option("--lr", a->train.lr, "peak learning rate (AdamW)")->capture_default_str();
  app.add_option("--warmup", a->train.warmup, "warm-up steps (at most steps/10), then cosine decay")->capture_default_str();
  app.add_option("--weight-decay", a->train.weight_decay, "AdamW weight decay")->capture_default_str();
  app.add_option("--batch-size", a->train.batch_size, "calibration windows per step")->capture_default_str();
  app.add_option("--seqlen", a->cal.seqlen, "calibration window length")->capture_default_str();
  app.add_option("--nsamples", a->cal.nsamples, "calibration windows")->capture_default_str();
  app.add_option("--temperature", a->train.temperature, "distillation temperature")->capture_default_str();
  app.add_option("--reg", a->train.reg, "lambda of the volume regularizer (sum log|s|)^2")->capture_default_str();
  app.add_flag("!--no-scale-grad", a->train.scale_grad,
               "pure STE: no gradient through the MX group scale (default: through amax)");
  app.add_option("--seed", a->train.seed, "seed of the initialization and the batch order")->capture_default_str();
  app.add_option("--device", a->rt.device, "cpu or cuda")->capture_default_str();
  app.add_option("--eval-windows", a->eval_windows, "calibration windows for the KL before/after (temperature 1)")
      ->capture_default_str();
  app.add_option("--out", a->out, "output directory: transforms.safetensors, loss.csv, loss.svg, summary.json")->required();
  app.add_flag("--force", a->force, "replace an existing --out directory");
  return [a] {
    namespace lx = wush::latmix;
    const auto t0 = std::chrono::steady_clock::now();
    a->train.format = lx::parse_ste_format(a->format);
    if (a->train.format != wush::Format::None) a->init_opt.group = wush::traits(a->train.format).group;  // NVFP4: 16
    a->train.device = a->rt.torch_device();
    a->init_opt.param = lx::parse_param(a->param);
    a->init_opt.init = a->init.empty() ? (a->init_opt.param == lx::Param::LU ? lx::Init::Hadamard : lx::Init::Orthogonal)
                                       : lx::parse_init(a->init);
    a->init_opt.seed = a->train.seed;
    a->train.progress = wush::progress_enabled();
    std::string calib_path = wush::resolve_data_path(a->calib);
    WUSH_CHECK(wush::path_exists(calib_path) && !wush::is_directory(calib_path), "--calib %s: no such text file",
               a->calib.c_str());
    wush::AtomicDir dir(a->out, a->force);  // fails early on an existing --out

    wush::Model m = a->rt.load();
    auto tok = a->rt.load_tok(m);
    wush::CalibrationSet cs = wush::load_calibration(*tok, calib_path, a->cal);
    if (!cs.note.empty()) std::fprintf(stderr, "latmix: %s\n", cs.note.c_str());
    std::printf("latmix: %s, %lld calibration windows of %lld tokens from %s\n", m.path.c_str(),
                (long long)cs.tokens.size(0), (long long)cs.tokens.size(1), calib_path.c_str());

    lx::LearnResult r = lx::learn_latmix(m, cs.tokens, a->init_opt, a->train, a->eval_windows);
    nlohmann::json summary = {{"model", m.path}, {"calib", calib_path}, {"device", a->rt.device}};
    summary.update(r.summary);
    r.transforms.info = summary;
    lx::save_latmix(dir.file("transforms.safetensors"), r.transforms);
    wush::write_file_atomic(dir.file("loss.csv"), lx::loss_curve_csv(r.curve));
    wush::write_file_atomic(dir.file("loss.svg"),
                            lx::loss_curve_svg(r.curve, "LATMiX-" + a->param + " " + a->format + ", " + m.path));
    summary["total_seconds"] = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
    wush::cli::write_json(dir.file("summary.json"), summary);
    dir.commit();
    std::printf("latmix: %lld steps in %.1f s; loss %.5f -> %.5f; KL(T=1, %lld windows, fp weights) %.5f -> %.5f; "
                "written to %s\n",
                (long long)a->train.steps, summary["train_seconds"].get<double>(), r.curve.front().loss,
                r.curve.back().loss, summary["eval_windows"].get<long long>(), summary["kl_before"].get<double>(),
                summary["kl_after"].get<double>(), a->out.c_str());
    return 0;
  };
});

}  // namespace

// wush latmix: learn LATMiX affine transforms by distillation (REFERENCE.md §5) and save them with
// their loss curve. The transforms file is what `wush quantize --transform latmix-lu|latmix-qr`
// folds into the model (latmix::apply_latmix) before GPTQ.
#include <chrono>
#include <cstdio>

#include "cli.h"
#include "core/atomic_file.h"
#include "core/progress.h"
#include "latmix/init.h"
#include "latmix/loss_curve.h"
#include "latmix/mx_ste.h"
#include "latmix/train.h"
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
  app.add_option("--format", a->format, "activation format trained against: mxfp4, mxint4 (none: no quantization)")
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

    lx::LatmixTransforms init = lx::init_latmix(m, a->init_opt, cs.tokens);
    init.format = a->train.format;
    at::Tensor ev = cs.tokens.narrow(0, 0, std::min<int64_t>(a->eval_windows, cs.tokens.size(0)));
    const double kl_before = lx::distill_kl(m, init, ev, a->train.format, 1.0, a->train.batch_size, a->train.device);

    lx::TrainResult r = lx::train_latmix(m, cs.tokens, init, a->train);
    const double kl_after = lx::distill_kl(m, r.transforms, ev, a->train.format, 1.0, a->train.batch_size, a->train.device);
    const double fold_err = lx::distill_kl(m, r.transforms, ev.narrow(0, 0, 1), wush::Format::None, 1.0, 1, a->train.device);

    nlohmann::json summary = {
        {"model", m.path}, {"calib", calib_path}, {"windows", cs.tokens.size(0)}, {"seqlen", cs.tokens.size(1)},
        {"format", a->format}, {"param", a->param}, {"init", lx::init_name(a->init_opt.init)},
        {"noise", a->init_opt.noise}, {"steps", a->train.steps}, {"lr", a->train.lr}, {"warmup", a->train.warmup},
        {"weight_decay", a->train.weight_decay}, {"batch_size", a->train.batch_size},
        {"temperature", a->train.temperature}, {"reg", a->train.reg}, {"scale_grad", a->train.scale_grad}, {"seed", a->train.seed},
        {"device", a->rt.device}, {"train_seconds", r.seconds},
        {"loss_first", r.curve.front().loss}, {"loss_last", r.curve.back().loss},
        {"kl_before", kl_before}, {"kl_after", kl_after}, {"eval_windows", ev.size(0)},
        {"kl_unquantized_after", fold_err}};
    r.transforms.format = a->train.format;
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
                (long long)a->train.steps, r.seconds, r.curve.front().loss, r.curve.back().loss, (long long)ev.size(0),
                kl_before, kl_after, a->out.c_str());
    return 0;
  };
});

}  // namespace

#include "latmix/learn.h"

#include "latmix/mx_ste.h"

namespace wush::latmix {

LearnResult learn_latmix(const Model& m, const at::Tensor& tokens, const InitOptions& init_opt,
                         const TrainOptions& train, int64_t eval_windows) {
  LatmixTransforms init = init_latmix(m, init_opt, tokens);
  init.format = train.format;
  at::Tensor ev = tokens.narrow(0, 0, std::min<int64_t>(eval_windows, tokens.size(0)));
  const double kl_before = distill_kl(m, init, ev, train.format, 1.0, train.batch_size, train.device);

  TrainResult r = train_latmix(m, tokens, init, train);
  const double kl_after = distill_kl(m, r.transforms, ev, train.format, 1.0, train.batch_size, train.device);
  const double fold_err = distill_kl(m, r.transforms, ev.narrow(0, 0, 1), Format::None, 1.0, 1, train.device);

  LearnResult out;
  out.summary = {{"windows", tokens.size(0)}, {"seqlen", tokens.size(1)}, {"format", ste_format_name(train.format)},
                 {"param", param_name(init_opt.param)}, {"init", init_name(init_opt.init)}, {"noise", init_opt.noise},
                 {"steps", train.steps}, {"lr", train.lr}, {"warmup", train.warmup},
                 {"weight_decay", train.weight_decay}, {"batch_size", train.batch_size},
                 {"temperature", train.temperature}, {"reg", train.reg}, {"scale_grad", train.scale_grad},
                 {"seed", train.seed}, {"train_seconds", r.seconds}, {"loss_first", r.curve.front().loss},
                 {"loss_last", r.curve.back().loss}, {"kl_before", kl_before}, {"kl_after", kl_after},
                 {"eval_windows", ev.size(0)}, {"kl_unquantized_after", fold_err}};
  out.transforms = r.transforms;
  out.transforms.format = train.format;
  out.transforms.info = out.summary;
  out.curve = std::move(r.curve);
  return out;
}

}  // namespace wush::latmix

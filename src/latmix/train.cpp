#include "latmix/train.h"

#include <c10/core/GradMode.h>
#include <ATen/CPUGeneratorImpl.h>
#include <torch/optim/adamw.h>

#include <chrono>
#include <cmath>
#include <cstdio>
#include <optional>

#include "core/error.h"
#include "core/progress.h"
#include "latmix/fold.h"
#include "latmix/mx_ste.h"
#include "model/forward.h"

namespace wush::latmix {

namespace {

// KL(softmax(t / tau) || softmax(s / tau)), mean over positions.
at::Tensor kl_loss(const at::Tensor& teacher_logits, const at::Tensor& student_logits, double tau) {
  at::Tensor lp = at::log_softmax(teacher_logits.to(at::kFloat) / tau, -1);
  at::Tensor lq = at::log_softmax(student_logits.to(at::kFloat) / tau, -1);
  return (lp.exp() * (lp - lq)).sum(-1).mean();
}

// The transformed student: a Transformer over m whose weights are replaced by the folded ones.
struct Student {
  Transformer tr;
  std::map<std::string, at::Tensor> base;
  LatmixTransforms t;  // on the device, fp32
  ForwardHooks hooks;

  Student(const Model& m, const LatmixTransforms& init, Format f, at::Device dev, bool scale_grad = true)
      : tr(m, dev, at::kFloat), base(base_weights(m, dev, at::kFloat)), t(init.detached().to(dev, at::kFloat)) {
    hooks = training_hooks(tr, &t.t1, f, t.group, scale_grad);
  }
  void refresh() {
    for (auto& [name, w] : transformed_weights(base, tr.config(), t)) tr.set_weight(name, w);
  }
  at::Tensor logits(const at::Tensor& tokens) { return tr.forward(tokens, &hooks); }
};

void check_tokens(const Model& m, const at::Tensor& tokens) {
  WUSH_CHECK(tokens.defined() && tokens.dim() == 2 && tokens.size(0) > 0 && tokens.size(1) > 1,
             "latmix: calibration tokens must be [n >= 1, L >= 2] windows");
  WUSH_CHECK(tokens.max().item<int64_t>() < m.config.vocab_size && tokens.min().item<int64_t>() >= 0,
             "latmix: calibration token ids outside the vocabulary of %s", m.path.c_str());
}

}  // namespace

double scheduled_lr(const TrainOptions& opt, int64_t step) {
  const int64_t warm = std::min(opt.warmup, opt.steps / 10);
  if (step < warm) return opt.lr * double(step + 1) / double(warm);
  const double p = double(step - warm) / double(std::max<int64_t>(1, opt.steps - warm));
  return opt.lr * 0.5 * (1 + std::cos(M_PI * p));
}

TrainResult train_latmix(const Model& m, const at::Tensor& tokens, const LatmixTransforms& init,
                         const TrainOptions& opt) {
  check_tokens(m, tokens);
  WUSH_CHECK(opt.steps > 0 && opt.batch_size > 0 && opt.lr > 0 && opt.temperature > 0 && opt.reg >= 0,
             "latmix: steps, batch size, lr and temperature must be positive, reg non-negative");
  const auto t0 = std::chrono::steady_clock::now();
  Transformer teacher(m, opt.device, at::kFloat);
  Student st(m, init, opt.format, opt.device, opt.scale_grad);
  st.t.set_requires_grad(true);
  torch::optim::AdamW adam(st.t.parameters(), torch::optim::AdamWOptions(opt.lr).weight_decay(opt.weight_decay));

  at::Generator gen = at::make_generator<at::CPUGeneratorImpl>(opt.seed);
  const int64_t n = tokens.size(0), B = std::min(opt.batch_size, n);
  at::Tensor order;
  int64_t cursor = n;  // forces a first permutation
  std::optional<Progress> bar;
  if (opt.progress) bar.emplace("latmix " + ste_format_name(opt.format), opt.steps, "step");
  TrainResult res;
  double ema = 0;
  for (int64_t step = 0; step < opt.steps; ++step) {
    if (cursor + B > n) {
      order = at::randperm(n, gen, at::TensorOptions().dtype(at::kLong));
      cursor = 0;
    }
    at::Tensor batch = tokens.index_select(0, order.narrow(0, cursor, B)).to(opt.device);
    cursor += B;
    const double lr = scheduled_lr(opt, step);
    for (auto& g : adam.param_groups()) static_cast<torch::optim::AdamWOptions&>(g.options()).lr(lr);

    at::Tensor tl;
    {
      c10::NoGradGuard ng;
      tl = teacher.forward(batch);
    }
    st.refresh();
    at::Tensor kl = kl_loss(tl, st.logits(batch), opt.temperature);
    at::Tensor reg = st.t.volume_penalty();
    at::Tensor loss = kl + opt.reg * reg;
    adam.zero_grad();
    loss.backward();
    adam.step();

    LossPoint p{step, loss.item<double>(), kl.item<double>(), reg.item<double>(), lr};
    WUSH_CHECK(std::isfinite(p.loss), "latmix: the loss is %g at step %lld (lower --lr)", p.loss, (long long)step);
    res.curve.push_back(p);
    ema = step == 0 ? p.loss : 0.95 * ema + 0.05 * p.loss;
    if (opt.progress) {
      char note[64];
      std::snprintf(note, sizeof note, "loss %.5f (avg %.5f)", p.loss, ema);
      bar->update(step + 1, note);
    }
  }
  if (bar) bar->finish();
  res.transforms = st.t.detached().to(at::kCPU, at::kFloat);
  res.seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  return res;
}

double distill_kl(const Model& m, const LatmixTransforms& t, const at::Tensor& tokens, Format format,
                  double temperature, int64_t batch_size, at::Device device) {
  check_tokens(m, tokens);
  c10::NoGradGuard ng;
  Transformer teacher(m, device, at::kFloat);
  Student st(m, t, format, device);
  st.refresh();
  double sum = 0;
  int64_t count = 0;
  for (int64_t i = 0; i < tokens.size(0); i += batch_size) {
    at::Tensor b = tokens.narrow(0, i, std::min(batch_size, tokens.size(0) - i)).to(device);
    sum += kl_loss(teacher.forward(b), st.logits(b), temperature).item<double>() * double(b.size(0));
    count += b.size(0);
  }
  return sum / double(count);
}

}  // namespace wush::latmix

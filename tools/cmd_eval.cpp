// wush eval: perplexity of text files, zero-shot tasks and KL divergence against a reference model
// (REFERENCE.md §6). One JSON document: {"name", "ppl": {stem: ...}, "kl": {stem: ...},
// "tasks": {task: {"acc", "acc_norm", "n"}}, "average": {"acc", "acc_norm", "tasks"}}.
#include <cstdio>

#include "cli.h"
#include "core/atomic_file.h"
#include "core/paths.h"
#include "eval/kl_divergence.h"
#include "eval/perplexity.h"
#include "eval/zeroshot.h"
#include "model/forward.h"
#include "pipeline/quant_linear_cuda.h"
#include "runtime_args.h"

namespace {

struct EvalArgs {
  wush::cli::RuntimeArgs rt;
  std::vector<std::string> ppl;
  wush::PplOptions opt;
  std::string tasks, data_dir, json, name, kl_ref;
  wush::ZeroShotOptions zs;
  bool no_share = false;
};

struct TaskInput {
  const wush::TaskInfo* info;
  std::vector<wush::TaskDoc> docs;
};

void print_task_table(const std::vector<wush::TaskResult>& res) {
  std::printf("%-16s %7s %8s %9s %9s %8s\n", "task", "n", "acc", "acc_norm", "ppl", "time");
  for (const wush::TaskResult& r : res) {
    std::string ppl = r.ppl > 0 ? wush::strfmt("%9.3f", r.ppl) : std::string(9, ' ');
    std::printf("%-16s %7lld %8.4f %9.4f %s %7.1fs\n", r.task.c_str(), (long long)r.n, r.acc, r.acc_norm, ppl.c_str(),
                r.seconds);
  }
  auto [a, an] = wush::average_accuracy(res);
  std::printf("%-16s %7s %8.4f %9.4f\n", "average", "", a, an);
}

wush::cli::Register reg("eval", "perplexity, zero-shot tasks and KL divergence of a model", [](CLI::App& app) -> wush::cli::Action {
  auto a = std::make_shared<EvalArgs>();
  a->rt.add(app);
  app.add_option("--ppl", a->ppl, "text file(s) to score");
  app.add_option("--ppl-mode", a->opt.mode,
                 "stories (split on <|endoftext|>, BOS per story) or windows (whole file, non-overlapping "
                 "windows); default: stories if the file contains <|endoftext|>")
      ->check(CLI::IsMember({"stories", "windows"}));
  app.add_option("--seqlen", a->opt.seqlen, "window length / story cut (0 = the model's context)")
      ->capture_default_str();
  app.add_option("--batch-size", a->opt.batch_size, "sequences per forward pass")->capture_default_str();
  app.add_option("--max-sequences", a->opt.max_sequences, "score only the first N windows / stories (0 = all)")
      ->capture_default_str();
  app.add_option("--tasks", a->tasks, "zero-shot tasks: 'all' or a comma-separated list of " +
                                          [] {
                                            std::string s;
                                            for (const auto& t : wush::all_tasks()) s += (s.empty() ? "" : ",") + std::string(t.name);
                                            return s;
                                          }());
  app.add_option("--limit", a->zs.limit, "score only the first N items of each task (0 = all)")->capture_default_str();
  app.add_option("--num-fewshot", a->zs.num_fewshot, "K solved examples from the same file before each item")
      ->capture_default_str();
  app.add_option("--fewshot-seed", a->zs.fewshot_seed, "seed of the few-shot example choice")->capture_default_str();
  app.add_flag("--no-prefix-sharing", a->no_share, "score every choice as a full sequence (no shared context pass)");
  app.add_option("--data-dir", a->data_dir, "folder holding tasks/ (default: $WUSH_DATA or ../shared/data)");
  app.add_option("--kl-ref", a->kl_ref, "reference model: KL(p_ref || p_model) and top-1 agreement on the --ppl texts");
  app.add_option("--name", a->name, "method name recorded in the JSON (wush report's row label)");
  app.add_option("--json", a->json, "write the results as JSON ('-' = stdout)");
  return [a] {
    WUSH_CHECK(a->kl_ref.empty() || !a->ppl.empty(), "--kl-ref needs --ppl FILE... (the texts both models score)");
    WUSH_CHECK(!a->ppl.empty() || !a->tasks.empty(), "eval: nothing to do: give --ppl FILE... and/or --tasks LIST");
    // Inputs are all read before the model loads: a typo fails fast.
    std::vector<std::pair<std::string, std::string>> texts;  // stem, text
    for (const std::string& f : a->ppl) {
      std::string path = wush::resolve_data_path(f);
      WUSH_CHECK(wush::path_exists(path) && !wush::is_directory(path), "--ppl %s: no such text file", f.c_str());
      texts.emplace_back(wush::path_stem(path), wush::read_file(path));
    }
    std::vector<TaskInput> tasks;
    if (!a->tasks.empty()) {
      std::string dir = a->data_dir.empty() ? wush::default_data_dir() : a->data_dir;
      WUSH_CHECK(!dir.empty() && wush::is_directory(dir), "--data-dir '%s': no such folder (it must hold tasks/)",
                 dir.c_str());
      for (const wush::TaskInfo* t : wush::parse_task_list(a->tasks)) tasks.push_back({t, wush::load_task(*t, dir)});
    }
    wush::Model m = a->rt.load();
    auto tok = a->rt.load_tok(m);
    wush::Transformer model = a->rt.transformer(m);
    nlohmann::json out = {{"model", m.path}, {"device", a->rt.device}, {"dtype", a->rt.dtype}};
    if (!a->name.empty()) out["name"] = a->name;

    if (!texts.empty()) out["ppl"] = nlohmann::json::object();
    for (const auto& [stem, text] : texts) {
      wush::PplResult r = wush::perplexity(model, *tok, text, a->opt, stem);
      double tps = r.seconds > 0 ? double(r.tokens) / r.seconds : 0;
      std::printf("%-28s %-8s %9lld tokens  nll %.6f  ppl %.5f  (%.1f s, %.0f tok/s)\n", stem.c_str(), r.mode.c_str(),
                  (long long)r.tokens, r.nll, r.ppl, r.seconds, tps);
      out["ppl"][stem] = {{"tokens", r.tokens}, {"nll", r.nll},          {"ppl", r.ppl},
                          {"mode", r.mode},     {"sequences", r.sequences}, {"seconds", r.seconds}};
    }

    if (!a->kl_ref.empty()) {
      wush::Model mref = wush::load_model(wush::resolve_data_path(a->kl_ref));
      wush::Transformer ref(mref, a->rt.torch_device(), a->rt.torch_dtype());
      out["kl"] = nlohmann::json::object();
      for (const auto& [stem, text] : texts) {
        wush::KlResult r = wush::kl_divergence_text({&ref}, {&model}, *tok, text, a->opt, stem);
        std::printf("%-28s KL(ref || model) %.6f  top-1 agreement %.4f  over %lld tokens  (ref nll %.6f, model nll %.6f)\n",
                    stem.c_str(), r.kl, r.top1, (long long)r.tokens, r.nll_ref, r.nll_q);
        out["kl"][stem] = {{"kl", r.kl},           {"top1", r.top1},   {"tokens", r.tokens}, {"ref_model", mref.path},
                           {"nll_ref", r.nll_ref}, {"nll", r.nll_q}, {"seconds", r.seconds}};
      }
    }

    if (!tasks.empty()) {
      a->zs.scoring.batch_size = a->opt.batch_size;
      a->zs.scoring.share_prefix = !a->no_share;
      std::vector<wush::TaskResult> res;
      out["tasks"] = nlohmann::json::object();
      for (const TaskInput& t : tasks) {
        res.push_back(wush::evaluate_task(model, nullptr, *tok, *t.info, t.docs, a->zs));
        const wush::TaskResult& r = res.back();
        out["tasks"][r.task] = {{"acc", r.acc}, {"acc_norm", r.acc_norm}, {"n", r.n}, {"seconds", r.seconds}};
        if (r.ppl > 0) out["tasks"][r.task]["ppl"] = r.ppl;
        if (r.clipped > 0) {
          out["tasks"][r.task]["clipped"] = r.clipped;
          std::fprintf(stderr, "note: %s: %lld continuations longer than the model's context (%lld): their last %lld tokens scored\n",
                       r.task.c_str(), (long long)r.clipped, (long long)m.config.max_position,
                       (long long)m.config.max_position);
        }
      }
      print_task_table(res);
      auto [avg, avg_norm] = wush::average_accuracy(res);
      out["average"] = {{"acc", avg}, {"acc_norm", avg_norm}, {"tasks", res.size()}};
      out["num_fewshot"] = a->zs.num_fewshot;
      if (a->zs.limit > 0) out["limit"] = a->zs.limit;
    }
    const wush::CudaW4A4Stats st = wush::cuda_w4a4_stats();
    if (st.calls > 0) {  // quantized layers that ran the real W4A4 kernels (quant_linear_cuda.h)
      std::printf("W4A4 on CUDA: %lld layer calls through the fused quantizer + W4A4 GEMM; %lld FP8 chunks beyond the "
                  "exact span, %lld NVFP4 scale overflows\n",
                  (long long)st.calls, (long long)st.span_exceeded_chunks, (long long)st.scale_overflow_groups);
      out["cuda_w4a4"] = {{"calls", st.calls}, {"span_exceeded_chunks", st.span_exceeded_chunks},
                          {"scale_overflow_groups", st.scale_overflow_groups}, {"row_calls", st.row_calls},
                          {"inexact_rows", st.inexact_rows}};
      if (st.row_calls > 0)
        std::printf("W4A4 row path (WUSH_W4A4=row): %lld calls, %lld activation rows beyond the exact span\n",
                    (long long)st.row_calls, (long long)st.inexact_rows);
    }
    if (!a->json.empty()) wush::cli::write_json(a->json, out);
    return 0;
  };
});

}  // namespace

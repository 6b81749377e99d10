// wush eval: perplexity of text files (REFERENCE.md §6), stories or windows mode.
#include <cstdio>
#include <filesystem>

#include "cli.h"
#include "core/atomic_file.h"
#include "eval/perplexity.h"
#include "model/forward.h"
#include "runtime_args.h"

namespace {

struct EvalArgs {
  wush::cli::RuntimeArgs rt;
  std::vector<std::string> ppl;
  wush::PplOptions opt;
  std::string json;
};

wush::cli::Register reg("eval", "perplexity of text files (stories or windows mode)", [](CLI::App& app) -> wush::cli::Action {
  auto a = std::make_shared<EvalArgs>();
  a->rt.add(app);
  app.add_option("--ppl", a->ppl, "text file(s) to score")->required();
  app.add_option("--ppl-mode", a->opt.mode,
                 "stories (split on <|endoftext|>, BOS per story) or windows (whole file, non-overlapping "
                 "windows); default: stories if the file contains <|endoftext|>")
      ->check(CLI::IsMember({"stories", "windows"}));
  app.add_option("--seqlen", a->opt.seqlen, "window length / story cut (0 = the model's context)")
      ->capture_default_str();
  app.add_option("--batch-size", a->opt.batch_size, "sequences per forward pass")->capture_default_str();
  app.add_option("--json", a->json, "write {\"ppl\": {stem: {tokens, nll, ppl}}} ('-' = stdout)");
  return [a] {
    std::vector<std::pair<std::string, std::string>> texts;  // stem, text: all read before the model loads
    for (const std::string& f : a->ppl) {
      std::string path = wush::resolve_data_path(f);
      WUSH_CHECK(wush::path_exists(path) && !wush::is_directory(path), "--ppl %s: no such text file", f.c_str());
      texts.emplace_back(std::filesystem::path(path).stem().string(), wush::read_file(path));
    }
    wush::Model m = a->rt.load();
    auto tok = a->rt.load_tok(m);
    wush::Transformer model(m, a->rt.torch_device(), a->rt.torch_dtype());
    nlohmann::json out = {{"model", m.path}, {"device", a->rt.device}, {"dtype", a->rt.dtype}, {"ppl", nlohmann::json::object()}};
    for (const auto& [stem, text] : texts) {
      wush::PplResult r = wush::perplexity(model, *tok, text, a->opt, stem);
      double tps = r.seconds > 0 ? double(r.tokens) / r.seconds : 0;
      std::printf("%-28s %-8s %9lld tokens  nll %.6f  ppl %.5f  (%.1f s, %.0f tok/s)\n", stem.c_str(), r.mode.c_str(),
                  (long long)r.tokens, r.nll, r.ppl, r.seconds, tps);
      out["ppl"][stem] = {{"tokens", r.tokens}, {"nll", r.nll},          {"ppl", r.ppl},
                          {"mode", r.mode},     {"sequences", r.sequences}, {"seconds", r.seconds}};
    }
    if (!a->json.empty()) wush::cli::write_json(a->json, out);
    return 0;
  };
});

}  // namespace

// wush generate: text from a model with the KV cache (greedy at --temperature 0).
#include <cstdio>

#include "cli.h"
#include "model/forward.h"
#include "model/generate.h"
#include "runtime_args.h"

namespace {

struct GenerateArgs {
  wush::cli::RuntimeArgs rt;
  wush::GenerateOptions gen;
  std::string json;
};

wush::cli::Register reg("generate", "generate text from a prompt (KV cache; greedy at --temperature 0)",
                        [](CLI::App& app) -> wush::cli::Action {
  auto a = std::make_shared<GenerateArgs>();
  a->rt.add(app);
  app.add_option("--prompt", a->gen.prompt, "text to continue (empty: start from BOS)");
  app.add_option("--max-new-tokens", a->gen.max_new_tokens, "tokens to generate at most")->capture_default_str();
  app.add_option("--temperature", a->gen.temperature, "sampling temperature; 0 = greedy")->capture_default_str();
  app.add_option("--top-p", a->gen.top_p, "nucleus sampling mass (outside (0,1): full distribution)")
      ->capture_default_str();
  app.add_option("--seed", a->gen.seed, "random seed for sampling")->capture_default_str();
  app.add_option("--json", a->json, "write the prompt, ids, text and speed as JSON ('-' = stdout)");
  return [a] {
    wush::Model m = a->rt.load();
    auto tok = a->rt.load_tok(m);
    wush::Transformer model = a->rt.transformer(m);
    const bool to_stdout = a->json != "-";
    auto r = wush::generate(model, *tok, a->gen, [&](const std::string& s) {
      if (to_stdout) std::fputs(s.c_str(), stdout), std::fflush(stdout);
    });
    if (to_stdout) std::fputc('\n', stdout);
    double tps = r.seconds > 0 ? double(r.new_ids.size()) / r.seconds : 0;
    std::fprintf(stderr, "%zu new tokens in %.2f s (%.1f tok/s), stop: %s\n", r.new_ids.size(), r.seconds, tps,
                 r.stop.c_str());
    if (!a->json.empty())
      wush::cli::write_json(a->json, {{"model", m.path},
                                      {"prompt", a->gen.prompt},
                                      {"prompt_ids", r.prompt_ids},
                                      {"new_ids", r.new_ids},
                                      {"text", r.text},
                                      {"stop", r.stop},
                                      {"temperature", a->gen.temperature},
                                      {"top_p", a->gen.top_p},
                                      {"seed", a->gen.seed},
                                      {"seconds", r.seconds},
                                      {"tokens_per_s", tps}});
    return 0;
  };
});

}  // namespace

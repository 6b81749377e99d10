// wush convert: a llama2.c checkpoint (+ its tokenizer) -> a Hugging Face directory.
#include "cli.h"
#include "core/atomic_file.h"
#include "core/error.h"
#include "core/runtime.h"
#include "model/hf_model.h"
#include "model/llama2c.h"

namespace {
struct ConvertParams {
  std::string llama2c, tokenizer, out;
  bool force = false;
};
}  // namespace

static wush::cli::Register reg(
    "convert", "convert a llama2.c checkpoint into a Hugging Face directory", [](CLI::App& app) -> wush::cli::Action {
      auto p = std::make_shared<ConvertParams>();
      app.add_option("--llama2c", p->llama2c, "llama2.c checkpoint (.bin)")->required();
      app.add_option("--tokenizer", p->tokenizer, "its tokenizer (tok512.bin), copied as is")->required();
      app.add_option("--out", p->out, "output directory")->required();
      app.add_flag("--force", p->force, "replace an existing output");
      return [p] {
        std::string bin = wush::resolve_data_path(p->llama2c), tok = wush::resolve_data_path(p->tokenizer);
        WUSH_CHECK(wush::path_exists(tok) && !wush::is_directory(tok), "--tokenizer: %s: no such file", tok.c_str());
        wush::Model m = wush::load_llama2c(bin);
        m.tokenizer_path = tok;
        wush::save_hf_model(m, p->out, p->force);
        std::printf("wrote %s\n", p->out.c_str());
        return 0;
      };
    });

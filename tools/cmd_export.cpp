// wush export: a wush checkpoint (REFERENCE.md §8) -> a layout another engine loads, or a refusal
// naming what that engine cannot represent (docs/FORMAT.md "Exports").
#include <cstdio>

#include "cli.h"
#include "core/error.h"
#include "pipeline/checkpoint.h"
#include "pipeline/export.h"

namespace {

struct ExportArgs {
  std::string to, src, dst;
  bool force = false;
};

wush::cli::Register reg(
    "export", "export a wush checkpoint for vLLM (compressed-tensors) or llama.cpp (GGUF)",
    [](CLI::App& app) -> wush::cli::Action {
      auto a = std::make_shared<ExportArgs>();
      app.add_option("--to", a->to,
                     "compressed-tensors (a Hugging Face directory), gguf (one file), or dequantized (a safetensors "
                     "file of every linear's dequantized W~ and T, for interop checks)")
          ->required();
      app.add_option("src", a->src, "wush checkpoint directory")->required();
      app.add_option("dst", a->dst, "output directory or file")->required();
      app.add_flag("--force", a->force, "replace an existing output");
      return [a] {
        WUSH_CHECK(a->to == "dequantized" || a->to == "compressed-tensors" || a->to == "gguf",
                   "--to '%s' (valid: compressed-tensors, gguf, dequantized)", a->to.c_str());
        WUSH_CHECK(wush::is_quantized_checkpoint(a->src), "%s: not a wush checkpoint (config.json without "
                   "quantization_config.quant_method = \"wush\")", a->src.c_str());
        wush::QuantizedModel qm = wush::load_quantized(a->src);
        wush::ExportOptions o;
        o.force = a->force;
        std::vector<std::string> notes;
        if (a->to == "dequantized") {
          wush::dump_dequantized(qm, a->dst, o);
        } else if (wush::parse_export_target(a->to) == wush::ExportTarget::Gguf) {
          notes = wush::export_gguf(qm, a->dst, o);
        } else {
          notes = wush::export_compressed_tensors(qm, a->dst, o);
        }
        for (const auto& n : notes) std::fprintf(stderr, "wush: note: %s\n", n.c_str());
        std::printf("%s (%s) -> %s: %s\n", a->src.c_str(), qm.recipe.to_string().c_str(), a->to.c_str(), a->dst.c_str());
        return 0;
      };
    });

}  // namespace

// wush layer-loss: the per-layer W4A4 loss table of the paper (REFERENCE.md §6, Table 1): rows =
// transforms, columns = the seven linears of a block, one section per format; RTN weights,
// ||Y - Y_q||^2 / numel on the full-precision model's calibration inputs.
//   wush layer-loss --model M --calib FILE --all-blocks --formats mxfp4,nvfp4 --transforms identity,wush
#include <cstdio>

#include "cli.h"
#include "pipeline/layer_loss.h"
#include "quant_args.h"
#include "runtime_args.h"

namespace {

struct LayerLossArgs {
  wush::cli::RuntimeArgs rt;
  wush::cli::CalibArgs calib;
  std::string formats = "mxfp4,nvfp4,mxint4,int4", transforms = "identity,random,hadamard,wus,wush,wush-local", json;
  int64_t block = 0, batch = 8;
  bool all_blocks = false;
  int random_seeds = 10;
};

wush::cli::Register reg(
    "layer-loss", "per-layer W4A4 RTN loss ||Y - Y_q||^2 / numel of each format x transform (the paper's Table 1)",
    [](CLI::App& app) -> wush::cli::Action {
      auto a = std::make_shared<LayerLossArgs>();
      a->rt.add(app);
      a->calib.add(app);
      auto* blk = app.add_option("--block", a->block, "the block to measure")->capture_default_str();
      app.add_flag("--all-blocks", a->all_blocks, "measure every block and print their average")->excludes(blk);
      app.add_option("--formats", a->formats, "comma-separated formats")->capture_default_str();
      app.add_option("--transforms", a->transforms, "comma-separated transforms")->capture_default_str();
      app.add_option("--random-seeds", a->random_seeds, "seeds the random transform's loss is averaged over")
          ->capture_default_str();
      app.add_option("--batch-size", a->batch, "calibration windows per forward pass")->capture_default_str();
      app.add_option("--json", a->json, "also write the losses as JSON to FILE ('-' = stdout)");
      return [a] {
        wush::LayerLossOptions o;
        o.formats = wush::parse_format_list(a->formats, "--formats");
        o.transforms = wush::parse_transform_list(a->transforms, "--transforms");
        WUSH_CHECK(a->random_seeds >= 1, "--random-seeds %d: need at least 1", a->random_seeds);
        WUSH_CHECK(a->batch >= 1, "--batch-size %lld: need at least 1", (long long)a->batch);
        WUSH_CHECK(!a->calib.calib.empty(), "layer-loss needs calibration text (--calib FILE)");
        o.random_seeds = a->random_seeds;
        o.batch = a->batch;
        o.device = a->rt.torch_device();
        o.dtype = a->rt.torch_dtype();
        wush::Model m = a->rt.load();
        auto tok = a->rt.load_tok(m);
        wush::CalibrationSet cs = a->calib.load(*tok, m.config.max_position);
        std::vector<int64_t> blocks;
        if (a->all_blocks)
          for (int64_t b = 0; b < m.config.num_layers; ++b) blocks.push_back(b);
        else
          blocks.push_back(a->block);
        wush::LayerLossResult res = wush::run_layer_loss(m, cs.tokens, blocks, o);

        std::printf("%s: %lld calibration windows x %lld tokens of %s; random = mean of %d seeds\n", m.path.c_str(),
                    (long long)cs.tokens.size(0), (long long)cs.tokens.size(1), cs.file.c_str(), o.random_seeds);
        std::vector<std::string> notes = wush::padding_notes(m.config, o.formats);
        for (const auto& n : notes) std::printf("note: %s\n", n.c_str());
        std::printf("\n");
        for (size_t k = 0; k < res.blocks.size(); ++k)
          std::printf("%s", wush::format_loss_table(res.per_block[k], o, "block " + std::to_string(res.blocks[k])).c_str());
        if (a->all_blocks)
          std::printf("%s", wush::format_loss_table(res.mean, o,
                                                    "mean over " + std::to_string(res.blocks.size()) + " blocks")
                                .c_str());
        if (!a->json.empty()) {
          nlohmann::json j = {{"model", m.path},
                              {"calibration", a->calib.to_json(cs)},
                              {"weights", "rtn"},
                              {"random_seeds", o.random_seeds},
                              {"padding", notes},
                              {"loss", wush::loss_table_json(res.mean)}};
          if (a->all_blocks) {
            nlohmann::json per = nlohmann::json::object();
            for (size_t k = 0; k < res.blocks.size(); ++k)
              per[std::to_string(res.blocks[k])] = wush::loss_table_json(res.per_block[k]);
            j["blocks"] = per;
          } else {
            j["block"] = a->block;
          }
          wush::cli::write_json(a->json, j);
        }
        return 0;
      };
    });

}  // namespace

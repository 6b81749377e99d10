// Options shared by the subcommands that run a model (generate, eval): --model, --tokenizer,
// --device, --dtype, declared once here.
#pragma once
#include <ATen/ATen.h>

#include <memory>
#include <string>

#include "cli.h"
#include "core/error.h"
#include "core/runtime.h"
#include "model/model.h"
#include "model/tokenizer.h"
#include "model/forward.h"
#include "pipeline/checkpoint.h"

namespace wush::cli {

struct RuntimeArgs {
  std::string model, tokenizer, device = "cpu", dtype = "fp32";

  void add(CLI::App& app) {
    app.add_option("--model", model, "llama2.c .bin or Hugging Face directory")->required();
    app.add_option("--tokenizer", tokenizer, "tokenizer file (default: the one found beside the model)");
    app.add_option("--device", device, "cpu or cuda")->capture_default_str();
    app.add_option("--dtype", dtype, "compute dtype: fp32 or bf16")->capture_default_str();
  }

  at::Device torch_device() const {
    if (device == "cpu") return at::kCPU;
    WUSH_CHECK(device == "cuda" || device.rfind("cuda:", 0) == 0, "--device '%s' is not a device (valid: cpu, cuda, cuda:N)",
               device.c_str());
    WUSH_CHECK(at::hasCUDA(), "--device %s: this build of libtorch sees no CUDA device", device.c_str());
    return at::Device(device);
  }

  at::ScalarType torch_dtype() const {
    if (dtype == "fp32") return at::kFloat;
    if (dtype == "bf16") return at::kBFloat16;
    WUSH_FAIL("--dtype '%s' is not a compute dtype (valid: fp32, bf16)", dtype.c_str());
  }

  // The model to run. A wush quantized checkpoint loads as its base tensors; transformer() then
  // runs its simulated W4A4 linears.
  Model load() {
    std::string path = resolve_data_path(model);
    if (is_quantized_checkpoint(path)) {
      qm = std::make_shared<QuantizedModel>(load_quantized(path));
      return qm->base;
    }
    return load_model(path);
  }

  Transformer transformer(const Model& m) const {
    if (!qm) return Transformer(m, torch_device(), torch_dtype());
    WUSH_CHECK(torch_dtype() == at::kFloat || torch_device().is_cuda(),
               "%s: quantized checkpoints are simulated in fp32 on the CPU (use --dtype fp32)", model.c_str());
    return qm->transformer(torch_device(), torch_dtype());
  }

  std::shared_ptr<QuantizedModel> qm;  // set by load() for a quantized checkpoint

  std::unique_ptr<Tokenizer> load_tok(const Model& m) const {
    std::string path = tokenizer.empty() ? m.tokenizer_path : resolve_data_path(tokenizer);
    WUSH_CHECK(!path.empty(), "%s: no tokenizer found beside the model; pass --tokenizer FILE", m.path.c_str());
    auto tok = load_tokenizer(path);
    WUSH_CHECK(tok->vocab_size() <= m.config.vocab_size,
               "%s: %d tokens, more than the vocabulary of %s (%lld): wrong tokenizer for this model", path.c_str(),
               tok->vocab_size(), m.path.c_str(), (long long)m.config.vocab_size);
    return tok;
  }
};

}  // namespace wush::cli

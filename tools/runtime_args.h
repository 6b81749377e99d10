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

  Model load() const { return load_model(resolve_data_path(model)); }

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

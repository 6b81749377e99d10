// llama2.c checkpoints (../shared/data/README.md): 7 x int32 header, then fp32 tensors.
#pragma once
#include <string>

#include "model/model.h"

namespace wush {

// Loads a llama2.c .bin into Hugging Face names and layout (q/k weights permuted to HF's
// rotate-half RoPE convention so that the one forward pass serves both).
Model load_llama2c(const std::string& path);

}  // namespace wush

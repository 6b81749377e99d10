// `wush bench kernels` (issue 8 item 4), a subcommand of `wush bench`: see bench_kernels.cpp.
#pragma once
#include "cli.h"

namespace wush::cli {

// Declares the options of `bench kernels` on `sub` and returns its action.
Action bench_kernels_setup(CLI::App& sub);

}  // namespace wush::cli

// wush version: the build's version and the libtorch it runs on.
#include <ATen/Parallel.h>
#include <torch/csrc/api/include/torch/version.h>

#include <cstdio>

#include "cli.h"

static wush::cli::Register reg("version", "print the version, libtorch version and thread count",
                               [](CLI::App&) -> wush::cli::Action {
                                 return [] {
                                   std::printf("wush 0.1.0 (libtorch %s, %d threads)\n",
                                               TORCH_VERSION, at::get_num_threads());
                                   return 0;
                                 };
                               });

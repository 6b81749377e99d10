// wush: quantize LLMs to W4A4 microscaling formats with data-aware block transforms.
#include <unistd.h>

#include <cstdio>
#include <cstdlib>
#include <iostream>

#include "cli.h"
#include "core/atomic_file.h"
#include "core/error.h"
#include "core/progress.h"
#include "core/runtime.h"

namespace wush::cli {

std::vector<Command>& registry() {
  static std::vector<Command> r;
  return r;
}

void write_json(const std::string& path, const nlohmann::json& j) {
  if (path == "-") {
    std::cout << j.dump(2) << "\n";
    return;
  }
  write_file_atomic(path, j.dump(2) + "\n");
}

}  // namespace wush::cli

int main(int argc, char** argv) {
  // libgomp reads OMP_WAIT_POLICY when it loads: spinning worker threads make a loaded 2-core machine
  // 5-10x slower (measured: TinyStories scoring 99 s spinning vs 17.5 s passive), so run passive
  // unless the user chose otherwise. Re-executing is the only way to set it before libgomp loads.
  if (!std::getenv("OMP_WAIT_POLICY")) {
    ::setenv("OMP_WAIT_POLICY", "PASSIVE", 1);
    ::execv("/proc/self/exe", argv);  // returns only on failure: then go on as we are
  }
  CLI::App app{
      "wush: 4-bit weights and activations (MXFP4, NVFP4, MXINT4, INT4) with data-aware block\n"
      "transforms (WUSH, LATMiX, Hadamard) for LLMs. See README.md and docs/."};
  app.require_subcommand(1);
  app.set_help_all_flag("--help-all", "help for every subcommand");
  int threads = 0;
  bool quiet = false;
  app.add_option("--threads", threads, "CPU threads for libtorch (0 = all cores)")
      ->capture_default_str();
  app.add_flag("-q,--quiet", quiet, "no progress bars");

  auto& reg = wush::cli::registry();
  std::sort(reg.begin(), reg.end(), [](auto& a, auto& b) { return a.name < b.name; });
  std::vector<std::pair<CLI::App*, wush::cli::Action>> actions;
  for (auto& c : reg) {
    CLI::App* sub = app.add_subcommand(c.name, c.help);
    actions.emplace_back(sub, c.setup(*sub));
  }
  try {
    app.parse(argc, argv);
  } catch (const CLI::ParseError& e) {
    return app.exit(e);
  }
  try {
    wush::install_cleanup_handlers();
    wush::init_threads(threads);
    wush::set_progress_enabled(!quiet);
    for (auto& [sub, act] : actions)
      if (sub->parsed()) return act();
  } catch (const wush::Error& e) {
    std::fprintf(stderr, "wush: error: %s\n", e.what());
    return 1;
  } catch (const std::exception& e) {
    std::fprintf(stderr, "wush: error: %s\n", e.what());
    return 1;
  }
  return 1;
}

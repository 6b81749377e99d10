// The wush CLI: one file per subcommand (tools/cmd_*.cpp), each registering itself here.
// A subcommand declares its options once on its CLI::App (help shows the defaults) and returns the
// action to run; run_command() catches wush::Error, prints one line and exits 1 (STYLE.md §8).
#pragma once
// CLI11's file validators on stat() rather than std::filesystem (core/paths.h says why).
#ifndef CLI11_HAS_FILESYSTEM
#define CLI11_HAS_FILESYSTEM 0
#endif
#include <CLI/CLI.hpp>

#include <functional>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

namespace wush::cli {

using Action = std::function<int()>;
using Setup = std::function<Action(CLI::App&)>;

struct Command {
  std::string name, help;
  Setup setup;
};

std::vector<Command>& registry();

struct Register {
  Register(const std::string& name, const std::string& help, Setup setup) {
    registry().push_back({name, help, std::move(setup)});
  }
};

// Writes j (pretty) to path atomically; "-" prints to stdout.
void write_json(const std::string& path, const nlohmann::json& j);

}  // namespace wush::cli

#include "core/runtime.h"

#include <ATen/Parallel.h>

#include <cstdlib>
#include <thread>

#include "core/atomic_file.h"

namespace wush {

int init_threads(int n) {
  if (n <= 0) n = int(std::thread::hardware_concurrency());
  if (n <= 0) n = 1;
  at::set_num_threads(n);
  return at::get_num_threads();
}

std::string default_data_dir() {
  if (const char* e = std::getenv("WUSH_DATA"); e && *e && is_directory(e)) return e;
  for (std::string c : {std::string(WUSH_SOURCE_DIR) + "/../shared/data", std::string("../shared/data"),
                        std::string("shared/data")})
    if (is_directory(c)) return c;
  return "";
}

std::string resolve_data_path(const std::string& path) {
  if (path.empty() || path_exists(path)) return path;
  std::string d = default_data_dir();
  if (d.empty() || path[0] == '/') return path;
  for (std::string sub : {"", "/models", "/text", "/tasks", "/tokenizers"}) {
    std::string c = d + sub + "/" + path;
    if (path_exists(c)) return c;
  }
  return path;
}

}  // namespace wush

#include "core/runtime.h"

#include <ATen/Parallel.h>

#include <malloc.h>

#include <cstdlib>
#include <thread>

#include "core/atomic_file.h"

// OpenBLAS (Debian's libtorch) keeps its own thread pool, whose idle threads spin in sched_yield
// against libtorch's OpenMP workers: on 2 busy cores, scoring stories260K ran 20x slower. Weak, so
// builds against MKL (PyTorch's libtorch) simply skip it.
extern "C" void openblas_set_num_threads(int) __attribute__((weak));

namespace wush {

int init_threads(int n) {
  if (openblas_set_num_threads) openblas_set_num_threads(1);  // BLAS runs inside libtorch's threads
  // Forward passes free and reallocate the same large activations every step; glibc's default
  // mmap threshold (at most 32 MB) returns them to the kernel each time and page faults dominate.
  mallopt(M_MMAP_THRESHOLD, 256 << 20);
  mallopt(M_TRIM_THRESHOLD, 512 << 20);
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

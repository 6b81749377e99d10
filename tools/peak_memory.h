// Peak resident memory of this process between two points (Linux): reset_peak_rss() writes "5"
// to /proc/self/clear_refs, which resets the VmHWM high-water mark; peak_rss_mib() reads it.
// Returns -1 where /proc is unavailable. Host memory only (a CUDA run's device memory is not in it).
// The reset sets the mark to the current RSS, so freed heap memory that the allocator still holds
// would count as the next measurement's: malloc_trim(0) hands it back to the system first.
#pragma once
#include <malloc.h>

#include <fstream>
#include <string>

namespace wush::cli {

inline bool reset_peak_rss() {
  ::malloc_trim(0);
  std::ofstream f("/proc/self/clear_refs");
  if (!f) return false;
  f << "5";
  return bool(f);
}

inline double peak_rss_mib() {
  std::ifstream f("/proc/self/status");
  for (std::string line; std::getline(f, line);)
    if (line.rfind("VmHWM:", 0) == 0) return std::stod(line.substr(6)) / 1024.0;  // kB
  return -1;
}

}  // namespace wush::cli

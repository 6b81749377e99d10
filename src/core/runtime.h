// Process-wide runtime settings: thread count and where the bundled data lives.
#pragma once
#include <string>

namespace wush {

// libtorch's OpenMP pool starts with one thread on our machines: set it explicitly.
// n <= 0 means "all hardware cores". Returns the number in use. Also pins OpenBLAS to one thread
// (its pool fights OpenMP's) and raises glibc's mmap/trim thresholds (see runtime.cpp).
int init_threads(int n);

// The data directory (models, texts, tasks): $WUSH_DATA, else ../shared/data next to the source
// tree or the current directory. Returns "" when none exists.
std::string default_data_dir();

// Resolve a path given by a user: as is if it exists, else relative to default_data_dir() and its
// models/ and text/ subfolders. Returns the input unchanged if nothing matches.
std::string resolve_data_path(const std::string& path);

}  // namespace wush

// Shared pieces of the libFuzzer targets (fuzz/fuzz_*.cpp, docs/RELIABILITY.md).
// The loaders under test read files, so every input is written into a private scratch directory
// first. Multi-file inputs (a checkpoint directory, a sharded safetensors set) are one byte string
// split at kPartSeparator into the files each target names; scripts/fuzz-corpus builds them.
// A wush::Error is the expected outcome of a bad input; anything else escaping a loader (another
// exception type, or a WUSH_ASSERT "internal error", which means an input reached an invariant
// unchecked) aborts, so that libFuzzer records it as a crash.
#pragma once
#include <unistd.h>

#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <fstream>
#include <string>
#include <vector>

#include "core/error.h"
#include "core/paths.h"

namespace wush_fuzz {

inline const std::string kPartSeparator = "\n--wush-fuzz-part--\n";

// The input split at kPartSeparator into at most max_parts pieces (the last one takes the rest).
inline std::vector<std::string> split_parts(const uint8_t* data, size_t size, size_t max_parts) {
  std::string s(reinterpret_cast<const char*>(data), size);
  std::vector<std::string> parts;
  size_t pos = 0;
  while (parts.size() + 1 < max_parts) {
    size_t k = s.find(kPartSeparator, pos);
    if (k == std::string::npos) break;
    parts.push_back(s.substr(pos, k - pos));
    pos = k + kPartSeparator.size();
  }
  parts.push_back(s.substr(pos));
  return parts;
}

// A scratch directory of this process (in /dev/shm when it exists: no disk traffic), emptied
// before each input.
inline const std::string& scratch_dir() {
  // Never destroyed: the atexit cleanup below runs after static destructors of this scope.
  static const std::string* dir = [] {
    std::string base = ::access("/dev/shm", W_OK) == 0 ? "/dev/shm" : "/tmp";
    auto* d = new std::string(base + "/wush-fuzz-" + std::to_string(::getpid()));
    if (!wush::make_dirs(*d)) std::abort();
    std::atexit([] { wush::remove_tree(scratch_dir()); });
    return d;
  }();
  return *dir;
}

inline void reset_scratch() {
  for (const std::string& name : wush::list_dir(scratch_dir())) wush::remove_tree(wush::path_join(scratch_dir(), name));
}

inline std::string put_file(const std::string& name, const std::string& bytes) {
  std::string path = scratch_dir() + "/" + name;
  std::ofstream(path, std::ios::binary).write(bytes.data(), std::streamsize(bytes.size()));
  return path;
}

// Runs f(); a wush::Error is a handled bad input, an internal-error assertion aborts.
template <class F>
void expect_clean(F&& f) {
  try {
    f();
  } catch (const wush::Error& e) {
    if (std::strncmp(e.what(), "internal error", 14) == 0) {
      std::fprintf(stderr, "wush fuzz: an input reached an invariant: %s\n", e.what());
      std::abort();
    }
  }
}

}  // namespace wush_fuzz

// Helpers for the model I/O tests: scratch directories, raw files, error-message checks.
#pragma once
#include <gtest/gtest.h>
#include <unistd.h>

#include <cstdint>
#include <cstring>
#include <fstream>
#include <functional>
#include <string>
#include <vector>

#include "core/error.h"
#include "core/paths.h"

namespace wush::test {

// A fresh directory under the system temp dir, removed with everything in it on destruction.
struct TempDir {
  std::string path;
  explicit TempDir(const std::string& tag) {
    path = wush::path_join(wush::temp_dir(), "wush_" + tag + "_" + std::to_string(::getpid()));
    wush::remove_tree(path);
    wush::make_dirs(path);
  }
  ~TempDir() { wush::remove_tree(path); }
  std::string operator/(const std::string& name) const { return wush::path_join(path, name); }
};

inline void write_bytes(const std::string& path, const std::string& bytes) {
  std::ofstream f(path, std::ios::binary | std::ios::trunc);
  f.write(bytes.data(), std::streamsize(bytes.size()));
}

inline std::string read_bytes(const std::string& path) {
  std::ifstream f(path, std::ios::binary);
  return std::string(std::istreambuf_iterator<char>(f), {});
}

// A safetensors file by hand: little-endian u64 header length, the header text, the data bytes.
inline std::string safetensors_bytes(const std::string& header, const std::string& data) {
  std::string out(8, '\0');
  uint64_t n = header.size();
  for (int i = 0; i < 8; ++i) out[size_t(i)] = char((n >> (8 * i)) & 0xff);
  return out + header + data;
}

// Runs fn and expects a wush::Error whose one-line message contains every substring.
inline void expect_error(const std::function<void()>& fn, const std::vector<std::string>& parts) {
  SCOPED_TRACE(parts.empty() ? std::string() : parts.back());
  try {
    fn();
    ADD_FAILURE() << "no wush::Error thrown";
  } catch (const wush::Error& e) {
    std::string msg = e.what();
    EXPECT_EQ(msg.find('\n'), std::string::npos) << msg;
    for (const std::string& p : parts) EXPECT_NE(msg.find(p), std::string::npos) << "'" << p << "' not in: " << msg;
  }
}

// A bf16 value from its two little-endian bytes (bf16 = the high half of an fp32).
inline float bf16_bytes_to_float(const unsigned char* p) {
  uint32_t bits = (uint32_t(p[1]) << 24) | (uint32_t(p[0]) << 16);
  float f;
  std::memcpy(&f, &bits, 4);
  return f;
}

}  // namespace wush::test

// Core utilities: checks, atomic outputs.
#include <gtest/gtest.h>

#include <filesystem>

#include "core/atomic_file.h"
#include "core/error.h"

namespace fs = std::filesystem;

TEST(Error, CheckFormatsMessage) {
  try {
    WUSH_CHECK(1 + 1 == 3, "x: value %d is not %s", 7, "eight");
    FAIL() << "no throw";
  } catch (const wush::Error& e) {
    EXPECT_STREQ(e.what(), "x: value 7 is not eight");
  }
}

TEST(AtomicDir, NothingLeftWithoutCommit) {
  fs::path base = fs::temp_directory_path() / "wush_atomic_test";
  fs::remove_all(base);
  fs::create_directories(base);
  std::string out = (base / "out").string();
  {
    wush::AtomicDir d(out, false);
    wush::write_file_atomic(d.file("a.txt"), "hello");
    EXPECT_FALSE(fs::exists(out));
  }
  EXPECT_FALSE(fs::exists(out));
  EXPECT_TRUE(fs::is_empty(base));
  {
    wush::AtomicDir d(out, false);
    wush::write_file_atomic(d.file("a.txt"), "hello");
    d.commit();
  }
  EXPECT_EQ(wush::read_file(out + "/a.txt"), "hello");
  EXPECT_THROW(wush::AtomicDir(out, false), wush::Error);
  {
    wush::AtomicDir d(out, true);
    wush::write_file_atomic(d.file("b.txt"), "x");
    d.commit();
  }
  EXPECT_TRUE(fs::exists(out + "/b.txt"));
  EXPECT_FALSE(fs::exists(out + "/a.txt"));
  fs::remove_all(base);
}

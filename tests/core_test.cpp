// Core utilities: checks, atomic outputs.
#include <gtest/gtest.h>


#include "core/atomic_file.h"
#include "core/error.h"
#include "core/paths.h"


TEST(Error, CheckFormatsMessage) {
  try {
    WUSH_CHECK(1 + 1 == 3, "x: value %d is not %s", 7, "eight");
    FAIL() << "no throw";
  } catch (const wush::Error& e) {
    EXPECT_STREQ(e.what(), "x: value 7 is not eight");
  }
}

TEST(AtomicDir, NothingLeftWithoutCommit) {
  std::string base = wush::path_join(wush::temp_dir(), "wush_atomic_test");
  wush::remove_tree(base);
  wush::make_dirs(base);
  std::string out = wush::path_join(base, "out");
  {
    wush::AtomicDir d(out, false);
    wush::write_file_atomic(d.file("a.txt"), "hello");
    EXPECT_FALSE(wush::path_exists(out));
  }
  EXPECT_FALSE(wush::path_exists(out));
  EXPECT_TRUE(wush::dir_is_empty(base));
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
  EXPECT_TRUE(wush::path_exists(out + "/b.txt"));
  EXPECT_FALSE(wush::path_exists(out + "/a.txt"));
  wush::remove_tree(base);
}

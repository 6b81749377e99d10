// Path and directory helpers on POSIX calls, used instead of std::filesystem everywhere in wush.
// Why: the PyTorch wheels' libtorch exports the std::filesystem functions of the older libstdc++
// it links statically (pytorch/pytorch#133437); code built by a newer g++ that calls
// std::filesystem binds to those copies and crashes (docs/results/gpu.md). Nothing here touches
// std::filesystem, so the same binaries run against Debian's libtorch and the wheel's.
#pragma once
#include <string>
#include <vector>

namespace wush {

// a + "/" + b (no doubled separator; b absolute: b).
std::string path_join(const std::string& a, const std::string& b);
// "dir/name.ext" -> "dir" ("" when there is no separator; "/" for "/name").
std::string path_parent(const std::string& p);
// "dir/name.ext" -> "name.ext" (trailing separators ignored).
std::string path_filename(const std::string& p);
// "dir/name.ext" -> "name" (the last extension removed; ".hidden" stays itself).
std::string path_stem(const std::string& p);
// ".ext" of the file name, "" if none.
std::string path_extension(const std::string& p);

// $TMPDIR, else /tmp.
std::string temp_dir();
// mkdir -p; false (errno set) when a component cannot be created or is not a directory.
bool make_dirs(const std::string& p);
// rm -rf; a missing path is fine. False when something could not be removed.
bool remove_tree(const std::string& p);
// unlink one file (false if it was not there or could not be removed).
bool remove_file(const std::string& p);
// rename(2); false (errno set) on failure.
bool rename_path(const std::string& from, const std::string& to);
// Names in a directory (without "." and ".."), sorted; empty when it cannot be read.
std::vector<std::string> list_dir(const std::string& dir);
bool is_regular_file(const std::string& p);
// A directory with no entries (false when it is not a readable directory).
bool dir_is_empty(const std::string& dir);
// Copy a file's bytes (throws wush::Error naming the paths on failure).
void copy_file(const std::string& from, const std::string& to);

}  // namespace wush

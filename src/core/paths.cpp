#include "core/paths.h"

#include <dirent.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstdio>
#include <cstdlib>
#include <cstring>

#include "core/atomic_file.h"
#include "core/error.h"

namespace wush {

static std::string strip_trailing_slashes(std::string p) {
  while (p.size() > 1 && p.back() == '/') p.pop_back();
  return p;
}

std::string path_join(const std::string& a, const std::string& b) {
  if (a.empty() || (!b.empty() && b[0] == '/')) return b;
  if (b.empty()) return a;
  return a.back() == '/' ? a + b : a + "/" + b;
}

std::string path_parent(const std::string& p0) {
  std::string p = strip_trailing_slashes(p0);
  size_t k = p.rfind('/');
  if (k == std::string::npos) return "";
  if (k == 0) return "/";
  return p.substr(0, k);
}

std::string path_filename(const std::string& p0) {
  std::string p = strip_trailing_slashes(p0);
  if (p == "/") return "";
  size_t k = p.rfind('/');
  return k == std::string::npos ? p : p.substr(k + 1);
}

std::string path_extension(const std::string& p) {
  std::string name = path_filename(p);
  size_t k = name.rfind('.');
  if (k == std::string::npos || k == 0 || name == "..") return "";
  return name.substr(k);
}

std::string path_stem(const std::string& p) {
  std::string name = path_filename(p);
  return name.substr(0, name.size() - path_extension(p).size());
}

std::string temp_dir() {
  const char* t = std::getenv("TMPDIR");
  return t && *t ? strip_trailing_slashes(t) : "/tmp";
}

bool make_dirs(const std::string& p0) {
  std::string p = strip_trailing_slashes(p0);
  if (p.empty()) return false;
  if (is_directory(p)) return true;
  std::string parent = path_parent(p);
  if (!parent.empty() && !make_dirs(parent)) return false;
  if (::mkdir(p.c_str(), 0755) == 0) return true;
  return errno == EEXIST && is_directory(p);
}

bool remove_tree(const std::string& p) {
  struct stat st;
  if (::lstat(p.c_str(), &st) != 0) return errno == ENOENT;
  if (!S_ISDIR(st.st_mode)) return ::unlink(p.c_str()) == 0;
  bool ok = true;
  for (const std::string& name : list_dir(p)) ok = remove_tree(path_join(p, name)) && ok;
  return ::rmdir(p.c_str()) == 0 && ok;
}

bool remove_file(const std::string& p) { return ::unlink(p.c_str()) == 0; }

bool rename_path(const std::string& from, const std::string& to) { return ::rename(from.c_str(), to.c_str()) == 0; }

std::vector<std::string> list_dir(const std::string& dir) {
  std::vector<std::string> names;
  DIR* d = ::opendir(dir.c_str());
  if (!d) return names;
  while (const dirent* e = ::readdir(d)) {
    if (std::strcmp(e->d_name, ".") == 0 || std::strcmp(e->d_name, "..") == 0) continue;
    names.emplace_back(e->d_name);
  }
  ::closedir(d);
  std::sort(names.begin(), names.end());
  return names;
}

bool is_regular_file(const std::string& p) {
  struct stat st;
  return ::stat(p.c_str(), &st) == 0 && S_ISREG(st.st_mode);
}

bool dir_is_empty(const std::string& dir) {
  DIR* d = ::opendir(dir.c_str());
  if (!d) return false;
  ::closedir(d);
  return list_dir(dir).empty();
}

void copy_file(const std::string& from, const std::string& to) {
  WUSH_CHECK(is_regular_file(from), "%s: cannot copy to %s: not a readable file", from.c_str(), to.c_str());
  write_file_atomic(to, read_file(from));
}

}  // namespace wush

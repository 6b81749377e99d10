#include "core/atomic_file.h"

#include <fcntl.h>
#include <signal.h>
#include <sys/stat.h>
#include <unistd.h>

#include <stdio.h>  // renameat2 (glibc 2.28+, _GNU_SOURCE)

#include <cerrno>
#include <csignal>
#include <mutex>
#include <set>
#include <cstring>
#include <fstream>
#include <random>
#include <sstream>

#include "core/error.h"
#include "core/paths.h"

namespace wush {

static std::string tmp_sibling(const std::string& path) {
  std::random_device rd;
  std::string name = ".wush-tmp-" + path_filename(path) + "-" + std::to_string(::getpid()) + "-" +
                     std::to_string(rd() % 1000000);
  return path_join(path_parent(path), name);
}

AtomicFile::AtomicFile(const std::string& path) : path_(path), tmp_(tmp_sibling(path)) {
  fd_ = ::open(tmp_.c_str(), O_WRONLY | O_CREAT | O_TRUNC, 0644);
  WUSH_CHECK(fd_ >= 0, "%s: cannot create (%s)", path.c_str(), std::strerror(errno));
}

AtomicFile::~AtomicFile() {
  if (fd_ >= 0) {
    ::close(fd_);
    ::unlink(tmp_.c_str());
  }
}

void AtomicFile::write(const void* data, size_t n) {
  WUSH_ASSERT(fd_ >= 0);
  const char* p = static_cast<const char*>(data);
  size_t off = 0;
  while (off < n) {
    ssize_t k = ::write(fd_, p + off, n - off);
    if (k < 0 && errno == EINTR) continue;
    WUSH_CHECK(k >= 0, "%s: write failed (%s)", path_.c_str(), std::strerror(errno));
    off += size_t(k);
  }
  written_ += n;
}

void AtomicFile::commit() {
  WUSH_ASSERT(fd_ >= 0);
  bool synced = ::fsync(fd_) == 0;
  int e = errno;
  ::close(fd_);
  fd_ = -1;
  if (!synced) {
    ::unlink(tmp_.c_str());
    WUSH_FAIL("%s: fsync failed (%s)", path_.c_str(), std::strerror(e));
  }
  if (::rename(tmp_.c_str(), path_.c_str()) != 0) {
    e = errno;
    ::unlink(tmp_.c_str());
    WUSH_FAIL("%s: rename failed (%s)", path_.c_str(), std::strerror(e));
  }
}

void write_file_atomic(const std::string& path, const std::string& data) {
  AtomicFile f(path);
  f.write(data);
  f.commit();
}

std::string read_file(const std::string& path) {
  WUSH_CHECK(path_exists(path), "%s: no such file", path.c_str());
  WUSH_CHECK(!is_directory(path), "%s: is a directory, expected a file", path.c_str());
  std::ifstream f(path, std::ios::binary);
  WUSH_CHECK(f.good(), "%s: cannot open", path.c_str());
  std::ostringstream ss;
  ss << f.rdbuf();
  return ss.str();
}

bool path_exists(const std::string& path) {
  struct stat st;
  return ::stat(path.c_str(), &st) == 0;
}

bool is_directory(const std::string& path) {
  struct stat st;
  return ::stat(path.c_str(), &st) == 0 && S_ISDIR(st.st_mode);
}

// Temporary directories in progress, removed by the SIGINT/SIGTERM handler (install_cleanup_handlers).
static std::mutex g_live_mu;
static std::set<std::string> g_live;

static void cleanup_and_reraise(int sig) {
  // Not async-signal-safe in the strict sense, but the process is about to die either way and a
  // half-written output is the worse outcome.
  for (const auto& d : g_live) remove_tree(d);
  std::signal(sig, SIG_DFL);
  std::raise(sig);
}

void install_cleanup_handlers() {
  std::signal(SIGINT, cleanup_and_reraise);
  std::signal(SIGTERM, cleanup_and_reraise);
}

// Leftovers of killed runs (SIGKILL leaves no chance to clean): ".wush-tmp-<name>-<pid>-*" siblings
// whose process is gone are removed before a new output of the same name is built.
static void remove_stale_siblings(const std::string& final_path) {
  std::string parent = path_parent(final_path);
  if (parent.empty()) parent = ".";
  const std::string prefix = ".wush-tmp-" + path_filename(final_path) + "-";
  for (const std::string& name : list_dir(parent)) {
    if (name.rfind(prefix, 0) != 0) continue;
    long pid = std::strtol(name.c_str() + prefix.size(), nullptr, 10);
    if (pid > 0 && ::kill(pid_t(pid), 0) != 0 && errno == ESRCH) remove_tree(path_join(parent, name));
  }
}

AtomicDir::AtomicDir(const std::string& final_path, bool force)
    : final_(final_path), tmp_(tmp_sibling(final_path)), force_(force) {
  remove_stale_siblings(final_path);
  WUSH_CHECK(!final_path.empty(), "output directory: empty path");
  WUSH_CHECK(force || !path_exists(final_path),
             "%s: output already exists (pass --force to replace it)", final_path.c_str());
  WUSH_CHECK(make_dirs(tmp_), "%s: cannot create directory (%s)", tmp_.c_str(), std::strerror(errno));
  std::lock_guard<std::mutex> lk(g_live_mu);
  g_live.insert(tmp_);
}

AtomicDir::~AtomicDir() {
  {
    std::lock_guard<std::mutex> lk(g_live_mu);
    g_live.erase(tmp_);
  }
  if (!committed_) remove_tree(tmp_);
}

// Replaces final_ by tmp_ in one step where the kernel can (renameat2 RENAME_EXCHANGE: at every
// instant final_ is either the complete old output or the complete new one; the old one ends up
// under the temporary name and is removed, or, after a SIGKILL right here, cleaned by the next
// run's remove_stale_siblings). Elsewhere: the old output is moved aside first.
void AtomicDir::commit() {
  std::string old;
  if (path_exists(final_)) {
    WUSH_CHECK(force_, "%s: output already exists (pass --force to replace it)", final_.c_str());
#ifdef RENAME_EXCHANGE
    if (::renameat2(AT_FDCWD, tmp_.c_str(), AT_FDCWD, final_.c_str(), RENAME_EXCHANGE) == 0) {
      committed_ = true;
      remove_tree(tmp_);  // now the old output
      return;
    }
#endif
    old = tmp_sibling(final_);
    WUSH_CHECK(rename_path(final_, old), "%s: cannot move the old output away (%s)", final_.c_str(),
               std::strerror(errno));
  }
  WUSH_CHECK(rename_path(tmp_, final_), "%s: cannot rename into place (%s)", final_.c_str(), std::strerror(errno));
  committed_ = true;
  if (!old.empty()) remove_tree(old);
}

}  // namespace wush

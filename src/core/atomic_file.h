// Crash-safe outputs: nothing half-written. Files are written to a temporary name in the same
// directory and renamed into place; directories are assembled under a temporary name and renamed
// when complete (AtomicDir). A crash leaves at most a ".wush-tmp-*" entry, never a partial output.
#pragma once
#include <string>

namespace wush {

// Write `data` to `path` atomically (temp file + fsync + rename).
void write_file_atomic(const std::string& path, const std::string& data);

// A file written in pieces under a temporary sibling name, fsynced and renamed to `path` by
// commit(). Destroyed without commit(): the temporary file is removed. For outputs too large to
// assemble in memory (safetensors shards).
class AtomicFile {
 public:
  explicit AtomicFile(const std::string& path);
  ~AtomicFile();
  AtomicFile(const AtomicFile&) = delete;
  AtomicFile& operator=(const AtomicFile&) = delete;
  void write(const void* data, size_t n);
  void write(const std::string& s) { write(s.data(), s.size()); }
  size_t bytes_written() const { return written_; }
  void commit();

 private:
  std::string path_, tmp_;
  int fd_ = -1;
  size_t written_ = 0;
};

// SIGINT/SIGTERM remove every AtomicDir still in progress, then end the process as the signal would.
void install_cleanup_handlers();

// Read a whole file; throws wush::Error naming the path on failure.
std::string read_file(const std::string& path);

bool path_exists(const std::string& path);
bool is_directory(const std::string& path);

// A directory built under a temporary sibling name and renamed to `final_path` by commit().
// Destroyed without commit(): the temporary directory is removed.
class AtomicDir {
 public:
  // force: replace an existing final_path on commit; otherwise an existing path is an error.
  AtomicDir(const std::string& final_path, bool force);
  ~AtomicDir();
  AtomicDir(const AtomicDir&) = delete;
  AtomicDir& operator=(const AtomicDir&) = delete;
  const std::string& tmp_path() const { return tmp_; }
  std::string file(const std::string& name) const { return tmp_ + "/" + name; }
  void commit();

 private:
  std::string final_, tmp_;
  bool force_, committed_ = false;
};

}  // namespace wush

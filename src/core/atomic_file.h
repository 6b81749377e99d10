// Crash-safe outputs: nothing half-written. Files are written to a temporary name in the same
// directory and renamed into place; directories are assembled under a temporary name and renamed
// when complete (AtomicDir). A crash leaves at most a ".wush-tmp-*" entry, never a partial output.
#pragma once
#include <string>

namespace wush {

// Write `data` to `path` atomically (temp file + fsync + rename).
void write_file_atomic(const std::string& path, const std::string& data);

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

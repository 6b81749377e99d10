// A progress bar on stderr for long work: label, count, rate and ETA. Redraws in place on a
// terminal; elsewhere (CI logs, pipes) prints a line at most every few seconds. Silent when
// disabled with set_progress_enabled(false) (the CLI's --quiet).
#pragma once
#include <chrono>
#include <cstdint>
#include <string>

namespace wush {

void set_progress_enabled(bool on);
bool progress_enabled();

class Progress {
 public:
  Progress(std::string label, int64_t total, std::string unit = "it");
  ~Progress();
  void update(int64_t done, const std::string& note = "");
  void add(int64_t n = 1, const std::string& note = "") { update(done_ + n, note); }
  void finish(const std::string& note = "");

 private:
  void draw(bool final_line);
  std::string label_, unit_, note_;
  int64_t total_, done_ = 0;
  std::chrono::steady_clock::time_point start_, last_draw_;
  bool tty_, finished_ = false;
};

}  // namespace wush

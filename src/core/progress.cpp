#include "core/progress.h"

#include <unistd.h>

#include <cstdio>

namespace wush {

static bool g_progress = true;
void set_progress_enabled(bool on) { g_progress = on; }
bool progress_enabled() { return g_progress; }

static std::string fmt_secs(double s) {
  char buf[32];
  if (s < 0 || s > 1e7) return "?";
  int t = int(s + 0.5);
  if (t >= 3600)
    std::snprintf(buf, sizeof buf, "%dh%02dm", t / 3600, (t / 60) % 60);
  else
    std::snprintf(buf, sizeof buf, "%d:%02d", t / 60, t % 60);
  return buf;
}

Progress::Progress(std::string label, int64_t total, std::string unit)
    : label_(std::move(label)), unit_(std::move(unit)), total_(total),
      start_(std::chrono::steady_clock::now()), last_draw_(start_), tty_(::isatty(2)) {}

Progress::~Progress() {
  if (!finished_ && done_ > 0) finish();
}

void Progress::update(int64_t done, const std::string& note) {
  done_ = done;
  if (!note.empty()) note_ = note;
  auto now = std::chrono::steady_clock::now();
  double since = std::chrono::duration<double>(now - last_draw_).count();
  if (since >= (tty_ ? 0.1 : 5.0) || done_ == total_) {
    last_draw_ = now;
    draw(false);
  }
}

void Progress::finish(const std::string& note) {
  if (finished_) return;
  if (!note.empty()) note_ = note;
  finished_ = true;
  draw(true);
}

void Progress::draw(bool final_line) {
  if (!g_progress) return;
  double el = std::chrono::duration<double>(std::chrono::steady_clock::now() - start_).count();
  double rate = el > 0 ? done_ / el : 0;
  double eta = (rate > 0 && total_ > 0) ? (total_ - done_) / rate : -1;
  char bar[32] = {0};
  int w = 20, filled = total_ > 0 ? int(w * double(done_) / double(total_)) : 0;
  for (int i = 0; i < w; ++i) bar[i] = i < filled ? '#' : '.';
  std::fprintf(stderr, "%s%s [%s] %lld/%lld %s  %.1f %s/s  %s %s%s%s", tty_ ? "\r\033[K" : "",
               label_.c_str(), bar, (long long)done_, (long long)total_, unit_.c_str(), rate,
               unit_.c_str(), final_line ? "took" : "eta", fmt_secs(final_line ? el : eta).c_str(),
               note_.empty() ? "" : "  ", note_.c_str());
  if (final_line || !tty_) std::fputc('\n', stderr);
  std::fflush(stderr);
}

}  // namespace wush

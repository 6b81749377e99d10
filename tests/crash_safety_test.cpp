// Crash safety (issue #9, docs/RELIABILITY.md): `wush quantize` killed with SIGKILL (no handler can
// run) while computing and while writing its output leaves no partial output directory, and an
// earlier output at the same path (being replaced with --force) stays intact, byte for byte, until
// the new one is complete. The ".wush-tmp-*" leftovers of the killed run are removed by the next run
// (core/atomic_file.cpp remove_stale_siblings).
#include <gtest/gtest.h>
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <map>
#include <thread>

#include "core/atomic_file.h"
#include "core/paths.h"
#include "pipeline/checkpoint.h"
#include "runtime_test_util.h"

using wush::testing::data_path;

namespace {

// Every file of a directory (recursively) with its bytes, keyed by the path relative to dir.
void snapshot_into(const std::string& dir, const std::string& rel, std::map<std::string, std::string>& files) {
  for (const std::string& name : wush::list_dir(dir)) {
    const std::string p = wush::path_join(dir, name), r = rel.empty() ? name : rel + "/" + name;
    if (wush::is_directory(p)) snapshot_into(p, r, files);
    else if (wush::is_regular_file(p)) files[r] = wush::read_file(p);
  }
}
std::map<std::string, std::string> snapshot(const std::string& dir) {
  std::map<std::string, std::string> files;
  snapshot_into(dir, "", files);
  return files;
}

int count_tmp(const std::string& base) {
  int n = 0;
  for (const std::string& name : wush::list_dir(base)) n += name.rfind(".wush-tmp-", 0) == 0;
  return n;
}

// Starts `wush --quiet quantize ... --out out --force` (stdout/stderr to /dev/null) on nsamples
// calibration windows of seqlen tokens; returns its pid.
pid_t start_quantize(const std::string& recipe, const std::string& out, const std::string& nsamples = "8",
                     const std::string& seqlen = "128") {
  std::vector<std::string> args = {WUSH_CLI_PATH, "--quiet", "--threads", "1", "quantize",
                                   "--model", data_path("models/stories260K.bin"),
                                   "--calib", data_path("text/tinystories_calib.txt"),
                                   "--nsamples", nsamples, "--seqlen", seqlen, "--recipe", recipe, "--out", out, "--force"};
  pid_t pid = fork();
  if (pid == 0) {
    freopen("/dev/null", "w", stdout);
    freopen("/dev/null", "w", stderr);
    std::vector<char*> argv;
    for (auto& a : args) argv.push_back(a.data());
    argv.push_back(nullptr);
    execv(argv[0], argv.data());
    _exit(127);
  }
  return pid;
}

// SIGKILLs pid once ready() holds (polled every millisecond) or after timeout; returns whether the
// process was still running when killed.
template <class F>
bool kill_when(pid_t pid, F ready, double timeout_s) {
  auto t0 = std::chrono::steady_clock::now();
  int status = 0;
  while (!ready() && std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count() < timeout_s) {
    if (waitpid(pid, &status, WNOHANG) == pid) return false;
    std::this_thread::sleep_for(std::chrono::milliseconds(1));
  }
  kill(pid, SIGKILL);
  waitpid(pid, &status, 0);
  return WIFSIGNALED(status) && WTERMSIG(status) == SIGKILL;
}

}  // namespace

TEST(CrashSafety, SigkillLeavesNoPartialOutputAndKeepsTheEarlierOne) {
  const std::string base = wush::path_join(wush::temp_dir(), "wush_sigkill_" + std::to_string(getpid()));
  wush::remove_tree(base);
  ASSERT_TRUE(wush::make_dirs(base));
  const std::string out = wush::path_join(base, "q");
  std::string o, e;
  // The earlier output.
  ASSERT_EQ(wush::testing::run_cli("--quiet --threads 1 quantize --model " + data_path("models/stories260K.bin") +
                                       " --recipe hadamard:mxfp4:rtn --out " + out, &o, &e), 0) << e;
  const auto before = snapshot(out);
  ASSERT_TRUE(before.count("config.json") && before.count("model.safetensors"));

  // 1. Killed while computing (GPTQ-WUSH on 128 x 512 calibration tokens takes several seconds even
  //    on a fast idle machine; 8 x 128 finished within the 0.8 s on one): the earlier output is
  //    untouched.
  pid_t pid = start_quantize("wush:mxfp4:gptq", out, "128", "512");
  EXPECT_TRUE(kill_when(pid, [] { return false; }, 0.8)) << "the run ended before it could be killed";
  EXPECT_EQ(snapshot(out), before);

  // 2. Killed the moment its output directory appears (while writing or just after): the path holds
  //    either the earlier output or the complete new one, never a mix or a partial directory.
  int killed_while_writing = 0;
  for (int attempt = 0; attempt < 3; ++attempt) {
    pid = start_quantize("hadamard:nvfp4:rtn", out);
    bool killed = kill_when(pid, [&] { return count_tmp(base) > 0; }, 60);
    ASSERT_TRUE(wush::path_exists(out));
    auto now = snapshot(out);
    if (now != before) {  // replaced: it must be the complete new checkpoint
      EXPECT_TRUE(wush::is_quantized_checkpoint(out));
      EXPECT_NO_THROW(wush::load_quantized(out));
      break;
    }
    killed_while_writing += killed && count_tmp(base) > 0;
  }
  // 3. The next run (a different recipe, --force) removes the killed runs' leftovers and replaces
  //    the output.
  ASSERT_EQ(wush::testing::run_cli("--quiet --threads 1 quantize --model " + data_path("models/stories260K.bin") +
                                       " --recipe identity:mxint4:rtn --out " + out + " --force", &o, &e), 0) << e;
  EXPECT_EQ(count_tmp(base), 0) << "leftovers of killed runs remain (" << killed_while_writing << " kills while writing)";
  EXPECT_NE(snapshot(out), before);
  EXPECT_NO_THROW(wush::load_quantized(out));
  wush::remove_tree(base);
}

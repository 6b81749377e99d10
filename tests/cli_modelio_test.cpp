// The model I/O subcommands run as a user runs them (WUSH_CLI_PATH): exit codes, output, and the
// one-line error on bad input.
#include <gtest/gtest.h>

#include "model/forward.h"

#include <cstdio>
#include <nlohmann/json.hpp>
#include <sys/wait.h>

#include "core/atomic_file.h"
#include "core/runtime.h"
#include "core/paths.h"
#include "model/hf_model.h"
#include "model/weight_layout.h"
#include "modelio_test_util.h"

using wush::test::TempDir;

namespace {

struct RunResult {
  int rc;
  std::string out;  // stdout and stderr together
};

RunResult run_cli(const std::string& args) {
  std::string cmd = std::string(WUSH_CLI_PATH) + " -q " + args + " 2>&1";
  FILE* p = ::popen(cmd.c_str(), "r");
  EXPECT_NE(p, nullptr);
  std::string out;
  char buf[4096];
  size_t n;
  while ((n = std::fread(buf, 1, sizeof buf, p)) > 0) out.append(buf, n);
  int status = ::pclose(p);
  return {WIFEXITED(status) ? WEXITSTATUS(status) : -1, out};
}

// A failed command prints exactly one line "wush: error: ..." and exits 1.
void expect_one_line_error(const RunResult& r, const std::vector<std::string>& parts) {
  EXPECT_EQ(r.rc, 1) << r.out;
  EXPECT_EQ(r.out.rfind("wush: error: ", 0), 0u) << r.out;
  EXPECT_EQ(std::count(r.out.begin(), r.out.end(), '\n'), 1) << r.out;
  for (const auto& p : parts) EXPECT_NE(r.out.find(p), std::string::npos) << p << " not in: " << r.out;
}

std::string data_path(const std::string& rel) {
  std::string d = wush::default_data_dir();
  return d.empty() ? "" : d + "/" + rel;
}

}  // namespace

TEST(CliModelioTest, InfoJsonOfGutenberg) {
  std::string dir = data_path("models/gutenberg-llama-16M");
  if (!wush::path_exists(dir)) GTEST_SKIP() << "no data";
  TempDir tmp("cli_info");
  RunResult r = run_cli("info " + dir + " --tensors --json " + (tmp / "info.json"));
  ASSERT_EQ(r.rc, 0) << r.out;
  EXPECT_NE(r.out.find("15,735,168 (15.7M)"), std::string::npos) << r.out;
  EXPECT_NE(r.out.find("model.layers.7.mlp.down_proj.weight"), std::string::npos);
  auto j = nlohmann::json::parse(wush::read_file(tmp / "info.json"));
  EXPECT_EQ(j["parameters"], 15735168);
  EXPECT_EQ(j["bytes"], 31470336);  // the index's total_size
  EXPECT_EQ(j["kv_heads"], 2);
  EXPECT_EQ(j["tensors"].size(), 74u);
  EXPECT_EQ(j["dtype"], "bfloat16");
}

TEST(CliModelioTest, SynthThenInfo) {
  TempDir tmp("cli_synth");
  std::string out = tmp / "m";
  RunResult r = run_cli("synth --preset tiny-qwen3 --layers 1 --dtype fp32 --outliers 2 --seed 5 --out " + out);
  ASSERT_EQ(r.rc, 0) << r.out;
  r = run_cli("info " + out + " --json -");
  ASSERT_EQ(r.rc, 0) << r.out;
  auto j = nlohmann::json::parse(r.out);
  EXPECT_EQ(j["architecture"], "Qwen3ForCausalLM");
  EXPECT_EQ(j["layers"], 1);
  EXPECT_EQ(j["dtype"], "float32");
  EXPECT_EQ(j["parameters"], wush::parameter_count(wush::load_hf_model(out).config));
  expect_one_line_error(run_cli("synth --preset tiny --out " + out), {out, "already exists", "--force"});
  EXPECT_EQ(run_cli("synth --preset tiny --force --out " + out).rc, 0);
  expect_one_line_error(run_cli("synth --preset gpt5 --out " + (tmp / "x")), {"unknown preset 'gpt5'"});
}

TEST(CliModelioTest, InfoErrors) {
  TempDir tmp("cli_info_err");
  expect_one_line_error(run_cli("info " + (tmp / "nothing")), {tmp / "nothing", "no such model"});
  std::string bad = tmp / "bad";
  wush::make_dirs(bad);
  wush::write_file_atomic(bad + "/config.json", R"({"architectures": ["BertModel"]})");
  expect_one_line_error(run_cli("info " + bad), {bad + "/config.json", "unsupported architecture 'BertModel'"});
}

TEST(CliModelioTest, ConvertLlama2c) {
  std::string bin = data_path("models/stories260K.bin"), tok = data_path("models/tok512.bin");
  if (!wush::path_exists(bin)) GTEST_SKIP() << "no data";
  TempDir tmp("cli_convert");
  std::string out = tmp / "hf";
  expect_one_line_error(run_cli("convert --llama2c " + bin + " --tokenizer " + (tmp / "none.bin") + " --out " + out),
                        {"--tokenizer", "none.bin"});
  RunResult r = run_cli("convert --llama2c " + bin + " --tokenizer " + tok + " --out " + out);
  ASSERT_EQ(r.rc, 0) << r.out;
  wush::Model m = wush::load_hf_model(out);
  EXPECT_EQ(wush::read_file(out + "/tok512.bin"), wush::read_file(tok));  // copied as is
  EXPECT_EQ(m.tokenizer_path, out + "/tok512.bin");
  EXPECT_EQ(m.config.hidden_size, 64);
  EXPECT_EQ(m.config.num_kv_heads, 4);
  EXPECT_EQ(wush::parameter_count(m.config), 260032);  // data/README.md (tied classifier)
  wush::Model src = wush::load_model(bin);
  for (const auto& [name, t] : m.weights) EXPECT_TRUE(at::equal(t, src.weight(name))) << name;
  // The converted directory runs to exactly the same logits (max abs difference 0 in fp32).
  at::Tensor tokens = at::randint(3, 512, {2, 64}, at::kLong);
  at::Tensor a = wush::Transformer(m).forward(tokens), b = wush::Transformer(src).forward(tokens);
  EXPECT_EQ((a - b).abs().max().item<float>(), 0.0f);
}

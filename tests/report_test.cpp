// wush report (src/eval/report.h, svg_chart.h) and the eval/report command lines.
#include <gtest/gtest.h>

#include <nlohmann/json.hpp>

#include <cmath>

#include "core/atomic_file.h"
#include "core/error.h"
#include "eval/report.h"
#include "eval/svg_chart.h"
#include "eval/zeroshot.h"
#include "model/llama2c.h"
#include "runtime_test_util.h"

using namespace wush;
using namespace wush::testing;

namespace {

const std::string kStories = "models/stories260K.bin";

// Well-formed XML elements: every start tag closed in order (declarations and comments skipped).
::testing::AssertionResult balanced_xml(const std::string& s) {
  std::vector<std::string> stack;
  for (size_t p = s.find('<'); p != std::string::npos; p = s.find('<', p + 1)) {
    size_t e = s.find('>', p);
    if (e == std::string::npos) return ::testing::AssertionFailure() << "unclosed '<' at " << p;
    std::string tag = s.substr(p + 1, e - p - 1);
    if (tag.empty() || tag[0] == '?' || tag[0] == '!') continue;
    if (tag[0] == '/') {
      if (stack.empty() || stack.back() != tag.substr(1))
        return ::testing::AssertionFailure() << "</" << tag.substr(1) << "> closes " << (stack.empty() ? "nothing" : stack.back());
      stack.pop_back();
    } else if (tag.back() != '/') {
      stack.push_back(tag.substr(0, tag.find_first_of(" \n")));
    }
  }
  if (!stack.empty()) return ::testing::AssertionFailure() << "<" << stack.back() << "> never closed";
  return ::testing::AssertionSuccess();
}

size_t count(const std::string& s, const std::string& sub) {
  size_t n = 0;
  for (size_t p = s.find(sub); p != std::string::npos; p = s.find(sub, p + 1)) ++n;
  return n;
}

std::vector<ReportRow> fixed_rows() {
  ReportRow fp{"FP32", nlohmann::json::parse(R"({"name": "FP32", "ppl": {"wiki": {"ppl": 10.0}},
      "tasks": {"piqa": {"acc": 0.6, "acc_norm": 0.61, "n": 10}, "arc_easy": {"acc": 0.4, "acc_norm": 0.5, "n": 10}}})")};
  ReportRow rtn{"none:mxfp4:rtn", nlohmann::json::parse(R"({"recipe": "none:mxfp4:rtn", "ppl": {"wiki": {"ppl": 12.5}},
      "tasks": {"piqa": {"acc": 0.55, "acc_norm": 0.5, "n": 10}, "arc_easy": {"acc": 0.35, "acc_norm": 0.3, "n": 10}},
      "kl": {"wiki": {"kl": 0.1234, "top1": 0.9}}})")};
  return {fp, rtn};
}

}  // namespace

TEST(Report, MarkdownTableFromFixedResults) {
  Report r = build_report(fixed_rows(), "");
  const std::string table =
      "# Results\n\n"
      "| method | ppl wiki | arc_easy | piqa | avg | recovery % | KL wiki | top-1 wiki |\n"
      "|---|---:|---:|---:|---:|---:|---:|---:|\n"
      "| FP32 | 10.000 | 40.00 | 60.00 | 50.00 | 100.0 | - | - |\n"
      "| none:mxfp4:rtn | 12.500 | 35.00 | 55.00 | 45.00 | 90.0 | 0.1234 | 90.00 |\n\n";
  EXPECT_EQ(r.markdown.substr(0, table.size()), table) << r.markdown;
  EXPECT_NE(r.markdown.find("recovery %: avg / avg of FP32"), std::string::npos);
  EXPECT_NE(r.markdown.find("![perplexity](ppl.svg)"), std::string::npos);
  EXPECT_NE(r.markdown.find("![accuracy per task](tasks.svg)"), std::string::npos);
  // Another baseline; an unknown one is an error; no FP32 row and no baseline: no recovery column.
  EXPECT_NE(build_report(fixed_rows(), "none:mxfp4:rtn").markdown.find("| 111.1 |"), std::string::npos);
  EXPECT_THROW(build_report(fixed_rows(), "bf16"), Error);
  EXPECT_EQ(build_report({fixed_rows()[1]}, "").markdown.find("recovery"), std::string::npos);
}

TEST(Report, SvgChartsAreWellFormed) {
  Report r = build_report(fixed_rows(), "");
  for (const std::string* svg : {&r.ppl_svg, &r.tasks_svg}) {
    EXPECT_EQ(svg->rfind("<svg xmlns=\"http://www.w3.org/2000/svg\"", 0), 0u);
    EXPECT_TRUE(balanced_xml(*svg));
    for (const char* bad : {"nan<", "nan\"", "nan)", "inf<", "inf\"", "inf)"})  // no non-finite number printed
      EXPECT_EQ(svg->find(bad), std::string::npos) << bad;
  }
  EXPECT_EQ(count(r.ppl_svg, "<title>"), 2u);     // one bar per method
  EXPECT_EQ(count(r.tasks_svg, "<title>"), 6u);   // (2 tasks + average) x 2 methods
  EXPECT_NE(r.tasks_svg.find("<title>none:mxfp4:rtn, piqa: 55.0</title>"), std::string::npos);
  // Missing values leave gaps, names are escaped.
  BarChart c{"a<b", "y", {"g1", "g2"}, {"x&y"}, {{1.5, std::nan("")}}, "%.1f"};
  std::string svg = svg_bar_chart(c);
  EXPECT_TRUE(balanced_xml(svg));
  EXPECT_EQ(count(svg, "<title>"), 1u);
  EXPECT_NE(svg.find("a&lt;b"), std::string::npos);
  EXPECT_NE(svg.find("x&amp;y"), std::string::npos);
  EXPECT_THROW(svg_bar_chart(BarChart{"t", "y", {"g"}, {"s"}, {{1, 2}}, "%.1f"}), Error);
  EXPECT_EQ(nice_step(10, 5), 2);
  EXPECT_EQ(nice_step(0.9, 5), 0.2);
  EXPECT_EQ(nice_step(130, 5), 50);
}

// ---- command lines -------------------------------------------------------------------------
// wush eval --tasks: the JSON contract, and the library's numbers.
TEST(EvalCli, TasksJsonContract) {
  const std::string js = ::testing::TempDir() + "tasks.json";
  std::string out, err;
  ASSERT_EQ(run_cli("-q --threads 1 eval --model " + data_path(kStories) +
                        " --tasks copa,lambada --limit 12 --name FP32 --json " + js,
                    &out, &err),
            0)
      << err;
  const nlohmann::json j = nlohmann::json::parse(read_file(js));
  EXPECT_EQ(j.at("name"), "FP32");
  Model m = load_llama2c(data_path(kStories));
  auto tok = load_tokenizer(m.tokenizer_path);
  Transformer tf(m);
  ZeroShotOptions o;
  o.limit = 12;
  double sum = 0;
  for (const char* t : {"copa", "lambada"}) {
    const TaskInfo& info = find_task(t);
    TaskResult want = evaluate_task(tf, nullptr, *tok, info, load_task(info, default_data_dir()), o);
    const nlohmann::json& got = j.at("tasks").at(t);
    EXPECT_EQ(got.at("n").get<int64_t>(), 12);
    EXPECT_DOUBLE_EQ(got.at("acc").get<double>(), want.acc) << t;
    EXPECT_DOUBLE_EQ(got.at("acc_norm").get<double>(), want.acc_norm) << t;
    sum += want.acc;
  }
  EXPECT_GT(j.at("tasks").at("lambada").at("ppl").get<double>(), 1.0);
  EXPECT_DOUBLE_EQ(j.at("average").at("acc").get<double>(), sum / 2);
  EXPECT_NE(out.find("average"), std::string::npos) << out;
}

TEST(EvalCli, KlOfAModelWithItselfAndReport) {
  const std::string dir = ::testing::TempDir(), txt = dir + "kl_text.txt", js = dir + "kl.json";
  write_file_atomic(txt, read_file(data_path("text/tinystories_val_1000.txt")).substr(0, 6000));
  std::string out, err;
  ASSERT_EQ(run_cli("-q --threads 1 eval --model " + data_path(kStories) + " --kl-ref " + data_path(kStories) +
                        " --ppl " + txt + " --json " + js,
                    &out, &err),
            0)
      << err;
  const nlohmann::json j = nlohmann::json::parse(read_file(js));
  const nlohmann::json& kl = j.at("kl").at("kl_text");
  EXPECT_EQ(kl.at("kl").get<double>(), 0.0);
  EXPECT_EQ(kl.at("top1").get<double>(), 1.0);
  EXPECT_EQ(kl.at("tokens").get<int64_t>(), j.at("ppl").at("kl_text").at("tokens").get<int64_t>());

  const std::string rdir = dir + "report_out";
  ASSERT_EQ(run_cli("report " + js + " --out " + rdir, &out, &err), 0) << err;
  const std::string md = read_file(rdir + "/report.md");
  EXPECT_NE(md.find("| kl |"), std::string::npos) << md;  // label: the file's stem
  EXPECT_TRUE(balanced_xml(read_file(rdir + "/ppl.svg")));
  EXPECT_FALSE(path_exists(rdir + "/tasks.svg"));  // no tasks in the input
}

TEST(EvalCli, TaskAndReportErrorsAreOneLine) {
  const std::string model = " --model " + data_path(kStories), dir = ::testing::TempDir();
  write_file_atomic(dir + "not_results.json", "{\"x\": 1}");
  struct Case {
    std::string args, must_contain;
  } cases[] = {
      {"eval" + model, "nothing to do"},
      {"eval" + model + " --tasks copa,mmlu", "unknown task 'mmlu'"},
      {"eval" + model + " --tasks copa --data-dir " + dir + "no_dir", "no_dir': no such folder"},
      {"eval" + model + " --tasks copa --data-dir " + dir, "tasks/copa.jsonl"},
      {"eval" + model + " --kl-ref " + data_path(kStories), "--kl-ref needs --ppl"},
      {"report " + dir + "nope.json", "no such results file"},
      {"report " + dir + "not_results.json", "not a wush eval result"},
  };
  for (const Case& c : cases) {
    std::string out, err;
    EXPECT_EQ(run_cli("-q " + c.args, &out, &err), 1) << c.args;
    EXPECT_EQ(std::count(err.begin(), err.end(), '\n'), 1) << c.args << ": " << err;
    EXPECT_NE(err.find(c.must_contain), std::string::npos) << c.args << ": " << err;
  }
}

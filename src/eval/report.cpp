// Report assembly: union of the metrics present in the rows, one markdown column per metric.
#include "eval/report.h"

#include <cerrno>
#include <cmath>
#include <cstring>
#include <limits>

#include "core/atomic_file.h"
#include "core/error.h"
#include "core/paths.h"
#include "eval/svg_chart.h"
#include "eval/tasks.h"

namespace wush {

namespace {

const double kNaN = std::numeric_limits<double>::quiet_NaN();

// Keys of obj[section] over all rows, first-seen order.
std::vector<std::string> keys_of(const std::vector<ReportRow>& rows, const char* section) {
  std::vector<std::string> out;
  for (const ReportRow& r : rows)
    if (r.result.contains(section) && r.result[section].is_object())
      for (auto it = r.result[section].begin(); it != r.result[section].end(); ++it)
        if (std::find(out.begin(), out.end(), it.key()) == out.end()) out.push_back(it.key());
  return out;
}

// r[section][key][field] as a number, NaN if absent.
double field(const ReportRow& r, const char* section, const std::string& key, const char* f) {
  const nlohmann::json& j = r.result;
  if (!j.contains(section) || !j[section].contains(key) || !j[section][key].contains(f)) return kNaN;
  const nlohmann::json& v = j[section][key][f];
  return v.is_number() ? v.get<double>() : kNaN;
}

// The tasks in the rows: the task table's order first, unknown names after.
std::vector<std::string> task_columns(const std::vector<ReportRow>& rows) {
  std::vector<std::string> seen = keys_of(rows, "tasks"), out;
  for (const TaskInfo& t : all_tasks())
    if (std::find(seen.begin(), seen.end(), t.name) != seen.end()) out.push_back(t.name);
  for (const std::string& s : seen)
    if (std::find(out.begin(), out.end(), s) == out.end()) out.push_back(s);
  return out;
}

// Mean acc over the row's tasks (NaN without tasks).
double row_average(const ReportRow& r, const std::vector<std::string>& tasks) {
  double sum = 0;
  int n = 0;
  for (const std::string& t : tasks) {
    double a = field(r, "tasks", t, "acc");
    if (std::isfinite(a)) sum += a, ++n;
  }
  return n ? sum / n : kNaN;
}

std::string cell(double v, const char* fmt) { return std::isfinite(v) ? strfmt(fmt, v) : "-"; }

}  // namespace

ReportRow load_report_row(const std::string& path) {
  WUSH_CHECK(path_exists(path), "report: no such results file %s", path.c_str());
  ReportRow r;
  try {
    r.result = nlohmann::json::parse(read_file(path));
  } catch (const nlohmann::json::exception& e) {
    WUSH_FAIL("%s: not JSON (%s)", path.c_str(), e.what());
  }
  WUSH_CHECK(r.result.is_object() && (r.result.contains("ppl") || r.result.contains("tasks")),
             "%s: not a wush eval result (no \"ppl\" or \"tasks\")", path.c_str());
  for (const char* key : {"name", "recipe"})
    if (r.label.empty() && r.result.contains(key) && r.result[key].is_string()) r.label = r.result[key].get<std::string>();
  if (r.label.empty()) r.label = path_stem(path);
  return r;
}

Report build_report(const std::vector<ReportRow>& rows, const std::string& baseline, const std::string& ppl_title,
                    const std::string& ppl_y_label) {
  WUSH_CHECK(!rows.empty(), "report: no results files");
  const std::vector<std::string> ppl = keys_of(rows, "ppl"), kl = keys_of(rows, "kl"), tasks = task_columns(rows);
  const ReportRow* base = nullptr;
  for (const ReportRow& r : rows)
    if (r.label == (baseline.empty() ? "FP32" : baseline)) base = &r;
  WUSH_CHECK(base || baseline.empty(), "--baseline '%s': no results file has that name", baseline.c_str());
  const double base_avg = base ? row_average(*base, tasks) : kNaN;
  const bool recovery = std::isfinite(base_avg) && base_avg > 0;

  std::string head = "| method |", rule = "|---|";
  auto col = [&](const std::string& name) { head += " " + name + " |", rule += "---:|"; };
  for (const std::string& p : ppl) col("ppl " + p);
  for (const std::string& t : tasks) col(t);
  if (!tasks.empty()) col("avg");
  if (recovery) col("recovery %");
  for (const std::string& k : kl) col("KL " + k), col("top-1 " + k);
  std::string md = "# Results\n\n" + head + "\n" + rule + "\n";
  bool uneven = false;
  for (const ReportRow& r : rows) {
    std::string line = "| " + r.label + " |";
    for (const std::string& p : ppl) line += " " + cell(field(r, "ppl", p, "ppl"), "%.3f") + " |";
    for (const std::string& t : tasks) {
      const double a = field(r, "tasks", t, "acc");
      uneven = uneven || !std::isfinite(a);
      line += " " + cell(100 * a, "%.2f") + " |";
    }
    const double avg = row_average(r, tasks);
    if (!tasks.empty()) line += " " + cell(100 * avg, "%.2f") + " |";
    if (recovery) line += " " + cell(100 * avg / base_avg, "%.1f") + " |";
    for (const std::string& k : kl)
      line += " " + cell(field(r, "kl", k, "kl"), "%.4f") + " | " + cell(100 * field(r, "kl", k, "top1"), "%.2f") + " |";
    md += line + "\n";
  }
  md += "\n";
  if (!ppl.empty()) md += "- ppl: perplexity of each text (`wush eval --ppl`), lower is better.\n";
  if (!tasks.empty())
    md += "- Tasks: accuracy in % (lm-eval `acc`: summed continuation log-likelihood); avg: their mean.\n";
  if (uneven) md += "- Some methods lack some tasks: their avg covers the tasks they have.\n";
  if (recovery) md += "- recovery %: avg / avg of " + base->label + " (the full-precision row).\n";
  if (!kl.empty()) md += "- KL: mean token KL(p_ref || p_method) in nats; top-1: argmax agreement in %.\n";

  Report rep;
  std::vector<std::string> series;
  for (const ReportRow& r : rows) series.push_back(r.label);
  if (!ppl.empty()) {
    BarChart c{ppl_title.empty() ? "Perplexity per method (lower is better)" : ppl_title,
               ppl_y_label.empty() ? "perplexity" : ppl_y_label, ppl, series, {}, "%.2f"};
    for (const ReportRow& r : rows) {
      c.values.emplace_back();
      for (const std::string& p : ppl) c.values.back().push_back(field(r, "ppl", p, "ppl"));
    }
    rep.ppl_svg = svg_bar_chart(c);
    md += "\n![perplexity](ppl.svg)\n";
  }
  if (!tasks.empty()) {
    std::vector<std::string> groups = tasks;
    groups.push_back("average");
    BarChart c{"Zero-shot accuracy per task", "accuracy (%)", groups, series, {}, "%.1f"};
    for (const ReportRow& r : rows) {
      c.values.emplace_back();
      for (const std::string& t : tasks) c.values.back().push_back(100 * field(r, "tasks", t, "acc"));
      c.values.back().push_back(100 * row_average(r, tasks));
    }
    rep.tasks_svg = svg_bar_chart(c);
    md += "\n![accuracy per task](tasks.svg)\n";
  }
  rep.markdown = md;
  return rep;
}

std::vector<std::string> write_report(const Report& r, const std::string& dir) {
  bool made = make_dirs(dir);
  WUSH_CHECK(made, "--out %s: cannot create the folder (%s)", dir.c_str(), std::strerror(errno));
  std::vector<std::string> written;
  for (const auto& [name, text] : {std::pair<std::string, const std::string*>{"report.md", &r.markdown},
                                   {"ppl.svg", &r.ppl_svg},
                                   {"tasks.svg", &r.tasks_svg}}) {
    if (text->empty()) continue;
    write_file_atomic(dir + "/" + name, *text);
    written.push_back(dir + "/" + name);
  }
  return written;
}

}  // namespace wush

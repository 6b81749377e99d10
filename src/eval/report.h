// wush report: `wush eval --json` results of several methods -> a markdown table (methods x
// metrics: perplexity per text, accuracy per task, average, recovery, KL) and SVG charts.
// Recovery = average accuracy / the full-precision row's average, in percent (REFERENCE.md §6).
#pragma once
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

namespace wush {

struct ReportRow {
  std::string label;  // the JSON's "name", else its "recipe", else the file's stem
  nlohmann::json result;
};

struct Report {
  std::string markdown;
  std::string ppl_svg;    // "" without perplexities
  std::string tasks_svg;  // "" without tasks
};

// Reads one eval JSON; `path` names it in errors.
ReportRow load_report_row(const std::string& path);

// baseline: the label of the full-precision row; "" = the row labelled "FP32" if any (then no
// recovery column without one). A named baseline that is absent is an error. ppl_title /
// ppl_y_label: the first chart's title and y-axis label ("" = the perplexity defaults; the
// accuracy study reuses that chart for other per-method metrics, e.g. layer loss per layer).
Report build_report(const std::vector<ReportRow>& rows, const std::string& baseline,
                    const std::string& ppl_title = "", const std::string& ppl_y_label = "");

// Writes report.md, ppl.svg and tasks.svg (those that are not empty) into dir (created if needed),
// each atomically. Returns the paths written.
std::vector<std::string> write_report(const Report& r, const std::string& dir);

}  // namespace wush

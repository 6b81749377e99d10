// wush report: eval JSON files of several methods -> DIR/report.md + ppl.svg + tasks.svg.
#include <cstdio>

#include "cli.h"
#include "eval/report.h"

namespace {

struct ReportArgs {
  std::vector<std::string> files;
  std::string out = "report", baseline, title, y_label;
};

wush::cli::Register reg("report", "markdown table and SVG charts from several `wush eval --json` results",
                        [](CLI::App& app) -> wush::cli::Action {
  auto a = std::make_shared<ReportArgs>();
  app.add_option("results", a->files, "RESULTS.json files (one method each; row label: \"name\", \"recipe\" or stem)")
      ->required();
  app.add_option("--out", a->out, "output folder")->capture_default_str();
  app.add_option("--baseline", a->baseline, "name of the full-precision row for recovery % (default: FP32)");
  app.add_option("--title", a->title, "title of the perplexity chart (default: \"Perplexity per method\")");
  app.add_option("--y-label", a->y_label, "y-axis label of the perplexity chart (default: perplexity)");
  return [a] {
    std::vector<wush::ReportRow> rows;
    for (const std::string& f : a->files) rows.push_back(wush::load_report_row(f));
    wush::Report r = wush::build_report(rows, a->baseline, a->title, a->y_label);
    for (const std::string& p : wush::write_report(r, a->out)) std::printf("wrote %s\n", p.c_str());
    return 0;
  };
});

}  // namespace

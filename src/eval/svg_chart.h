// Hand-written SVG bar charts for reports (no plotting library): grouped vertical bars with a
// zero-based y axis, "nice" ticks (1, 2, 5 x 10^k), a legend, and values above the bars.
#pragma once
#include <string>
#include <vector>

namespace wush {

struct BarChart {
  std::string title, y_label;
  std::vector<std::string> groups;              // x categories (e.g. tasks)
  std::vector<std::string> series;              // one bar per group per series (e.g. methods)
  std::vector<std::vector<double>> values;      // [series][group]; NaN = missing (no bar)
  std::string value_format = "%.2f";            // printf format of the labels above the bars
};

// A standalone SVG document (renders in a browser); wush::Error if the shapes disagree.
std::string svg_bar_chart(const BarChart& c);

// "Nice" tick step for an axis from 0 to max with about `ticks` ticks: 1, 2 or 5 x 10^k.
double nice_step(double max, int ticks);

// Text escaped for XML content and attributes.
std::string xml_escape(const std::string& s);

}  // namespace wush

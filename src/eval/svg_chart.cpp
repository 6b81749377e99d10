// Grouped bar charts as SVG text. Layout: title and legend on top, plot area, group labels below
// (rotated when they would not fit under their group).
#include "eval/svg_chart.h"

#include <algorithm>
#include <cmath>

#include "core/error.h"

namespace wush {

namespace {

// Tableau 10, then the light variants of Tableau 20: 20 distinguishable colors on white (a report
// of FP32 + 8 methods x 2 formats has 17 series; the colors repeat only beyond 20).
const char* const kPalette[] = {"#4e79a7", "#f28e2b", "#e15759", "#76b7b2", "#59a14f", "#edc948", "#b07aa1",
                                "#ff9da7", "#9c755f", "#bab0ac", "#a0cbe8", "#ffbe7d", "#8cd17d", "#b6992d",
                                "#f1ce63", "#499894", "#86bcb6", "#d37295", "#fabfd2", "#79706e"};
constexpr size_t kColors = sizeof(kPalette) / sizeof(kPalette[0]);

std::string num(double v) { return strfmt("%.1f", v); }

std::string fmt_value(const std::string& f, double v) {
  char buf[64];
  std::snprintf(buf, sizeof buf, f.c_str(), v);
  return buf;
}

}  // namespace

std::string xml_escape(const std::string& s) {
  std::string o;
  for (char c : s) {
    switch (c) {
      case '&': o += "&amp;"; break;
      case '<': o += "&lt;"; break;
      case '>': o += "&gt;"; break;
      case '"': o += "&quot;"; break;
      case '\'': o += "&apos;"; break;
      default: o += c;
    }
  }
  return o;
}

double nice_step(double max, int ticks) {
  WUSH_CHECK(ticks >= 1, "nice_step: %d ticks", ticks);
  if (!(max > 0) || !std::isfinite(max)) return 1;
  const double raw = max / ticks, p = std::pow(10.0, std::floor(std::log10(raw))), f = raw / p;
  return (f <= 1 ? 1 : f <= 2 ? 2 : f <= 5 ? 5 : 10) * p;
}

std::string svg_bar_chart(const BarChart& c) {
  WUSH_CHECK(!c.groups.empty() && !c.series.empty(), "chart '%s': no data", c.title.c_str());
  WUSH_CHECK(c.values.size() == c.series.size(), "chart '%s': %zu value rows for %zu series", c.title.c_str(),
             c.values.size(), c.series.size());
  double vmax = 0;
  for (const auto& row : c.values) {
    WUSH_CHECK(row.size() == c.groups.size(), "chart '%s': %zu values for %zu groups", c.title.c_str(), row.size(),
               c.groups.size());
    for (double v : row)
      if (std::isfinite(v)) vmax = std::max(vmax, v);
  }
  const size_t S = c.series.size(), G = c.groups.size();
  const double bar = S <= 4 ? 18 : 12, group_w = double(S) * bar + 24;
  const double left = 72, right = 24, plot_h = 280;
  size_t longest = 0;
  for (const auto& g : c.groups) longest = std::max(longest, g.size());
  const bool rotate = double(longest) * 6.5 > std::max(group_w, (640.0 - left - right) / double(G));
  const double bottom = rotate ? 24 + 6.0 * double(std::min<size_t>(longest, 40)) : 48;
  const double W = std::max(640.0, left + right + double(G) * group_w);
  // Legend: swatches under the title, wrapped into rows that fit the width.
  std::vector<std::pair<double, double>> legend_xy;
  double lx = left, ly = 40;
  for (size_t k = 0; k < S; ++k) {
    const double w = 16 + 7.0 * double(c.series[k].size()) + 18;
    if (lx > left && lx + w - 18 > W - right) lx = left, ly += 18;
    legend_xy.emplace_back(lx, ly);
    lx += w;
  }
  const double top = ly + 44, H = top + plot_h + bottom;
  const double slot = (W - left - right) / double(G);  // groups spread over the width, bars centered
  const double step = nice_step(vmax * 1.08, 5), ymax = std::max(step, std::ceil(vmax * 1.08 / step) * step);
  auto y_of = [&](double v) { return top + plot_h * (1 - v / ymax); };

  std::string s = strfmt(
      "<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"%s\" height=\"%s\" viewBox=\"0 0 %s %s\" "
      "font-family=\"Helvetica, Arial, sans-serif\">\n",
      num(W).c_str(), num(H).c_str(), num(W).c_str(), num(H).c_str());
  s += strfmt("<rect width=\"%s\" height=\"%s\" fill=\"white\"/>\n", num(W).c_str(), num(H).c_str());
  s += strfmt("<text x=\"%s\" y=\"24\" font-size=\"16\" font-weight=\"bold\" text-anchor=\"middle\">%s</text>\n",
              num(W / 2).c_str(), xml_escape(c.title).c_str());
  for (size_t k = 0; k < S; ++k) {
    const auto [x, y] = legend_xy[k];
    s += strfmt("<rect x=\"%s\" y=\"%s\" width=\"12\" height=\"12\" fill=\"%s\"/>\n", num(x).c_str(),
                num(y).c_str(), kPalette[k % kColors]);
    s += strfmt("<text x=\"%s\" y=\"%s\" font-size=\"12\">%s</text>\n", num(x + 16).c_str(), num(y + 10).c_str(),
                xml_escape(c.series[k]).c_str());
  }
  // Y axis: grid lines and tick labels.
  for (double v = 0; v <= ymax + step / 2; v += step) {
    const std::string y = num(y_of(v));
    s += strfmt("<line x1=\"%s\" x2=\"%s\" y1=\"%s\" y2=\"%s\" stroke=\"#dddddd\"/>\n", num(left).c_str(),
                num(W - right).c_str(), y.c_str(), y.c_str());
    s += strfmt("<text x=\"%s\" y=\"%s\" font-size=\"11\" text-anchor=\"end\" dominant-baseline=\"middle\">%s</text>\n",
                num(left - 6).c_str(), y.c_str(), xml_escape(fmt_value("%g", v)).c_str());
  }
  s += strfmt("<text transform=\"translate(18 %s) rotate(-90)\" font-size=\"12\" text-anchor=\"middle\">%s</text>\n",
              num(top + plot_h / 2).c_str(), xml_escape(c.y_label).c_str());
  s += strfmt("<line x1=\"%s\" x2=\"%s\" y1=\"%s\" y2=\"%s\" stroke=\"black\"/>\n", num(left).c_str(),
              num(W - right).c_str(), num(top + plot_h).c_str(), num(top + plot_h).c_str());
  // Bars, value labels (vertical, above each bar) and group labels.
  for (size_t g = 0; g < G; ++g) {
    const double x0 = left + double(g) * slot + (slot - double(S) * bar) / 2, cx = x0 + double(S) * bar / 2;
    for (size_t k = 0; k < S; ++k) {
      const double v = c.values[k][g];
      if (!std::isfinite(v)) continue;
      const double x = x0 + double(k) * bar, y = y_of(std::max(0.0, v));
      const std::string label = xml_escape(fmt_value(c.value_format, v));
      s += strfmt("<rect x=\"%s\" y=\"%s\" width=\"%s\" height=\"%s\" fill=\"%s\"><title>%s, %s: %s</title></rect>\n",
                  num(x).c_str(), num(y).c_str(), num(bar - 2).c_str(), num(top + plot_h - y).c_str(),
                  kPalette[k % kColors], xml_escape(c.series[k]).c_str(), xml_escape(c.groups[g]).c_str(), label.c_str());
      s += strfmt("<text transform=\"translate(%s %s) rotate(-90)\" font-size=\"9\" dominant-baseline=\"middle\">%s</text>\n",
                  num(x + (bar - 2) / 2).c_str(), num(y - 3).c_str(), label.c_str());
    }
    const std::string name = xml_escape(c.groups[g]), ly = num(top + plot_h + 16);
    if (rotate)
      s += strfmt("<text transform=\"translate(%s %s) rotate(-35)\" font-size=\"12\" text-anchor=\"end\">%s</text>\n",
                  num(cx).c_str(), ly.c_str(), name.c_str());
    else
      s += strfmt("<text x=\"%s\" y=\"%s\" font-size=\"12\" text-anchor=\"middle\">%s</text>\n", num(cx).c_str(),
                  ly.c_str(), name.c_str());
  }
  return s + "</svg>\n";
}

}  // namespace wush

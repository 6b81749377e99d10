#include "latmix/loss_curve.h"

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <sstream>

namespace wush::latmix {

namespace {

std::string fmt(const char* f, double v) {
  char b[64];
  std::snprintf(b, sizeof b, f, v);
  return b;
}

std::string xml_escape(const std::string& s) {
  std::string o;
  for (char c : s) {
    if (c == '<') o += "&lt;";
    else if (c == '>') o += "&gt;";
    else if (c == '&') o += "&amp;";
    else o += c;
  }
  return o;
}

}  // namespace

std::string loss_curve_csv(const std::vector<LossPoint>& curve) {
  std::ostringstream o;
  o << "step,loss,kl,reg,lr\n";
  char b[160];
  for (const LossPoint& p : curve) {
    std::snprintf(b, sizeof b, "%lld,%.8g,%.8g,%.8g,%.8g\n", (long long)p.step, p.loss, p.kl, p.reg, p.lr);
    o << b;
  }
  return o.str();
}

std::string loss_curve_svg(const std::vector<LossPoint>& curve, const std::string& title) {
  const double W = 720, H = 400, l = 70, r = 70, t = 40, b = 50, pw = W - l - r, ph = H - t - b;
  double lo = 0, hi = 1, lrmax = 1;
  const int64_t n = int64_t(curve.size());
  if (n > 0) {
    lo = hi = curve[0].loss;
    lrmax = 0;
    for (const LossPoint& p : curve) {
      lo = std::min(lo, p.loss);
      hi = std::max(hi, p.loss);
      lrmax = std::max(lrmax, p.lr);
    }
    lo = std::min(0.0, lo);
    if (hi <= lo) hi = lo + 1;
    if (lrmax <= 0) lrmax = 1;
  }
  const double last = n > 1 ? double(curve.back().step) : 1;
  auto X = [&](double s) { return l + pw * s / last; };
  auto Y = [&](double v) { return t + ph * (1 - (v - lo) / (hi - lo)); };
  auto Ylr = [&](double v) { return t + ph * (1 - v / lrmax); };
  std::ostringstream o;
  o << "<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"" << W << "\" height=\"" << H << "\" font-family=\"sans-serif\" font-size=\"12\">\n";
  o << "<rect width=\"100%\" height=\"100%\" fill=\"white\"/>\n";
  o << "<text x=\"" << W / 2 << "\" y=\"22\" text-anchor=\"middle\" font-size=\"14\">" << xml_escape(title) << "</text>\n";
  o << "<rect x=\"" << l << "\" y=\"" << t << "\" width=\"" << pw << "\" height=\"" << ph << "\" fill=\"none\" stroke=\"black\"/>\n";
  for (int i = 0; i <= 5; ++i) {  // ticks: loss (left), lr (right), step (bottom)
    const double fy = double(i) / 5, y = t + ph * (1 - fy);
    o << "<line x1=\"" << l << "\" x2=\"" << l + pw << "\" y1=\"" << y << "\" y2=\"" << y << "\" stroke=\"#ddd\"/>\n";
    o << "<text x=\"" << l - 6 << "\" y=\"" << y + 4 << "\" text-anchor=\"end\">" << fmt("%.3g", lo + fy * (hi - lo)) << "</text>\n";
    o << "<text x=\"" << l + pw + 6 << "\" y=\"" << y + 4 << "\" fill=\"#c60\">" << fmt("%.2g", fy * lrmax) << "</text>\n";
    const double x = l + pw * double(i) / 5;
    o << "<text x=\"" << x << "\" y=\"" << t + ph + 18 << "\" text-anchor=\"middle\">" << fmt("%.0f", last * double(i) / 5) << "</text>\n";
  }
  o << "<text x=\"" << l + pw / 2 << "\" y=\"" << H - 10 << "\" text-anchor=\"middle\">step</text>\n";
  o << "<text x=\"16\" y=\"" << t + ph / 2 << "\" transform=\"rotate(-90 16 " << t + ph / 2 << ")\" text-anchor=\"middle\">loss (KL + reg)</text>\n";
  o << "<text x=\"" << W - 14 << "\" y=\"" << t + ph / 2 << "\" transform=\"rotate(90 " << W - 14 << " " << t + ph / 2 << ")\" text-anchor=\"middle\" fill=\"#c60\">learning rate</text>\n";
  auto polyline = [&](const std::string& color, double width, auto value, auto ymap) {
    o << "<polyline fill=\"none\" stroke=\"" << color << "\" stroke-width=\"" << width << "\" points=\"";
    for (const LossPoint& p : curve) o << fmt("%.1f", X(double(p.step))) << "," << fmt("%.1f", ymap(value(p))) << " ";
    o << "\"/>\n";
  };
  if (n > 0) {
    polyline("#9ab", 1, [](const LossPoint& p) { return p.loss; }, Y);
    std::vector<double> ema(curve.size());
    double e = curve[0].loss;
    for (size_t i = 0; i < curve.size(); ++i) ema[i] = e = (i == 0 ? e : 0.95 * e + 0.05 * curve[i].loss);
    o << "<polyline fill=\"none\" stroke=\"#036\" stroke-width=\"2\" points=\"";
    for (size_t i = 0; i < curve.size(); ++i) o << fmt("%.1f", X(double(curve[i].step))) << "," << fmt("%.1f", Y(ema[i])) << " ";
    o << "\"/>\n";
    polyline("#c60", 1, [](const LossPoint& p) { return p.lr; }, Ylr);
  }
  o << "<text x=\"" << l + 10 << "\" y=\"" << t + 16 << "\" fill=\"#036\">loss (moving average 0.95), raw in grey</text>\n";
  o << "</svg>\n";
  return o.str();
}

}  // namespace wush::latmix

#include "coordinator/report/gnuplot.h"

#include <algorithm>
#include <cctype>
#include <cmath>

#include <fmt/format.h>
#include <fmt/ranges.h>

namespace seedgrid::report {

namespace {
constexpr const char* kColors[] = {"#1f77b4", "#ff7f0e", "#2ca02c", "#d62728", "#9467bd",
                                   "#8c564b", "#e377c2", "#7f7f7f", "#bcbd22", "#17becf"};
}  // namespace

std::string Num(double v) { return std::isfinite(v) ? fmt::format("{:.6g}", v) : "NaN"; }

std::string Q(std::string_view s) {
  std::string out = "'";
  for (char ch : s) {
    out += ch;
    if (ch == '\'') out += '\'';
  }
  return out + "'";
}

std::string FileStem(std::string s) {
  for (char& ch : s) {
    if (!std::isalnum(static_cast<unsigned char>(ch)) && ch != '-' && ch != '_' && ch != '.')
      ch = '_';
  }
  return s;
}

std::string Color(size_t i) { return kColors[i % 10]; }
int Dash(size_t i) { return 1 + static_cast<int>(i % 5); }
int PointType(size_t i) {
  static constexpr int kTypes[] = {7, 5, 9, 11, 13, 4, 6, 8};  // filled circle, square, ...
  return kTypes[i % 8];
}

std::string Script(const std::string& id, const std::string& title, int width, int height,
                   const std::string& body) {
  return fmt::format(
      "# seedgrid report: {title}\n"
      "# Draws {id}.png and {id}.svg from {id}.dat; run from this directory: gnuplot {id}.gp\n"
      "set encoding utf8\n"
      "do for [ext in \"png svg\"] {{\n"
      "  if (ext eq \"png\") {{\n"
      "    if (strstrt(GPVAL_TERMINALS, \"pngcairo\") > 0) {{\n"
      "      set terminal pngcairo size {w},{h} font \"DejaVu Sans,11\" noenhanced\n"
      "    }} else {{\n"
      "      set terminal png size {w},{h} noenhanced\n"
      "    }}\n"
      "  }} else {{\n"
      "    set terminal svg size {w},{h} font \"DejaVu Sans,11\" noenhanced background rgb "
      "'white'\n"
      "  }}\n"
      "  set output '{id}.'.ext\n"
      "  reset\n"
      "{body}"
      "  unset output\n"
      "}}\n",
      fmt::arg("title", title), fmt::arg("id", id), fmt::arg("w", width), fmt::arg("h", height),
      fmt::arg("body", body));
}

int LabelDigits(double lo, double hi) {
  const double m = std::max(std::abs(lo), std::abs(hi));
  if (!(m > 0) || !std::isfinite(m)) return 2;
  return std::clamp(2 - static_cast<int>(std::floor(std::log10(m))), 0, 6);
}

std::string HeatmapBody(const HeatmapAxes& a) {
  auto tics = [](const std::vector<std::string>& t) {
    std::vector<std::string> parts;
    for (size_t i = 0; i < t.size(); ++i) parts.push_back(fmt::format("{} {}", Q(t[i]), i));
    return fmt::format("({})", fmt::join(parts, ", "));
  };
  const double xmax = static_cast<double>(a.xtics.size()) - 0.5;
  std::string body = fmt::format(
      "  set title {}\n  set xlabel {}\n  set ylabel {}\n  set cblabel {}\n"
      "  set xtics {} {}\n  set ytics {}\n"
      "  set xrange [-0.5:{}]\n  set yrange [{}:-0.5]\n  set tics scale 0\n",
      Q(a.title), Q(a.xlabel), Q(a.ylabel), Q(a.cblabel), tics(a.xtics),
      std::any_of(a.xtics.begin(), a.xtics.end(), [](const std::string& t) { return t.size() > 3; })
          ? "rotate by 30 right"
          : "",
      tics(a.ytics), Num(xmax), Num(static_cast<double>(a.ytics.size()) - 0.5));
  const bool diverging = a.lo < 0 && a.hi > 0;
  double cb_lo = 0, cb_hi = 1;
  if (diverging) {
    const double m = std::max(std::abs(a.lo), std::abs(a.hi));
    cb_lo = -m, cb_hi = m;
    body += "  set palette defined (-1 '#b2182b', 0 '#f7f7f7', 1 '#2166ac')\n";
  } else if (a.hi <= 0 && a.lo < 0) {
    cb_lo = a.lo, cb_hi = 0;
    body += "  set palette defined (0 '#b30000', 1 '#fc8d59', 2 '#fdd49e', 3 '#ffffff')\n";
  } else {
    cb_hi = a.hi > 0 ? a.hi : 1;
    body += "  set palette defined (0 '#ffffff', 1 '#fdd49e', 2 '#fc8d59', 3 '#b30000')\n";
  }
  body += fmt::format("  set cbrange [{}:{}]\n", Num(cb_lo), Num(cb_hi));
  for (size_t r : a.dividers) {
    body += fmt::format("  set arrow from -0.5,{0} to {1},{0} nohead front lw 2 lc rgb '#222222'\n",
                        Num(static_cast<double>(r) - 0.5), Num(xmax));
  }
  // Boxes rather than `with image`: gnuplot draws no image for a grid one cell wide (a single
  // config), and boxes of half-width 0.5 tile the same cells.
  body += fmt::format(
      "  plot '{}.dat' using 1:2:(0.5):(0.5):3 with boxxyerror fs solid 1.0 noborder lc palette "
      "notitle",
      a.id);
  if (a.labels) {
    // Dark cells get white text: beyond 60% of the way from the palette's white end.
    const int d = LabelDigits(a.lo, a.hi);
    const std::string value =
        fmt::format("sprintf('%.{}f', abs($3) < {} ? 0.0 : $3)", d, Num(0.5 * std::pow(10.0, -d)));
    const std::string dark = diverging   ? fmt::format("abs($3) > {}", Num(0.6 * cb_hi))
                             : cb_hi > 0 ? fmt::format("$3 > {}", Num(0.6 * cb_hi))
                                         : fmt::format("$3 < {}", Num(0.6 * cb_lo));
    body += fmt::format(
        ", \\\n       '{0}.dat' using 1:2:($3 == $3 ? ({1} ? '' : {2}) : 'n/a') "
        "with labels font ',9' tc rgb '#000000' notitle"
        ", \\\n       '{0}.dat' using 1:2:($3 == $3 && {1} ? {2} : '') "
        "with labels font ',9' tc rgb '#ffffff' notitle",
        a.id, dark, value);
  }
  return body + "\n";
}

}  // namespace seedgrid::report

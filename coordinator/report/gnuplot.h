// gnuplot script pieces shared by the kinds' figures (figures.cpp) and the spec's plot figures
// (plots.cpp): number and string quoting, the colour and dash cycle, the PNG + SVG wrapper, and
// the heatmap body.
#pragma once

#include <cstddef>
#include <string>
#include <string_view>
#include <vector>

namespace seedgrid::report {

std::string Num(double v);            // 6 significant digits; "NaN" for non-finite
std::string Q(std::string_view s);    // a gnuplot single-quoted string
std::string FileStem(std::string s);  // [A-Za-z0-9._-], others '_'
// Line i's colour and dash type: ten colours (Tableau 10) and, independently, five dash types,
// so that configs 1 and 6 differ in both and a black-and-white print still tells them apart.
std::string Color(size_t i);
int Dash(size_t i);
int PointType(size_t i);

// A script that writes <id>.png and <id>.svg from one plotting body (pngcairo when available).
std::string Script(const std::string& id, const std::string& title, int width, int height,
                   const std::string& body);

struct HeatmapAxes {
  std::string id, title, xlabel, ylabel, cblabel;
  std::vector<std::string> xtics, ytics;
  double lo = 0, hi = 0;  // the finite values' range
  bool labels = true;     // values in the cells
  // Lines between row groups, drawn above row index `r` for each r here (row 0 is the top).
  std::vector<size_t> dividers;
};

// Digits after the point that show values up to max(|lo|, |hi|) with three significant digits
// (1.03 → 2, 0.004 → 5, 150 → 0).
int LabelDigits(double lo, double hi);

// The body of a heatmap of <id>.dat (rows "x y value"). Colour scale: diverging and centred on 0
// when the values have both signs, otherwise sequential from 0 (to hi, or from lo up to 0);
// never clipped: the range covers every value. Cell labels carry LabelDigits digits and show
// no "-0.00".
std::string HeatmapBody(const HeatmapAxes& a);

}  // namespace seedgrid::report

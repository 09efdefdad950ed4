// The spec's plot figures (`report: figures:` entries of kReportPlotTypes, core/spec.h), drawn
// from a stage's registry metrics through the same groups and statistics as the tables
// (BuildTable), so a point, bar or cell equals its table row:
//   line     mean of each y metric against a numeric axis x (or against the '*' of one y
//            pattern: "retained.layer.*.keep" → x = the layer), one line per config, band =
//            the uncertainty (95% t-interval or ±1 std);
//   bars     grouped bars of the mean with error bars; clusters are the values of x (or the y
//            metrics), one bar colour per config;
//   scatter  one point per seed (x metric, y metric), one colour per config, and each config's
//            mean with error bars in both directions;
//   heatmap  mean of each y metric (rows) per value of x (columns); n and the interval of each
//            cell in figures/<id>.cells.csv and on hover in report.html.
// Kind-free: nothing here names a kind or a metric.
#pragma once

#include <map>
#include <string>
#include <utility>
#include <vector>

#include "coordinator/report/figures.h"
#include "coordinator/report/tables.h"

namespace seedgrid::report {

// Writes each plot's .dat, .gp (and a heatmap's .cells.csv) under report_dir/figures; the
// figures are not rendered. A plot that cannot be drawn (no stage metric matches y, x is not
// numeric) is left out with a warning.
std::vector<Figure> MakePlots(const SweepData& data, const std::vector<ReportFigureSpec>& plots,
                              const std::string& report_dir, Uncertainty uncertainty,
                              std::vector<std::string>& warnings);

// A heatmap of a table: rows = its metrics (labelled `row_labels`), columns = its groups; the
// colour is the mean; `dividers` are row indices above which a line separates row groups.
struct HeatmapRequest {
  std::string id, title, caption, xlabel, ylabel, zlabel;
  const StageTable* table = nullptr;
  std::vector<std::string> row_labels;
  std::vector<size_t> dividers;
};
Figure HeatmapFigure(const HeatmapRequest& r, const std::string& report_dir);

// Grouped bars with error bars (the uncertainty's): clusters along x, one bar colour per entry
// of `bars`; a (cluster, bar) without a cell is left empty.
struct BarsRequest {
  std::string id, title, caption, xlabel, ylabel;
  std::vector<std::string> clusters, bars;  // in order of first Add
  std::map<std::pair<std::string, std::string>, Summary> cells;
  void Add(const std::string& cluster, const std::string& bar, const Summary& s);
};
Figure BarsFigure(const BarsRequest& r, Uncertainty u, const std::string& report_dir);

// Metric names of `available` matching a pattern with at most one '*'; with `star`, what the
// '*' matched, parallel to the result.
std::vector<std::string> MatchPattern(const std::string& pattern,
                                      const std::vector<std::string>& available,
                                      std::vector<std::string>* star = nullptr);

}  // namespace seedgrid::report

// Figures of a report, drawn by gnuplot from the shards' HDF5 arrays and the registry metrics.
//
// Each figure is three files under <report>/figures/: <id>.dat (the plotted numbers, already
// aggregated over seeds), <id>.gp (a gnuplot script that writes <id>.png and <id>.svg; it runs
// again by hand with `cd figures && gnuplot <id>.gp`) and the images. gnuplot runs as a child
// process per figure, several at once; when it is not on PATH the data and scripts are still
// written and the report says how to draw them.
//
// The figures come from the kinds (core/kinds.h: KindConfig::report.figures): a figure type is
// what a kind names it, drawn by one of the generic renderers (FigureRenderer) from the datasets
// and metrics the kind's figure names, with the kind's texts. Nothing here knows a kind; a
// `report: figures:` list asks for figure types by name, per stage or for every stage whose kind
// offers the type.
#pragma once

#include <filesystem>
#include <string>
#include <string_view>
#include <vector>

#include "coordinator/report/tables.h"
#include "core/spec.h"

namespace seedgrid::report {

struct FigureRequest {
  std::string type;
  std::string stage;   // empty: every stage whose kind offers the type
  bool quiet = false;  // no warning when there is nothing to draw (the defaults)
};

// Each stage's kind's default figures (KindFigure::by_default), in stage order.
std::vector<FigureRequest> DefaultFigures(const SweepData& data);

// What the bands and error bars of every figure show (the spec's `report: uncertainty:`).
enum class Uncertainty { kCi95, kStd };
Uncertainty ParseUncertainty(std::string_view name);  // "ci95" (default) or "std"
std::string_view UncertaintyText(Uncertainty u);      // "95% CI (Student t)", "±1 std (ddof = 1)"

struct Figure {
  std::string id;  // file stem under figures/
  std::string title;
  std::string caption;  // what is drawn and over how many seeds
  std::string script;   // paths relative to the report directory
  std::string data;
  std::string png;  // empty when not rendered
  std::string svg;
  // Heatmaps: each cell's mean, n and interval, as CSV (figures/<id>.cells.csv) and as an HTML
  // table whose cells show them on hover; empty for other figures.
  std::string cells_csv;
  std::string cells_html;
};

struct FigureOptions {
  Uncertainty uncertainty = Uncertainty::kCi95;
  std::vector<ReportFigureSpec> plots;  // the spec's plot figures (plots.h)
};

// Writes data and scripts under report_dir/figures and renders them with `gnuplot` (an
// executable path; empty: render nothing). Problems (unreadable shard files, absent datasets,
// gnuplot errors) are appended to `warnings`; a figure that has no data is left out.
std::vector<Figure> MakeFigures(const SweepData& data, const std::vector<FigureRequest>& requests,
                                const std::string& report_dir, const std::string& gnuplot,
                                std::vector<std::string>& warnings,
                                const FigureOptions& options = {});

// Runs `gnuplot` on each figure's script in `dir` (several at once); sets png/svg of those drawn
// and appends a warning for each failure.
void RenderFigures(std::vector<Figure>& figures, const std::filesystem::path& dir,
                   const std::string& gnuplot, std::vector<std::string>& warnings);

// The first executable `program` in $PATH, or "" when there is none.
std::string FindOnPath(const std::string& program);

}  // namespace seedgrid::report

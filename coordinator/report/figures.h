// Figures of a report, drawn by gnuplot from the shards' HDF5 arrays and the registry metrics.
//
// Each figure is three files under <report>/figures/: <id>.dat (the plotted numbers, already
// aggregated over seeds), <id>.gp (a gnuplot script that writes <id>.png and <id>.svg; it runs
// again by hand with `cd figures && gnuplot <id>.gp`) and the images. gnuplot runs as a child
// process per figure, several at once; when it is not on PATH the data and scripts are still
// written and the report says how to draw them.
//
// Figure types and the data they read (by stage kind; a `report: figures:` list may ask for
// them by name and stage):
//   steering_curve   lora_steer  eval/alphas [A] f64, eval/logratio [A,R]: row mean per α,
//                                then mean ± std over the seeds of each config (a line each)
//   loss_curves      pretrain    train/loss; lora_steer: train/loss_pos, train/loss_neg (panels)
//   ablation_heatmap ablation    registry metrics retained.<variant>: variant × config, seed mean
//   head_scores      ablation    heads/<score> [L,H] f64: layer × head heatmap per score
//   firing_density   harvest     firing_density [C] f64 of the reduce shard: log10 histogram
//   metric_curves    command     curves/<name>/{step,value} f64 (metrics.jsonl with steps): a
//                                panel per name, mean ± std over the seeds of each config
#pragma once

#include <string>
#include <vector>

#include "coordinator/report/tables.h"

namespace seedgrid::report {

// The accepted figure types, in display order.
const std::vector<std::string>& FigureTypes();

struct FigureRequest {
  std::string type;
  std::string stage;   // empty: every stage where the type finds its data
  bool quiet = false;  // no warning when there is nothing to draw (the defaults)
};

// Good defaults by the kinds present in the sweep (a chaos-only sweep gets none).
std::vector<FigureRequest> DefaultFigures(const SweepData& data);

struct Figure {
  std::string id;  // file stem under figures/
  std::string title;
  std::string caption;  // what is drawn and over how many seeds
  std::string script;   // paths relative to the report directory
  std::string data;
  std::string png;  // empty when not rendered
  std::string svg;
};

// Writes data and scripts under report_dir/figures and renders them with `gnuplot` (an
// executable path; empty: render nothing). Problems (unreadable shard files, absent datasets,
// gnuplot errors) are appended to `warnings`; a figure that has no data is left out.
std::vector<Figure> MakeFigures(const SweepData& data, const std::vector<FigureRequest>& requests,
                                const std::string& report_dir, const std::string& gnuplot,
                                std::vector<std::string>& warnings);

// The first executable `program` in $PATH, or "" when there is none.
std::string FindOnPath(const std::string& program);

}  // namespace seedgrid::report

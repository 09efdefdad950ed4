// `seedgrid report SWEEP`: a sweep's registry rows and shard files turned into seed-aggregated
// tables (Markdown, LaTeX, CSV, HTML) and gnuplot figures, indexed by report.md.
//
// Layout of the report directory (default <out>/<sweep>/report, <out> being where the registry
// lives unless the sweep's out dir is absolute):
//   report.md              index: status per stage, every table, every figure, warnings
//   report.html            the same as one self-contained page (inline CSS, PNGs embedded)
//   tables/<id>.{md,tex,csv}  one table per stage (or per `report: tables:` entry)
//   tables/ranking-<stage>-<metric>.{md,csv}, tables/paired.{md,csv}  multi-seed analysis
//   figures/<id>.{png,svg,dat,gp}
//
// What goes in, in order of precedence:
//   1. --metrics / --group-by (with --stage: that stage; without: every stage that has them);
//   2. the spec's `report:` section (ReportSpec in core/spec.h; docs/spec.md), checked with the
//      spec at launch and read back here from the sweep's stored spec text:
//        report:
//          tables:  [{stage: steer, metrics: [steer_delta, "retained.*"], group_by: [adapter]}]
//          figures: [steering_curve, {type: loss_curves, stage: base}]
//          formats: [md, csv]
//          uncertainty: ci95          # figures' bands and error bars (or std)
//          ranking: {metric: steer_delta}
//          paired: [{a: {adapter: lora}, b: {adapter: ia3}, metric: steer_delta}]
//      Figure types are checked here, where they are defined (figures.h).
//   3. defaults: a table per stage with the kind's metrics (tables.h), figures by kind (figures.h).
//
// It reads the registry read-only, so it works while a sweep runs and after failures; a group
// with a missing seed is flagged, never dropped. Without gnuplot on PATH it warns, still writes
// the tables and the figures' data and scripts, and succeeds.
#pragma once

#include <string>
#include <vector>

#include "coordinator/report/analysis.h"
#include "coordinator/report/figures.h"
#include "coordinator/report/tables.h"

namespace seedgrid {

struct ReportOptions {
  std::string registry_path;  // default runs/registry.sqlite
  std::string sweep;
  // More sweeps: a side-by-side comparison of `sweep` and these (WriteCompare) instead. With
  // `sweep` empty, the first of these is the sweep (the CLI puts every positional name here).
  std::vector<std::string> compare;
  std::string stage;                 // empty: every stage
  std::string out_dir;               // default <out>/<sweep>/report
  std::vector<std::string> formats;  // md, tex, csv, html; empty: the spec's, else all
  std::vector<std::string> group_by;
  std::vector<std::string> metrics;  // names, or prefixes ending in '*'
  bool figures = true;
  // The kinds whose report defaults apply (core/kinds.h); null: AllKinds().
  const KindRegistry* kinds = nullptr;
};

// What a report wrote (paths absolute), for tests and the benchmark.
struct ReportResult {
  std::string dir;
  std::string index_md;
  std::string html;  // empty when html is not among the formats
  std::vector<report::StageTable> tables;
  std::vector<report::Figure> figures;
  std::vector<report::Ranking> rankings;  // the spec's report: ranking entries
  std::vector<report::Paired> paired;     // the spec's report: paired entries
  std::vector<std::string> warnings;
};

// Writes the report. Throws UsageError listing every problem (unknown sweep, stage, metric,
// group-by key, format, bad `report:` section) before writing anything.
ReportResult WriteReport(const ReportOptions& opts);

// `seedgrid report A B ...`: the stages the sweeps share (or --stage), each as one table with a
// `sweep` column, grouped by the axes every sweep has (or --group-by), over the metrics every
// sweep recorded (or --metrics), and one bar figure per metric (a cluster per config, a bar per
// sweep, 95% CI). Written to <registry dir>/compare-A-B/report unless --out. WriteReport calls it
// when opts.compare is not empty.
ReportResult WriteCompare(const ReportOptions& opts);

// WriteReport, then prints the warnings (stderr) and where the report is (stdout). Returns 0;
// usage errors are thrown as UsageError (exit code 2 in the CLI).
int RunReport(const ReportOptions& opts);

}  // namespace seedgrid

// The spec's `report:` section (internal to core/spec/): parsed into ReportSpec by ParseSpec at
// plan time and by ParseReportSpec when `seedgrid report` reads a sweep's stored spec back.
#pragma once

#include <string>
#include <vector>

#include "core/kinds.h"
#include "core/spec.h"
#include "core/spec/yaml_tree.h"

namespace seedgrid::spec_detail {

// A stage name or figure type the section refers to, checked once the stages are known.
struct ReportStageRef {
  std::string what;         // "report: tables[0].stage", "report: figures[1]"
  std::string stage;        // empty: a figure for every stage
  std::string figure_type;  // empty: a table's stage
  Loc loc;                  // of the stage name, or of the figure type
  // Axis or param keys the entry groups or selects by (plot figures, ranking, paired), checked
  // against the stage's axes (its own and those of the stages it needs) and params.
  std::vector<std::pair<std::string, Loc>> keys;
};

// Parses the `report:` node into out; problems go to p. The stage names it names are appended
// to refs.
void ParseReportSection(const Node& n, ReportSpec& out, std::vector<ReportStageRef>& refs,
                        Problems& p);

// Reports every ref that names no stage of spec (skipped when there is no stage or a stage has
// no valid name: that problem is reported already, a second one here would only repeat it), and
// every figure type no kind of `kinds` offers (KindRegistry::FigureTypes()) and that is not a
// plot type (kReportPlotTypes), and every key that is neither an axis nor a param of its stage.
void CheckReportStages(const std::vector<ReportStageRef>& refs, const SweepSpec& spec,
                       const KindRegistry& kinds, Problems& p);

}  // namespace seedgrid::spec_detail

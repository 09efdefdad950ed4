// The spec's `report:` section (internal to core/spec/): parsed into ReportSpec by ParseSpec at
// plan time and by ParseReportSpec when `seedgrid report` reads a sweep's stored spec back.
#pragma once

#include <string>
#include <vector>

#include "core/spec.h"
#include "core/spec/yaml_tree.h"

namespace seedgrid::spec_detail {

// A stage name the section refers to, checked once the stages are known.
struct ReportStageRef {
  std::string what;  // "report: tables[0].stage"
  std::string stage;
  Loc loc;
};

// Parses the `report:` node into out; problems go to p. The stage names it names are appended
// to refs.
void ParseReportSection(const Node& n, ReportSpec& out, std::vector<ReportStageRef>& refs,
                        Problems& p);

// Reports every ref that names no stage of spec. Skipped when there is no stage or a stage has
// no valid name (that problem is reported already, a second one here would only repeat it).
void CheckReportStages(const std::vector<ReportStageRef>& refs, const SweepSpec& spec, Problems& p);

}  // namespace seedgrid::spec_detail

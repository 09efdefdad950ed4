// Where a command shard's directories live, beside its HDF5 file runs/<sweep>/<stage>/<id>.h5
// (the stem is that path without ".h5"):
//
//   <id>.files/        the published scratch dir of the attempt that succeeded
//   <id>.checkpoint/   SEEDGRID_CHECKPOINT_DIR: kept across the attempts of the shard (a retry
//                      or a preempted shard resumes from it); removed once the shard is done
//   <id>.scratch-<host>-<pid>-a<n>/  SEEDGRID_OUT of attempt n: private, fresh per attempt;
//                      renamed to <id>.files/ when the attempt succeeds, removed when it fails
#pragma once

#include <string>

namespace seedgrid::command {

// The shard file's group of step-wise metrics (metrics.jsonl lines with a step):
// curves/<name>/step and curves/<name>/value, f64 [N]. The runner writes it, the report's
// metric_curves figure reads it.
inline constexpr const char* kCurvesGroup = "curves";

std::string CheckpointDirFor(const std::string& stem);
std::string ScratchDirFor(const std::string& stem, int attempt);

}  // namespace seedgrid::command

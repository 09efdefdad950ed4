// The results contract of a command shard (docs/command.md, "Results"): what the command left
// in its scratch dir (SEEDGRID_OUT) becomes the shard's results when it exits 0.
//
//   metrics.json    {"name": number, ...}               -> registry metrics (final values)
//   metrics.jsonl   {"name": n, "value": v, "step": s}   -> a metric's last value; with a step,
//                   one line per line                       also a curve in the shard's HDF5:
//                                                           curves/<name>/step, curves/<name>/value
//   *.h5 (top level) its root objects are copied into the shard's HDF5 file (so results.h5,
//                   `show` and `report` read them as any kind's arrays); the file is then dropped
//   anything else   published as <id>.files/ (the scratch dir, renamed; the metrics files too)
//
// metrics.json wins over metrics.jsonl for a name in both. A malformed file fails the attempt
// with what and where (file:line), as a spec error would: results are never silently lost.
#pragma once

#include <string>
#include <utility>
#include <vector>

#include "core/types.h"

namespace seedgrid {
class ShardContext;
}

namespace seedgrid::command {

struct Curve {
  std::string name;
  std::vector<double> steps, values;
};

struct ParsedMetrics {
  std::vector<std::pair<std::string, double>> finals;  // in first-seen order
  std::vector<Curve> curves;                           // step-wise names, steps as logged
};

// Reads metrics.json / metrics.jsonl of `dir` (either may be missing). Throws
// std::runtime_error naming the file and line of a malformed entry.
ParsedMetrics ReadMetrics(const std::string& dir);

// Applies the whole contract: metrics and curves to ctx, *.h5 copied into ctx.out(), then the
// rest of `scratch` renamed to `files_dir` (an empty scratch is removed instead).
void PublishResults(const std::string& scratch, const std::string& files_dir, ShardContext& ctx);

}  // namespace seedgrid::command

// From a plan and its shards' states to the scheduler's tasks: a pure function (no registry,
// no files), so what a launch or a rerun will run is unit-tested (tests/coordinator/tasks_test).
//
// Per shard, in plan order:
//   * the dispatch message: the shard's spec, its out path (LaunchStates::out_paths), and one
//     input per needed shard carrying that shard's out path;
//   * needs become task indices (plan positions);
//   * status and charged attempts as recorded; attempt numbers continue after the highest one
//     recorded (preempted attempts and damaged-file rows included);
//   * a done shard whose file was lost or damaged (LaunchStates::recompute) runs again with a
//     fresh attempt budget;
//   * a rerun re-queues the failed shards (only those whose id starts with one of the --shards
//     prefixes, when some are given) with a fresh attempt budget.
#pragma once

#include <string>
#include <vector>

#include "coordinator/launch.h"
#include "coordinator/scheduler.h"
#include "core/spec.h"

namespace seedgrid {

// `seedgrid rerun`: which failed shards go back to pending.
struct RerunOptions {
  bool enabled = false;
  std::vector<std::string> shard_prefixes;  // --shards (empty: every failed shard)
};

std::vector<SchedTask> BuildTasks(const Plan& plan, const LaunchStates& states,
                                  const RerunOptions& rerun);

}  // namespace seedgrid

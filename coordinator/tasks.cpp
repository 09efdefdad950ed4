#include "coordinator/tasks.h"

#include <algorithm>
#include <unordered_map>

#include "core/protocol.h"

namespace seedgrid {
namespace {

bool RerunSelects(const RerunOptions& rerun, const ShardId& id) {
  if (rerun.shard_prefixes.empty()) return true;
  for (const auto& p : rerun.shard_prefixes) {
    if (id.hex.rfind(p, 0) == 0) return true;
  }
  return false;
}

RunShard DispatchMessage(const Plan& plan, size_t i, const std::string& out_path) {
  const ShardPlan& s = plan.shards[i];
  RunShard m;
  m.key = s.key;
  m.sweep = plan.spec.name;
  m.out_path = out_path;
  m.artifact_dir = ArtifactDirFor(out_path);
  m.timeout_s = s.resources.timeout_s;
  m.grace_s = s.resources.grace_s;
  m.memory_mb = s.resources.memory_mb;
  m.isolation = s.resources.isolation;
  return m;
}

}  // namespace

std::vector<SchedTask> BuildTasks(const Plan& plan, const LaunchStates& states,
                                  const RerunOptions& rerun) {
  const size_t n = plan.shards.size();
  const std::unordered_map<ShardId, int> index = PlanIndex(plan);
  std::vector<SchedTask> tasks(n);
  for (size_t i = 0; i < n; ++i) {
    const ShardPlan& s = plan.shards[i];
    const ShardState& row = states.states[i];
    SchedTask& t = tasks[i];
    t.msg = DispatchMessage(plan, i, states.out_paths[i]);
    for (const auto& need : s.key.needs()) {
      const int j = index.at(need);
      t.needs.push_back(j);
      const std::string& path = states.out_paths[j];
      t.msg.inputs.push_back({plan.shards[j].key, path, ArtifactDirFor(path)});
    }
    t.max_attempts = s.resources.max_attempts;
    t.ranks = s.resources.ranks;
    t.status = row.status;
    t.attempts = row.attempts;
    // Attempt numbers continue after the ones already recorded (preempted ones included).
    t.attempt_numbers = std::max(row.attempts, states.attempt_numbers[i]);
    // A done shard whose file was lost or damaged is computed again with a fresh budget.
    if (states.recompute[i]) t.budget_base = t.attempts;
    if (rerun.enabled && row.status == ShardStatus::kFailed && RerunSelects(rerun, s.key.id())) {
      t.status = ShardStatus::kPending;
      t.budget_base = t.attempts;  // a rerun grants a fresh attempt budget
    }
  }
  return tasks;
}

}  // namespace seedgrid

// Rank 0's only registry writer: the scheduler's events go into the registry in batched
// transactions (a crash loses at most the open batch) without holding up dispatch.
//
// The coordinator's loop calls Step() when no message is waiting, so SQLite fills the time it
// would otherwise spend polling for the next reply, and Commit() every 50 ms. A `running` state
// is written only at commit time, for shards still running then: most short shards are
// dispatched and finished within one batch, and cost two writes, their attempt row and their
// final state. Nothing is allocated per event once the scratch rows have grown: the loop's
// cost per shard is the SQLite statements and nothing else.
//
// Live curves (LivePointsEvent: at most one a second per running shard, core/protocol.h) are
// written at commit time, in the same batch; the points of a shard that becomes done are
// dropped then (its final curves are in its file), which costs a statement only for shards
// that sent points.
#pragma once

#include <cstddef>
#include <cstdint>
#include <optional>
#include <string>
#include <unordered_map>
#include <vector>

#include "coordinator/scheduler.h"
#include "core/registry.h"

namespace seedgrid {

class RegistryWriter {
 public:
  // `tasks`: the scheduler's (read when writing; outlives the writer). `seqs`: each task's
  // shards.seq (Registry::SetShardStateAt). `reg_dir`: artifacts are stored relative to it.
  RegistryWriter(Registry& reg, const std::vector<SchedTask>& tasks, std::vector<int64_t> seqs,
                 std::string reg_dir, const std::string& job_id);
  ~RegistryWriter() = default;  // an uncommitted batch rolls back (the crash case)
  RegistryWriter(const RegistryWriter&) = delete;
  RegistryWriter& operator=(const RegistryWriter&) = delete;

  // Takes a round's events (`events` keeps its capacity): dispatches and joins are noted at
  // once, finished attempts queue for Step().
  void Add(std::vector<SchedEvent>& events);
  // Events not yet committed; finished attempts whose state is not written yet.
  size_t pending() const {
    return finished_.size() + dispatched_.size() + live_.size() + live_done_.size();
  }
  size_t backlog() const { return finished_.size() - states_; }

  // One statement inside the open transaction, so a round stays short: the attempt rows of
  // the next kBulkRows finished attempts (of one when fewer wait), then their states.
  // False when there is nothing to do.
  bool Step();
  // Writes what is left and commits the batch (with the `running` states, see above).
  void Commit();

 private:
  void FillAttempt(const FinishedEvent& f, AttemptRow& a);
  void FillState(const FinishedEvent& f, ShardState& s);
  void WriteLive();

  static inline const std::string kNone;
  Registry& reg_;
  const std::vector<SchedTask>& tasks_;
  std::vector<int64_t> seqs_;
  std::vector<int> running_at_;  // attempt dispatched in this batch and not finished yet (0: none)
  std::vector<int> dispatched_;  // tasks dispatched in this batch
  std::string reg_dir_;
  std::vector<AttemptRow> rows_;         // scratch for AddAttempts; job_id set once
  std::vector<ShardState> states_rows_;  // scratch for SetShardStatesAt
  std::vector<FinishedEvent> finished_;  // in this batch, in order
  size_t attempts_ = 0;                  // finished_[0, attempts_) have their attempt row written
  size_t states_ = 0;  // finished_[0, states_) have their state written (states_ <= attempts_)
  std::vector<LivePointsEvent> live_;  // in this batch, in order
  std::vector<int> live_done_;         // tasks with live points that became done in this batch
  std::vector<bool> has_live_;         // per task: live points were recorded
  std::optional<Registry::Batch> batch_;
  std::unordered_map<int, Hello> hosts_;
};

}  // namespace seedgrid

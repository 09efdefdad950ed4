#include "coordinator/registry_writer.h"

#include <span>
#include <unordered_set>
#include <utility>

#include "coordinator/launch.h"
#include "core/shard_check.h"
#include "core/sysutil.h"

namespace seedgrid {

RegistryWriter::RegistryWriter(Registry& reg, const std::vector<SchedTask>& tasks,
                               std::vector<int64_t> seqs, std::string reg_dir,
                               const std::string& job_id)
    : reg_(reg),
      tasks_(tasks),
      seqs_(std::move(seqs)),
      running_at_(tasks.size(), 0),
      reg_dir_(std::move(reg_dir)),
      rows_(Registry::kBulkRows),
      states_rows_(Registry::kBulkRows),
      has_live_(tasks.size(), false) {
  for (auto& r : rows_) r.job_id = job_id;
  // Shards with live points from an earlier launch (a failed attempt's): dropped when done too.
  const std::vector<int64_t> live = reg_.LiveSeqs();
  if (!live.empty()) {
    const std::unordered_set<int64_t> with_points(live.begin(), live.end());
    for (size_t t = 0; t < seqs_.size(); ++t) has_live_[t] = with_points.count(seqs_[t]) > 0;
  }
}

void RegistryWriter::Add(std::vector<SchedEvent>& events) {
  for (auto& e : events) {
    if (auto* f = std::get_if<FinishedEvent>(&e)) {
      if (running_at_[f->task] == f->done.attempt) running_at_[f->task] = 0;
      if (has_live_[f->task] && f->new_status == ShardStatus::kDone) {
        live_done_.push_back(f->task);
        has_live_[f->task] = false;
      }
      finished_.push_back(std::move(*f));
    } else if (auto* d = std::get_if<DispatchedEvent>(&e)) {
      running_at_[d->task] = d->attempt;
      dispatched_.push_back(d->task);
    } else if (auto* w = std::get_if<WorkerJoinedEvent>(&e)) {
      hosts_[w->worker.rank] = w->hello;
    } else if (auto* l = std::get_if<LivePointsEvent>(&e)) {
      has_live_[l->task] = true;
      live_.push_back(std::move(*l));
    }
  }
}

bool RegistryWriter::Step() {
  if (states_ == finished_.size()) return false;
  if (!batch_) batch_.emplace(reg_);
  if (states_ < attempts_) {
    const size_t n = attempts_ - states_;
    for (size_t i = 0; i < n; ++i) FillState(finished_[states_ + i], states_rows_[i]);
    reg_.SetShardStatesAt(std::span(states_rows_).first(n));
    for (size_t i = 0; i < n; ++i) {
      const FinishedEvent& f = finished_[states_ + i];
      if (!f.done.metrics.empty()) reg_.SetMetrics(tasks_[f.task].msg.key.id(), f.done.metrics);
    }
    states_ += n;
  } else {
    const size_t n = finished_.size() - attempts_ >= rows_.size() ? rows_.size() : 1;
    for (size_t i = 0; i < n; ++i) FillAttempt(finished_[attempts_ + i], rows_[i]);
    reg_.AddAttempts(std::span(rows_).first(n));
    attempts_ += n;
  }
  return true;
}

void RegistryWriter::Commit() {
  while (Step()) {
  }
  // Dispatches alone open a batch too: a sweep of long shards has nothing finished for a while,
  // and its running shards must show as running, not pending, meanwhile.
  if (!batch_ && dispatched_.empty() && live_.empty() && live_done_.empty()) return;
  if (!batch_) batch_.emplace(reg_);
  WriteLive();
  const double now = dispatched_.empty() ? 0 : UnixNow();
  for (int task : dispatched_) {
    // Still running at commit time (not finished in this batch): say so.
    if (running_at_[task] != 0) {
      reg_.SetShardStateAt(seqs_[task], ShardStatus::kRunning, tasks_[task].attempts, "", "", now);
      running_at_[task] = 0;
    }
  }
  dispatched_.clear();
  batch_->Commit();
  batch_.reset();
  finished_.clear();
  attempts_ = states_ = 0;
}

// The batch's live points, then the drop of those of shards that became done (after: a shard's
// last points and its end may share a batch).
void RegistryWriter::WriteLive() {
  for (const LivePointsEvent& l : live_) {
    for (const LiveCurve& c : l.points.curves) {
      reg_.AddLivePoints(seqs_[l.task], l.points.attempt, c.name, c.steps, c.values, l.time);
    }
  }
  live_.clear();
  for (int task : live_done_) reg_.DropLivePoints(seqs_[task]);
  live_done_.clear();
}

// The rows' strings keep their capacity from one attempt to the next: no allocation.
void RegistryWriter::FillAttempt(const FinishedEvent& f, AttemptRow& a) {
  const ShardDone& d = f.done;
  a.shard.hex = tasks_[f.task].msg.key.id().hex;
  a.n = d.attempt;
  a.rank = f.worker.rank;
  auto h = hosts_.find(f.worker.rank);
  a.host = h != hosts_.end() ? h->second.host : kNone;
  a.gpu = h != hosts_.end() ? h->second.gpu : kNone;
  a.start = d.start;
  a.end = d.end;
  a.outcome = d.outcome;
  a.signal = d.signal;
  a.exit_code = d.exit_code;
  a.error = d.error;
  a.peak_rss_kb = d.peak_rss_kb;
  a.shard_seq = seqs_[f.task];
}

void RegistryWriter::FillState(const FinishedEvent& f, ShardState& s) {
  const ShardDone& d = f.done;
  const bool ok = d.outcome == Outcome::kOk;
  s.seq = seqs_[f.task];
  s.status = f.new_status;
  s.attempts = f.attempts;
  s.stamp = 0;
  if (ok && !d.artifact.empty()) {
    s.artifact = RelativeTo(d.artifact, reg_dir_);
    // The file as published: the next launch opens it only if this stamp changed.
    if (auto stamp = FileStampOf(d.artifact)) s.stamp = *stamp;
  } else {
    s.artifact.clear();
  }
  s.error = ok ? kNone : d.error;
  s.updated = f.time;
}

}  // namespace seedgrid

#include "coordinator/scheduler.h"

#include <algorithm>

#include <fmt/format.h>

namespace seedgrid {

Scheduler::Scheduler(std::vector<SchedTask> tasks, SchedulerOptions options)
    : tasks_(std::move(tasks)), options_(options) {
  const int n = static_cast<int>(tasks_.size());
  dependents_.resize(n);
  unmet_.assign(n, 0);
  blocked_.assign(n, false);
  queued_.assign(n, false);
  counts_.total = n;
  running_.resize(n);
  for (int i = 0; i < n; ++i) {
    for (int need : tasks_[i].needs) dependents_[need].push_back(i);
    ShardStatus s = tasks_[i].status;
    if (s == ShardStatus::kRunning || s == ShardStatus::kPreempted) {
      // Orphans of a dead launch and preempted shards simply run again (never charged).
      tasks_[i].status = s = ShardStatus::kPending;
    }
    Count(s)++;
  }
  for (int i = 0; i < n; ++i) {
    for (int need : tasks_[i].needs) {
      if (tasks_[need].status != ShardStatus::kDone) ++unmet_[i];
    }
  }
  for (int i = 0; i < n; ++i) {
    if (tasks_[i].status == ShardStatus::kFailed) Block(i);
  }
  for (int i = 0; i < n; ++i) {
    if (tasks_[i].status == ShardStatus::kPending && unmet_[i] == 0 && !blocked_[i]) MakeReady(i);
  }
}

int64_t& Scheduler::Count(ShardStatus s) {
  switch (s) {
    case ShardStatus::kPending: return counts_.pending;
    case ShardStatus::kRunning: return counts_.running;
    case ShardStatus::kDone: return counts_.done;
    case ShardStatus::kFailed: return counts_.failed;
    case ShardStatus::kPreempted: break;
  }
  return counts_.preempted;
}

void Scheduler::SetStatus(int task, ShardStatus s) {
  Count(tasks_[task].status) -= 1;
  Count(s) += 1;
  tasks_[task].status = s;
}

void Scheduler::MakeReady(int task) {
  if (queued_[task]) return;
  if (!retired_.empty() && tasks_[task].ranks > LiveWorkers()) {
    Strand(task);
    return;
  }
  queued_[task] = true;
  ++ready_count_;
  ready_.push_back(task);
}

void Scheduler::Unqueue(int task) {
  if (!queued_[task]) return;
  queued_[task] = false;
  --ready_count_;
}

void Scheduler::Block(int task) {
  // Everything downstream of a failed shard can never run in this launch.
  std::vector<int> stack(dependents_[task].begin(), dependents_[task].end());
  while (!stack.empty()) {
    int t = stack.back();
    stack.pop_back();
    if (blocked_[t] || tasks_[t].status == ShardStatus::kDone) continue;
    blocked_[t] = true;
    Unqueue(t);
    if (tasks_[t].status == ShardStatus::kPending) {
      counts_.pending -= 1;
      counts_.blocked += 1;
    }
    for (int d : dependents_[t]) stack.push_back(d);
  }
}

void Scheduler::Strand(int task) {
  // Needs more ranks than retirements left: it cannot run in this launch (nor what needs it).
  if (blocked_[task]) return;
  blocked_[task] = true;
  Unqueue(task);
  if (tasks_[task].status == ShardStatus::kPending) {
    counts_.pending -= 1;
    counts_.blocked += 1;
    counts_.stranded += 1;
  }
  Block(task);
}

int Scheduler::UnsatisfiableRanks(int n_workers) const {
  int worst = 0;
  for (const auto& t : tasks_) {
    if (t.status != ShardStatus::kDone && t.ranks > n_workers) worst = std::max(worst, t.ranks);
  }
  return worst;
}

bool Scheduler::Finished() const {
  if (preempted_) return true;
  if (running_count_ > 0) return false;
  for (int t : ready_) {
    if (queued_[t]) return false;
  }
  return true;
}

int Scheduler::PickFor(const WorkerState& w) {
  // Drop stale entries at the front.
  while (!ready_.empty() && !queued_[ready_.front()]) ready_.pop_front();
  if (ready_.empty()) return -1;
  int head = ready_.front();
  if (tasks_[head].ranks > 1) return -1;  // a gang waits at the head (handled in FillAll)
  // A watched shard (see Watched) goes only to an idle worker: at the head, it holds back
  // second slots until one is idle, as a gang does (shards behind it would otherwise keep
  // every worker busy and starve it).
  const bool busy = w.in_flight > 0;
  if (busy && Watched(head)) return -1;
  if (w.last_task < 0 || tasks_[head].needs.empty()) return head;
  const auto& last_needs = tasks_[w.last_task].needs;
  auto affine = [&](int c) {
    for (int n : tasks_[c].needs) {
      if (n == w.last_task) return true;
      if (std::find(last_needs.begin(), last_needs.end(), n) != last_needs.end()) return true;
    }
    return false;
  };
  if (affine(head)) return head;
  int seen = 0;
  for (auto it = ready_.begin(); it != ready_.end() && seen < options_.affinity_lookahead;
       ++it, ++seen) {
    int c = *it;
    if (!queued_[c] || tasks_[c].ranks > 1 || (busy && Watched(c))) continue;
    if (affine(c)) return c;
  }
  return head;
}

void Scheduler::Dispatch(int task, std::span<WorkerState* const> gang, double now, Comm& comm) {
  SchedTask& t = tasks_[task];
  Unqueue(task);
  t.msg.attempt = ++t.attempt_numbers;
  t.msg.gang.clear();
  if (gang.size() > 1) {
    for (auto* w : gang) t.msg.gang.push_back(w->id.rank);
    std::sort(t.msg.gang.begin(), t.msg.gang.end());
    t.msg.gang_id = next_gang_id_++;
  }
  SetStatus(task, ShardStatus::kRunning);
  Running& r = running_[task];
  r.worker = gang.front()->id;
  r.attempt = t.msg.attempt;
  r.start = now;
  if (gang.size() > 1) {
    r.gang = std::make_unique<GangRun>();
    r.gang->left = static_cast<int>(gang.size());
  }
  ++running_count_;
  const bool watched = Watched(task);
  if (watched) {
    double grace =
        std::max(options_.deadline_grace_min_s, options_.deadline_grace_fraction * t.msg.timeout_s);
    deadlines_.push(Deadline{now + t.msg.timeout_s + grace, task, t.msg.attempt});
  }
  for (auto* w : gang) {
    // A gang member takes nothing else until the gang is over: its ranks must all be free.
    // Neither does a watched shard's worker: the shard starts now, and a deadline that
    // strikes retires a worker that holds nothing else.
    w->in_flight += gang.size() > 1 || watched ? options_.window : 1;
    w->reserved = false;
    w->last_task = task;
    w->running.push_back(task);
    events_.push_back(DispatchedEvent{task, w->id, t.msg.attempt, now});
    comm.Send(w->id, t.msg);
  }
}

void Scheduler::MarkHungry(WorkerState& w) {
  // Idle workers are served before second slots of busy ones, so the end of a sweep does not
  // queue a shard behind a running one while another worker sits idle.
  if (w.reserved || w.in_flight >= options_.window) return;
  if (w.in_flight == 0) {
    if (!w.hungry_idle) {
      w.hungry_idle = true;
      hungry_idle_.push_back(w.id.rank);
    }
  } else if (!w.hungry) {
    w.hungry = true;
    hungry_.push_back(w.id.rank);
  }
}

Scheduler::WorkerState* Scheduler::NextHungry() {
  while (!hungry_idle_.empty()) {
    auto& w = worker_slots_[hungry_idle_.back()];
    if (w.in_flight == 0 && !w.reserved) return &w;
    w.hungry_idle = false;
    hungry_idle_.pop_back();
    MarkHungry(w);
  }
  // Second slots hide dispatch latency while there is plenty of work; near the end of a sweep
  // they would queue shards behind running ones while other workers go idle, so they stop
  // once fewer shards are ready than there are workers. They also stop while recent shards
  // last long (second_slot_max_s): then the latency they hide is a negligible fraction of a
  // shard, and a shard queued behind a long one waits for it while another worker may idle
  // (with heavy-tailed durations that cost +5 % of makespan in bench/scheduler).
  if (ready_count_ < static_cast<int64_t>(workers_.size())) return nullptr;
  if (recent_duration_s_ > options_.second_slot_max_s) return nullptr;
  while (!hungry_.empty()) {
    auto& w = worker_slots_[hungry_.back()];
    if (w.in_flight < options_.window && w.in_flight > 0 && !w.reserved) return &w;
    w.hungry = false;
    hungry_.pop_back();
    if (w.in_flight == 0) MarkHungry(w);
  }
  return nullptr;
}

bool Scheduler::HasReady() {
  while (!ready_.empty() && !queued_[ready_.front()]) ready_.pop_front();
  return !ready_.empty();
}

void Scheduler::FillAll(double now, Comm& comm) {
  if (preempted_) return;
  while (HasReady()) {
    int head = ready_.front();
    int k = tasks_[head].ranks;
    if (k <= 1) {
      // One shard at a time to the best hungry worker; cost is proportional to dispatches.
      WorkerState* w = NextHungry();
      if (!w) return;
      int task = PickFor(*w);
      if (task < 0) return;
      WorkerState* const one[] = {w};
      Dispatch(task, one, now, comm);
      if (w->hungry_idle && w->in_flight > 0) {
        // It leaves the idle stack (lazily, in NextHungry) and may take a second slot later.
        MarkHungry(*w);
      }
      continue;
    }
    // A gang at the head: reserve idle workers until k are free, then send to all k.
    std::vector<WorkerState*> idle;
    for (int rank : workers_) {
      auto& w = worker_slots_[rank];
      if (w.in_flight == 0) {
        w.reserved = true;
        idle.push_back(&w);
      }
    }
    if (static_cast<int>(idle.size()) < k) return;
    std::vector<WorkerState*> rest(idle.begin() + k, idle.end());
    idle.resize(k);
    Dispatch(head, idle, now, comm);
    for (auto* w : rest) w->reserved = false;
    for (auto* w : idle) MarkHungry(*w);
    for (auto* w : rest) MarkHungry(*w);
  }
}

void Scheduler::OnMessage(WorkerId from, FromWorker msg, double now, Comm& comm) {
  if (const auto* hello = std::get_if<Hello>(&msg)) {
    if (static_cast<int>(worker_slots_.size()) <= from.rank) worker_slots_.resize(from.rank + 1);
    if (worker_slots_[from.rank].id.rank != from.rank) {
      worker_slots_[from.rank].id = from;
      workers_.push_back(from.rank);
      MarkHungry(worker_slots_[from.rank]);
    }
    hellos_[from.rank] = *hello;
    events_.push_back(WorkerJoinedEvent{from, *hello});
    FillAll(now, comm);
  } else if (const auto* p = std::get_if<Progress>(&msg)) {
    int task = RunningTask(from, p->id, p->attempt);
    if (task >= 0) events_.push_back(ProgressEvent{task, p->step, p->total});
  } else if (auto* live = std::get_if<LivePoints>(&msg)) {
    int task = RunningTask(from, live->id, live->attempt);
    if (task >= 0 && !live->curves.empty()) {
      events_.push_back(LivePointsEvent{task, now, std::move(*live)});
    }
  } else {
    auto& done = std::get<ShardDone>(msg);
    // Find the running task this answers (a stale answer after preemption finds none).
    int task = RunningTask(from, done.id, done.attempt);
    if (from.rank < static_cast<int>(worker_slots_.size())) {
      auto& w = worker_slots_[from.rank];
      // Stuck past a deadline, the attempt settled without it: a late answer changes nothing.
      if (w.retired) return;
      // A gang or watched shard holds its workers' whole window (see Dispatch).
      bool whole = task >= 0 && (tasks_[task].msg.gang.size() > 1 || Watched(task));
      w.in_flight = std::max(0, w.in_flight - (whole ? options_.window : 1));
      if (task >= 0) Forget(w, task);
      MarkHungry(w);
    }
    if (task >= 0) Finish(task, from, std::move(done), now, comm);
    if (!preempted_) FillAll(now, comm);
  }
}

int Scheduler::RunningTask(WorkerId from, const ShardId& id, int attempt) const {
  if (from.rank < 0 || from.rank >= static_cast<int>(worker_slots_.size())) return -1;
  for (int task : worker_slots_[from.rank].running) {
    if (running_[task].attempt == attempt && tasks_[task].msg.key.id() == id) return task;
  }
  return -1;
}

void Scheduler::Forget(WorkerState& w, int task) {
  auto it = std::find(w.running.begin(), w.running.end(), task);
  if (it == w.running.end()) return;
  *it = w.running.back();
  w.running.pop_back();
}

void Scheduler::Finish(int task, WorkerId worker, ShardDone done, double now, Comm& comm) {
  (void)comm;
  if (done.outcome == Outcome::kOk && done.end >= done.start) {
    const double d = done.end - done.start;
    recent_duration_s_ = recent_duration_s_ < 0 ? d : 0.9 * recent_duration_s_ + 0.1 * d;
  }
  Running& r = running_[task];
  if (GangRun* g = r.gang.get()) {
    // Gang: wait for every rank; the lead (lowest rank) carries metrics and the artifact.
    if (done.outcome != Outcome::kOk && !g->failed) {
      g->failed = true;
      g->first_failure = done;
    }
    if (worker.rank == tasks_[task].msg.gang.front()) g->lead = done;
    if (--g->left > 0) {
      g->answered.push_back(worker.rank);
      return;
    }
    ShardDone merged = g->failed ? g->first_failure : g->lead;
    merged.start = std::min(g->lead.start > 0 ? g->lead.start : done.start, done.start);
    done = std::move(merged);
    worker = r.worker;
  }
  Settle(task, worker, std::move(done), now);
}

void Scheduler::Settle(int task, WorkerId worker, ShardDone done, double now) {
  if (running_[task].attempt != 0) {
    running_[task] = Running{};
    --running_count_;
  }
  SchedTask& t = tasks_[task];
  ShardStatus next;
  switch (done.outcome) {
    case Outcome::kOk:
      t.attempts += 1;  // charged attempts include the one that succeeded
      next = ShardStatus::kDone;
      break;
    case Outcome::kPreempted:
      next = preempted_ ? ShardStatus::kPreempted : ShardStatus::kPending;
      break;
    default:
      t.attempts += 1;
      next = t.attempts - t.budget_base < t.max_attempts ? ShardStatus::kPending
                                                         : ShardStatus::kFailed;
      break;
  }
  SetStatus(task, next);
  events_.push_back(FinishedEvent{task, now, worker, std::move(done), next, t.attempts});
  if (next == ShardStatus::kDone) {
    for (int d : dependents_[task]) {
      if (--unmet_[d] == 0 && !blocked_[d] && tasks_[d].status == ShardStatus::kPending) {
        MakeReady(d);
      }
    }
  } else if (next == ShardStatus::kPending) {
    MakeReady(task);  // retry, at the back of the queue
  } else if (next == ShardStatus::kFailed) {
    Block(task);
  }
}

void Scheduler::Preempt(double now) {
  if (preempted_) return;
  preempted_ = true;
  std::vector<int> tasks;
  for (int rank : workers_) {
    WorkerState& w = worker_slots_[rank];
    for (int task : w.running) {
      if (std::find(tasks.begin(), tasks.end(), task) == tasks.end()) tasks.push_back(task);
    }
    w.running.clear();
    w.in_flight = 0;
  }
  std::sort(tasks.begin(), tasks.end());  // plan order, as the registry writes them
  for (int task : tasks) {
    Running& r = running_[task];
    if (r.attempt == 0) continue;
    ShardDone d;
    d.id = tasks_[task].msg.key.id();
    d.attempt = r.attempt;
    d.outcome = Outcome::kPreempted;
    d.error = "preempted: the coordinator was signalled";
    d.start = r.start;
    d.end = now;
    SetStatus(task, ShardStatus::kPreempted);
    events_.push_back(FinishedEvent{task, now, r.worker, std::move(d), ShardStatus::kPreempted,
                                    tasks_[task].attempts});
    r = Running{};
    --running_count_;
  }
}

void Scheduler::Tick(double now, Comm& comm) {
  bool expired = false;
  while (!deadlines_.empty() && deadlines_.top().at <= now) {
    Deadline d = deadlines_.top();
    deadlines_.pop();
    if (preempted_ || running_[d.task].attempt != d.attempt) continue;  // in time
    Expire(d.task, now);
    expired = true;
  }
  if (!expired) return;
  // Fewer live ranks: what is queued and needs more of them than remain cannot run. Workers
  // held idle for a gang are released (FillAll holds them again if a gang still leads).
  for (int t : ready_) {
    if (queued_[t] && tasks_[t].ranks > LiveWorkers()) Strand(t);
  }
  for (int rank : workers_) {
    WorkerState& w = worker_slots_[rank];
    if (w.reserved) {
      w.reserved = false;
      MarkHungry(w);
    }
  }
  FillAll(now, comm);
}

void Scheduler::Expire(int task, double now) {
  const Running& r = running_[task];
  const RunShard& m = tasks_[task].msg;
  std::vector<int32_t> stuck;
  if (r.gang) {
    const auto& answered = r.gang->answered;
    for (int32_t rank : m.gang) {
      if (std::find(answered.begin(), answered.end(), rank) == answered.end())
        stuck.push_back(rank);
    }
  } else {
    stuck.push_back(r.worker.rank);
  }
  for (int32_t rank : stuck) Retire(rank);
  ShardDone d;
  d.id = m.key.id();
  d.attempt = r.attempt;
  d.outcome = Outcome::kTimeout;
  d.start = r.start;
  d.end = now;
  const bool many = stuck.size() > 1;
  d.error = fmt::format(
      "timeout after {:.3g} s (limit {:.3g} s); ran inside worker rank{} {} ({}), which cannot "
      "be stopped alone: rank{} retired for the rest of this launch",
      now - r.start, m.timeout_s, many ? "s" : "", fmt::join(stuck, ", "),
      m.gang.size() > 1 ? fmt::format("gang of {}", m.gang.size()) : "isolation: inline",
      many ? "s" : "");
  if (r.gang && r.gang->failed)
    d.error += "; a gang rank reported first: " + r.gang->first_failure.error;
  WorkerId lead = r.worker;
  Settle(task, lead, std::move(d), now);
}

void Scheduler::Retire(int rank) {
  WorkerState& w = worker_slots_[rank];
  if (w.retired) return;
  w.retired = true;
  // Its whole window stays taken: no path that looks for a free slot ever picks it again.
  w.in_flight = options_.window;
  w.reserved = false;
  w.running.clear();
  retired_.push_back(rank);
}

}  // namespace seedgrid

// The scheduler: the coordinator's logic as a pure reactor over plain state.
//
//   Scheduler s(tasks, options);
//   s.OnMessage(worker, msg, now, comm);   // Hello / Progress / ShardDone / LivePoints
//   s.Preempt(now);                        // SIGTERM/SIGUSR1: stop dispatch, in-flight ->
//   preempted if (s.has_deadlines()) s.Tick(now, comm);  // each round: timeouts of shards run in a
//   worker s.TakeEvents();                        // what happened, for the registry writer and
//   progress
//
// It does no I/O of its own: messages leave through Comm, which the MPI transport implements
// and tests fake in memory (tests/coordinator round-trip every message through the codec).
// Nothing here reads a clock either; `now` is passed in, so the scale simulation
// (bench/scheduler_sim) drives it with a virtual clock.
//
// Policy:
//   * pull: a worker that says Hello gets up to `window` shards; each ShardDone frees a slot
//     that is refilled at once.
//   * a shard is ready when every shard it needs is done; ready shards are dispatched in plan
//     order (FIFO), preferring for each worker a ready shard that needs a shard the worker
//     itself ran last (model affinity: its executor still holds that model), within a bounded
//     look-ahead.
//   * gang shards (`ranks: k`) wait at the head of the queue until k workers are idle, then go
//     to all k at once.
//   * retries: a failed attempt (error, crash, timeout, memory) is charged; the shard is
//     queued again until `max_attempts` charged attempts, then it is failed and every shard
//     that needs it is blocked (reported as pending, never dispatched).
//   * preemption: in-flight shards become preempted (not charged) and nothing more is sent.
//   * timeouts of shards that run inside the worker process (`isolation: inline`, and gangs):
//     the worker enforces an executor shard's timeout by killing its child, but cannot stop
//     its own main thread (the only MPI thread) stuck in a runner. So the scheduler holds a
//     deadline for each such attempt with a timeout: dispatch + timeout + grace (the grace,
//     max(5 s, 10 %), covers messaging). Such a shard goes only to an idle worker and holds
//     its whole window (as a gang does), so it starts when dispatched and the worker runs
//     nothing else meanwhile. Past the deadline (Tick), the attempt ends as a timeout
//     (charged, retried elsewhere) and the ranks that did not answer are retired: never sent
//     anything again in this launch, their late answers ignored. Shards needing more ranks
//     than remain are stranded (counted as blocked, left pending in the registry), so the
//     sweep ends instead of hanging; the coordinator aborts the MPI job at the end, as the
//     stuck ranks will never reach MPI_Finalize.
#pragma once

#include <cstdint>
#include <deque>
#include <functional>
#include <memory>
#include <queue>
#include <span>
#include <string>
#include <unordered_map>
#include <variant>
#include <vector>

#include "core/comm.h"
#include "core/protocol.h"
#include "core/spec.h"
#include "core/types.h"

namespace seedgrid {

// One shard as the scheduler sees it.
struct SchedTask {
  RunShard msg;            // the dispatch message, attempt filled in at dispatch
  std::vector<int> needs;  // indices into the task vector
  int max_attempts = 3;
  int ranks = 1;
  ShardStatus status = ShardStatus::kPending;
  int attempts = 0;         // charged attempts so far (as in the registry)
  int budget_base = 0;      // attempts not counted against max_attempts (a rerun's fresh budget)
  int attempt_numbers = 0;  // attempts numbered so far (charged + preempted)
};

struct SchedulerOptions {
  int window = 2;  // shards in flight per worker
  int affinity_lookahead = 64;
  // Second slots (window > 1) only while recent shards (an exponential moving average of the
  // workers' measured durations) last less than this; unknown at the start: allowed.
  double second_slot_max_s = 0.05;
  // Deadline of a shard run inside a worker: timeout + max(grace_min_s, grace_fraction * timeout).
  double deadline_grace_min_s = 5;
  double deadline_grace_fraction = 0.1;
};

// What happened, in order, for the registry writer (rank 0's single writer) and progress.
struct DispatchedEvent {
  int task;
  WorkerId worker;
  int attempt;
  double time;
};
struct FinishedEvent {
  int task;
  double time;  // when the coordinator learnt of it
  WorkerId worker;
  ShardDone done;
  ShardStatus new_status;  // done, pending (will retry), failed, preempted
  int attempts;            // charged attempts after this one
};
struct ProgressEvent {
  int task;
  int64_t step, total;
};
struct WorkerJoinedEvent {
  WorkerId worker;
  Hello hello;
};
// Points of a running attempt's live curves (LivePoints, already bounded by the worker), for the
// registry writer; points of an attempt that is not the running one are dropped.
struct LivePointsEvent {
  int task;
  double time;
  LivePoints points;
};
using SchedEvent =
    std::variant<DispatchedEvent, FinishedEvent, ProgressEvent, WorkerJoinedEvent, LivePointsEvent>;

struct SchedCounts {
  int64_t pending = 0, running = 0, done = 0, failed = 0, preempted = 0, blocked = 0;
  int64_t stranded = 0;  // of `blocked`: needed more live worker ranks than retirements left
  int64_t total = 0;
};

class Scheduler {
 public:
  Scheduler(std::vector<SchedTask> tasks, SchedulerOptions options);

  // `msg` by value: a decoded message is moved in (its ShardDone goes on into the events).
  void OnMessage(WorkerId from, FromWorker msg, double now, Comm& comm);
  // Stop dispatching; every running shard becomes preempted (events emitted).
  void Preempt(double now);
  // Ends the attempts of shards run inside a worker whose deadline is past `now` (see the
  // policy above): timeout outcome, ranks retired, retries dispatched to the other workers.
  void Tick(double now, Comm& comm);
  // Whether a deadline is held (possibly of an attempt that has finished since): the
  // coordinator reads the clock for Tick only then.
  bool has_deadlines() const { return !deadlines_.empty(); }
  // Ranks retired in this launch (stuck in a shard past its deadline), in retirement order.
  const std::vector<int>& retired() const { return retired_; }
  // The Hello of each worker rank that sent one (host, pid: who to name when a rank is lost).
  const std::unordered_map<int, Hello>& hellos() const { return hellos_; }

  // No shard is running and none can be dispatched any more (all done, failed or blocked),
  // or preempted and nothing is in flight.
  bool Finished() const;
  bool preempted() const { return preempted_; }
  const SchedCounts& counts() const { return counts_; }
  const std::vector<SchedTask>& tasks() const { return tasks_; }
  int workers() const { return static_cast<int>(workers_.size()); }
  // Largest `ranks` among runnable tasks greater than the number of workers (0 when fine).
  int UnsatisfiableRanks(int n_workers) const;

  std::vector<SchedEvent> TakeEvents() { return std::exchange(events_, {}); }
  // The same into `out` (cleared first), keeping both buffers' capacity: no allocation per round.
  void TakeEvents(std::vector<SchedEvent>* out) {
    out->clear();
    std::swap(*out, events_);
  }

 private:
  struct WorkerState {
    WorkerId id;
    int in_flight = 0;
    bool reserved = false;     // held idle for a gang shard
    int last_task = -1;        // for affinity
    bool hungry = false;       // listed in hungry_ (busy, with a free slot)
    bool hungry_idle = false;  // listed in hungry_idle_
    bool retired = false;      // stuck past a deadline: its window stays full for good
    std::vector<int> running;  // tasks in flight here (at most `window`; a gang's in each member)
  };
  struct GangRun {
    int left;  // ShardDone messages still expected
    ShardDone first_failure;
    bool failed = false;
    ShardDone lead;                 // gang rank 0's report
    std::vector<int32_t> answered;  // gang ranks that reported (the others are stuck at expiry)
  };
  // Per task; attempt 0: not running. Kept small (a vector over all tasks): the gang's
  // bookkeeping is allocated only for gangs.
  struct Running {
    int attempt = 0;
    WorkerId worker;  // a gang's lowest rank
    double start = 0;
    std::unique_ptr<GangRun> gang;
  };
  struct Deadline {
    double at;
    int task;
    int attempt;
    bool operator>(const Deadline& o) const { return at > o.at; }
  };

  void MakeReady(int task);
  void Unqueue(int task);
  void FillAll(double now, Comm& comm);
  void MarkHungry(WorkerState& w);
  WorkerState* NextHungry();
  bool HasReady();
  int PickFor(const WorkerState& w);
  void Dispatch(int task, std::span<WorkerState* const> gang, double now, Comm& comm);
  void Finish(int task, WorkerId worker, ShardDone done, double now, Comm& comm);
  void Settle(int task, WorkerId worker, ShardDone done, double now);
  // Runs inside the worker process and has a timeout: deadline at the coordinator, whole window.
  bool Watched(int task) const {
    const SchedTask& t = tasks_[task];
    return t.msg.timeout_s > 0 && (t.ranks > 1 || t.msg.isolation == Isolation::kInline);
  }
  void Expire(int task, double now);
  void Retire(int rank);
  int LiveWorkers() const { return static_cast<int>(workers_.size() - retired_.size()); }
  void Strand(int task);
  void Block(int task);
  void SetStatus(int task, ShardStatus s);
  int64_t& Count(ShardStatus s);
  // The task a worker's message is about: among the ones in flight on that worker (a stale
  // answer, e.g. after preemption, finds none: -1).
  int RunningTask(WorkerId from, const ShardId& id, int attempt) const;
  static void Forget(WorkerState& w, int task);

  std::vector<SchedTask> tasks_;
  SchedulerOptions options_;
  std::vector<std::vector<int>> dependents_;
  std::vector<int> unmet_;  // needs not yet done
  std::vector<bool> blocked_;
  std::deque<int> ready_;  // FIFO of ready task indices (may hold stale entries)
  std::vector<bool> queued_;
  int64_t ready_count_ = 0;       // tasks with queued_ set
  std::vector<Running> running_;  // per task
  int64_t running_count_ = 0;
  std::vector<WorkerState> worker_slots_;  // indexed by rank
  std::vector<int> workers_;               // known ranks
  std::vector<int> hungry_;                // busy ranks that may have a free slot
  std::vector<int> hungry_idle_;           // ranks that may be idle
  std::vector<SchedEvent> events_;
  SchedCounts counts_;
  bool preempted_ = false;
  double recent_duration_s_ = -1;  // EWMA of successful shards' durations (-1: none yet)
  int next_gang_id_ = 1;
  // Min-heap of deadlines; entries of attempts that finished in time are dropped when due.
  std::priority_queue<Deadline, std::vector<Deadline>, std::greater<>> deadlines_;
  std::vector<int> retired_;
  std::unordered_map<int, Hello> hellos_;
};

}  // namespace seedgrid

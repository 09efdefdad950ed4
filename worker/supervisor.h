// The worker's supervisor: its policy as a pure reactor, like the coordinator's scheduler
// (coordinator/scheduler.h). It reads no pipe, no MPI and no clock: the driver
// (worker/worker.cpp) hands it each event with the time, and it acts through three seams —
// UpLink (core/comm.h: messages to the coordinator), ShardExecutor (the executor child:
// start, send, signal, reap) and InProcessRunner (a shard run in the supervisor's own
// process). Tests drive it with an in-memory UpLink, a fake executor and a fake clock
// (tests/worker/supervisor_test.cpp).
//
//   Supervisor s(up, executor, in_process, options);
//   s.Start(hello);                         // starts the executor, says Hello
//   s.OnMessage(msg, frame, now);           // RunShard / Shutdown from the coordinator
//   s.OnExecutorOutput(stream, bytes);      // the executor's stdout / stderr (held)
//   s.OnExecutorFrame(frame, now);          // Progress / ShardDone from the executor
//   s.RouteOutput();                        // after a batch: held output to the running shard
//   s.OnExecutorEof(now);                   // its frame pipe closed: it is dead or dying
//   s.Tick(now);                            // while the executor has shards: timeouts
//   s.RunInProcess();                       // an inline or gang shard, when its turn comes
//
// Policy:
//   * Single-rank shards go to the executor in arrival order (the RunShard frame is forwarded
//     unchanged); the first unanswered one is running, the others are queued behind it.
//   * Timeout of the running shard: SIGTERM to the executor's group, then SIGKILL after
//     `kill_grace_s` (or the shard's own `grace_s`, resources.grace, when set); the attempt ends
//     as `timeout` when the executor dies.
//   * A dead executor (crash, kill, timeout) charges only the running shard: a ShardDone with
//     the reason (signal or exit code, and the last line of its stderr) goes up, the executor
//     is restarted and the shards queued behind are re-sent (same attempt numbers: not charged).
//     After a `memory` ShardDone the executor kills itself (worker/executor.h): that death was
//     reported already, so it charges nobody.
//   * `isolation: inline` and gang shards run in-process, one at a time, only while the
//     executor has nothing queued (a gang's ranks must not wait on one another's executors).
//   * Live curves: the executor sends its shards' LivePoints itself (forwarded like Progress);
//     an in-process shard's go up through an InlineLiveFeed installed for its run.
//   * Shutdown: the executor is killed (what still runs was recorded as preempted by the
//     coordinator) and the worker exits with the code the coordinator gave.
//
// Attempt logs (worker/attempt_log.h): every attempt's stdout and stderr go to its own capped
// files. The executor's stdout and stderr are pipes shared by all its shards, so a shard's end
// must be found in them. After each shard, before its ShardDone, the executor flushes stdio and
// looks at each pipe: when it still holds bytes the worker has not read, it writes
// AttemptEndMarker(id, attempt) there; when it is empty (the common case, and always so for a
// shard that prints nothing, which then costs two ioctls), every byte of the shard was read. The
// driver hands over a consistent batch: it reads frames and output alternately until a read of
// frames finds nothing new after the last output read (so every ShardDone written before a byte it
// holds is in the batch, and so is every marker written before a ShardDone in it), then calls
// OnExecutorOutput, OnExecutorFrame for each frame, and RouteOutput. Held output is thus
// attributed exactly: a ShardDone takes the bytes before its own marker, if there is one; what
// remains goes to the shard now running, up to the next marker. A failed attempt's error text
// ends with the last line of its stderr.
#pragma once

#include <cstdint>
#include <deque>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <utility>

#include "core/comm.h"
#include "core/protocol.h"
#include "worker/attempt_log.h"
#include "worker/live_feed.h"

namespace seedgrid {

enum class OutStream { kStdout = 0, kStderr = 1 };

// The executor child as the supervisor sees it (worker/executor.h: ExecutorProcess).
class ShardExecutor {
 public:
  virtual ~ShardExecutor() = default;
  virtual void Start() = 0;
  virtual bool running() const = 0;
  virtual void Send(const std::string& frame) = 0;  // a whole ToWorker frame
  virtual void Signal(int sig) = 0;                 // to its process group
  // SIGKILLs what is left of its group and waits for it: the waitpid status.
  virtual int Reap() = 0;
  // Blocks up to `timeout_s` for the executor to end (its frame pipe closes), handing what it
  // prints meanwhile to `output`. True if it ended. Used only at shutdown, after SIGTERM.
  virtual bool WaitExit(double timeout_s,
                        const std::function<void(OutStream, std::string_view)>& output) = 0;
};

// Runs one shard in the supervisor's process (inline and gang shards; worker/worker.cpp runs
// it with RunShardLocally, a gang communicator, and its fds 1 and 2 captured into `logs`).
class InProcessRunner {
 public:
  virtual ~InProcessRunner() = default;
  virtual ShardDone Run(const RunShard& task, AttemptLogs& logs,
                        const std::function<void(int64_t, int64_t)>& progress) = 0;
};

struct SupervisorOptions {
  double kill_grace_s = 3;  // SIGTERM -> SIGKILL on timeout/shutdown; a shard's grace_s wins
  int world_rank = 1;       // this worker's rank (names its gang logs)
  LogCap log_cap;
  // The clock of the live curves of in-process shards (InlineLiveFeed, worker/live_feed.h: their
  // LivePoint calls go up at most once per kLiveInterval); none: such shards send no live curves.
  std::function<double()> live_clock;
};

class Supervisor {
 public:
  Supervisor(UpLink& up, ShardExecutor& executor, InProcessRunner& in_process,
             SupervisorOptions options);
  ~Supervisor();

  void Start(const Hello& hello);
  // `frame`: msg's encoding as received, forwarded to the executor unchanged.
  void OnMessage(ToWorker msg, const std::string& frame, double now);
  void OnExecutorOutput(OutStream stream, std::string_view bytes);
  void OnExecutorFrame(const std::string& frame, double now);
  void RouteOutput();
  void OnExecutorEof(double now);
  void Tick(double now);
  // Runs the next inline or gang shard when the executor has nothing queued. True if it ran one.
  bool RunInProcess();

  bool executor_busy() const { return !queue_.empty(); }
  bool shutdown() const { return shutdown_; }
  int exit_code() const { return exit_code_; }

 private:
  struct InFlight {
    RunShard task;
    double head_since = 0;  // when it became the running shard
  };
  // The executor's output, split at markers into the attempts it belongs to.
  struct LogSlot {
    ShardId id;
    int32_t attempt = 0;
    std::unique_ptr<AttemptLogs> logs;
  };
  void Route(OutStream s, CappedLog* sink, size_t n);
  bool DropStaleMarker(std::string& pending) const;
  void Stray(OutStream s, std::string_view bytes);
  bool OnShardDone(ShardDone& done, double now);  // true when `done` was changed
  void CloseFrontLog();
  void ReportDeath(int status, double now);
  void ResendQueue(double now);
  double GraceFor(const RunShard& task) const;
  std::unique_ptr<AttemptLogs> LogsFor(const RunShard& task) const;

  UpLink& up_;
  ShardExecutor& executor_;
  InProcessRunner& in_process_;
  SupervisorOptions options_;
  std::deque<InFlight> queue_;  // shards sent to the executor, unanswered
  std::deque<RunShard> local_;  // inline and gang shards, in arrival order
  std::deque<LogSlot> logs_;    // per executor attempt whose output may still come
  std::string pending_[2];      // executor output not yet routed, per OutStream
  std::optional<std::pair<Outcome, std::string>> head_killed_;  // why the running one was killed
  std::optional<double> kill_deadline_;                         // SIGKILL after the grace
  bool executor_exiting_ = false;  // it reported a memory-limit ShardDone and is killing itself
  bool shutdown_ = false;
  int exit_code_ = 0;
  std::string buf_;
};

// The executor's attempt boundary on its stdout and stderr (see the header comment):
// "\x1eseedgrid:attempt-end <id> <attempt>\x1e\n".
inline constexpr std::string_view kAttemptEndPrefix = "\x1eseedgrid:attempt-end ";
std::string AttemptEndMarker(const ShardId& id, int attempt);

}  // namespace seedgrid

#include "worker/supervisor.h"

#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>

#include <fmt/format.h>

#include "core/process.h"
#include "core/sysutil.h"

namespace seedgrid {
namespace {

// How many bytes at the end of `text` could be the start of a marker (kept for the next read).
size_t MarkerPrefixAtEnd(std::string_view text) {
  const size_t max = std::min(text.size(), kAttemptEndPrefix.size() - 1);
  for (size_t k = max; k > 0; --k) {
    if (text.substr(text.size() - k) == kAttemptEndPrefix.substr(0, k)) return k;
  }
  return 0;
}

// A failed attempt's error ends with the last line its stderr carried.
bool AddLastStderr(ShardDone& done, const AttemptLogs& logs) {
  if (done.outcome == Outcome::kOk) return false;
  const std::string last = logs.err.LastLines(1);
  if (last.empty() || done.error.find(last) != std::string::npos) return false;
  done.error += (done.error.empty() ? "" : "; ") + ("last stderr: " + last);
  return true;
}

}  // namespace

std::string AttemptEndMarker(const ShardId& id, int attempt) {
  return fmt::format("{}{} {}\x1e\n", kAttemptEndPrefix, id.hex, attempt);
}

Supervisor::Supervisor(UpLink& up, ShardExecutor& executor, InProcessRunner& in_process,
                       SupervisorOptions options)
    : up_(up), executor_(executor), in_process_(in_process), options_(options) {}

Supervisor::~Supervisor() = default;  // the logs close themselves (their tails written)

void Supervisor::Start(const Hello& hello) {
  executor_.Start();
  up_.Send(hello);
}

void Supervisor::OnMessage(ToWorker msg, const std::string& frame, double now) {
  if (auto* s = std::get_if<Shutdown>(&msg)) {
    shutdown_ = true;
    exit_code_ = s->exit_code;
    // Whatever still runs was marked preempted by the coordinator; stop it now. A shard in
    // flight gets SIGTERM and up to the kill grace to end (a command saves to its checkpoint
    // dir, docs/command.md), then SIGKILL; an idle executor is killed at once.
    if (executor_.running()) {
      if (!queue_.empty()) {
        executor_.Signal(SIGTERM);
        executor_.WaitExit(
            GraceFor(queue_.front().task),
            [this](OutStream st, std::string_view bytes) { OnExecutorOutput(st, bytes); });
      }
      executor_.Signal(SIGKILL);
      executor_.Reap();
    }
    RouteOutput();
    for (auto& slot : logs_) slot.logs->Close();
    logs_.clear();
    return;
  }
  RunShard task = std::get<RunShard>(std::move(msg));
  if (task.gang.size() > 1 || task.isolation == Isolation::kInline) {
    local_.push_back(std::move(task));
    return;
  }
  if (queue_.empty()) {
    head_killed_.reset();
    kill_deadline_.reset();
  }
  logs_.push_back(LogSlot{task.key.id(), task.attempt, LogsFor(task)});
  queue_.push_back(InFlight{std::move(task), now});
  executor_.Send(frame);
}

std::unique_ptr<AttemptLogs> Supervisor::LogsFor(const RunShard& task) const {
  int gang_rank = 0;
  auto it = std::find(task.gang.begin(), task.gang.end(), options_.world_rank);
  if (it != task.gang.end()) gang_rank = static_cast<int>(it - task.gang.begin());
  return std::make_unique<AttemptLogs>(LogDirFor(task.out_path), task.attempt, options_.log_cap,
                                       gang_rank);
}

void Supervisor::OnExecutorOutput(OutStream s, std::string_view bytes) {
  pending_[static_cast<int>(s)].append(bytes);
}

// Moves the first `n` held bytes of a stream to `sink`, or to the worker's own fd when none.
void Supervisor::Route(OutStream s, CappedLog* sink, size_t n) {
  std::string& pending = pending_[static_cast<int>(s)];
  std::string_view bytes = std::string_view(pending).substr(0, n);
  if (sink) {
    sink->Write(bytes);
  } else {
    Stray(s, bytes);
  }
  pending.erase(0, n);
}

// The held output of every stream to the shard running now, up to the next marker (the end
// of that shard, whose ShardDone will take the bytes before it).
void Supervisor::RouteOutput() {
  for (OutStream s : {OutStream::kStdout, OutStream::kStderr}) {
    std::string& pending = pending_[static_cast<int>(s)];
    if (pending.empty()) continue;
    size_t m = pending.find(kAttemptEndPrefix);
    while (m == 0 && DropStaleMarker(pending)) m = pending.find(kAttemptEndPrefix);
    const size_t n = m != std::string::npos ? m : pending.size() - MarkerPrefixAtEnd(pending);
    CappedLog* sink = nullptr;
    if (!logs_.empty()) {
      AttemptLogs& logs = *logs_.front().logs;
      sink = s == OutStream::kStdout ? &logs.out : &logs.err;
    }
    Route(s, sink, n);
  }
}

// A marker at the start of `pending` of no attempt still held (whose ShardDone went by without
// taking it) would hold back the stream for good: dropped. True when one was.
bool Supervisor::DropStaleMarker(std::string& pending) const {
  const size_t end = pending.find("\x1e\n", kAttemptEndPrefix.size());
  if (end == std::string::npos) return false;  // not whole yet
  const std::string_view tag =
      std::string_view(pending).substr(kAttemptEndPrefix.size(), end - kAttemptEndPrefix.size());
  for (const auto& slot : logs_) {
    if (tag == fmt::format("{} {}", slot.id.hex, slot.attempt)) return false;
  }
  pending.erase(0, end + 2);
  return true;
}

// Output of no attempt goes where the executor's went before logs: the worker's own fds.
void Supervisor::Stray(OutStream s, std::string_view bytes) {
  if (bytes.empty()) return;
  try {
    WriteAll(s == OutStream::kStdout ? STDOUT_FILENO : STDERR_FILENO, bytes);
  } catch (const std::exception&) {
    // Nobody to tell: our own stdout is gone.
  }
}

void Supervisor::CloseFrontLog() {
  if (logs_.empty()) return;
  logs_.front().logs->Close();
  logs_.pop_front();
}

void Supervisor::OnExecutorFrame(const std::string& frame, double now) {
  FromWorker msg = DecodeFromWorker(frame);
  if (auto* done = std::get_if<ShardDone>(&msg); done && OnShardDone(*done, now)) {
    up_.Send(msg);
    return;
  }
  up_.SendEncoded(frame);  // already a FromWorker encoding: forwarded as is
}

bool Supervisor::OnShardDone(ShardDone& done, double now) {
  // Over its memory limit, the executor reports the shard and kills itself (executor.h).
  const bool memory = done.outcome == Outcome::kMemory;
  if (memory) executor_exiting_ = true;
  if (!queue_.empty() && queue_.front().task.key.id() == done.id) {
    queue_.pop_front();
    head_killed_.reset();
    kill_deadline_.reset();
    if (!queue_.empty()) queue_.front().head_since = now;
  }
  bool changed = false;
  if (!logs_.empty() && logs_.front().id == done.id && logs_.front().attempt == done.attempt) {
    AttemptLogs& logs = *logs_.front().logs;
    const std::string marker = AttemptEndMarker(done.id, done.attempt);
    for (OutStream s : {OutStream::kStdout, OutStream::kStderr}) {
      // Without its marker, the shard's output was all routed before (the header comment).
      const size_t m = pending_[static_cast<int>(s)].find(marker);
      if (m == std::string::npos) continue;
      Route(s, s == OutStream::kStdout ? &logs.out : &logs.err, m);
      pending_[static_cast<int>(s)].erase(0, marker.size());
    }
    changed = AddLastStderr(done, logs);
    // A dying executor writes no marker: what it still says is this attempt's, until it is dead.
    if (!memory) CloseFrontLog();
  }
  return changed;
}

void Supervisor::OnExecutorEof(double now) {
  const int status = executor_.Reap();
  ReportDeath(status, now);
  head_killed_.reset();
  kill_deadline_.reset();
  executor_.Start();
  ResendQueue(now);
}

// The dead executor's running shard (if its death was not announced) is the failed attempt.
void Supervisor::ReportDeath(int status, double now) {
  const bool announced = std::exchange(executor_exiting_, false);
  std::string tail;
  if (!logs_.empty() && (announced || !queue_.empty())) {
    // Whatever the dead executor still said is the attempt's.
    AttemptLogs& logs = *logs_.front().logs;
    Route(OutStream::kStdout, &logs.out, pending_[0].size());
    Route(OutStream::kStderr, &logs.err, pending_[1].size());
    tail = logs.err.LastLines(1);
    CloseFrontLog();
  }
  for (OutStream s : {OutStream::kStdout, OutStream::kStderr}) {
    Route(s, nullptr, pending_[static_cast<int>(s)].size());  // the next executor's pipes are new
  }
  if (queue_.empty() || announced) return;
  InFlight dead = std::move(queue_.front());
  queue_.pop_front();
  ShardDone d;
  d.id = dead.task.key.id();
  d.attempt = dead.task.attempt;
  d.end = UnixNow();
  d.start = d.end - std::max(0.0, now - dead.head_since);
  d.signal = WIFSIGNALED(status) ? WTERMSIG(status) : 0;
  d.exit_code = WIFEXITED(status) ? WEXITSTATUS(status) : 0;
  if (head_killed_) {
    d.outcome = head_killed_->first;
    d.error = head_killed_->second;
  } else {
    d.outcome = Outcome::kCrash;
    d.error = "executor " + ExitStatus(status).Describe();
  }
  if (!tail.empty()) d.error += "; last output: " + tail;
  up_.Send(d);
}

// What was queued behind the shard that died goes to the new executor; not charged.
void Supervisor::ResendQueue(double now) {
  for (auto& f : queue_) {
    buf_.clear();
    Encode(ToWorker{f.task}, &buf_);
    executor_.Send(buf_);
    f.head_since = now;
  }
}

// The stage's resources.grace when set, else the worker's default.
double Supervisor::GraceFor(const RunShard& task) const {
  return task.grace_s > 0 ? task.grace_s : options_.kill_grace_s;
}

void Supervisor::Tick(double now) {
  if (queue_.empty()) return;
  if (kill_deadline_ && now >= *kill_deadline_) {
    executor_.Signal(SIGKILL);
    kill_deadline_.reset();
    return;
  }
  if (head_killed_) return;
  const RunShard& head = queue_.front().task;
  const double running = now - queue_.front().head_since;
  if (head.timeout_s > 0 && running > head.timeout_s) {
    head_killed_ = {Outcome::kTimeout, fmt::format("timeout after {:.3g} s (limit {:.3g} s)",
                                                   running, head.timeout_s)};
    executor_.Signal(SIGTERM);
    kill_deadline_ = now + GraceFor(head);
  }
  // Memory limits are the executor's own (on the shard's growth above its baseline, which
  // only the executor sees at the shard's start): see worker/executor.h.
}

bool Supervisor::RunInProcess() {
  if (local_.empty() || !queue_.empty()) return false;
  RunShard task = std::move(local_.front());
  local_.pop_front();
  std::unique_ptr<AttemptLogs> logs = LogsFor(task);
  auto progress = [&](int64_t step, int64_t total) {
    up_.Send(Progress{task.key.id(), task.attempt, step, total});
  };
  std::optional<InlineLiveFeed> live;
  std::optional<ScopedLiveSink> live_sink;
  if (options_.live_clock) {
    live.emplace(
        task.key.id(), task.attempt, [this](const LivePoints& p) { up_.Send(p); },
        options_.live_clock);
    live_sink.emplace(&*live);
  }
  ShardDone done = in_process_.Run(task, *logs, progress);
  live_sink.reset();
  if (live) live->End();  // its last points go before its ShardDone
  logs->Close();
  AddLastStderr(done, *logs);
  up_.Send(done);
  return true;
}

}  // namespace seedgrid

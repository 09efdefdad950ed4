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
  const size_t max = std::min(text.size(), kAttemptEndMarker.size() - 1);
  for (size_t k = max; k > 0; --k) {
    if (text.substr(text.size() - k) == kAttemptEndMarker.substr(0, k)) return k;
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
    // Whatever still runs was marked preempted by the coordinator; stop it now.
    if (executor_.running()) {
      executor_.Signal(SIGKILL);
      executor_.Reap();
    }
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
  logs_.push_back(LogSlot{task.id, task.attempt, LogsFor(task)});
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
  streams_[static_cast<int>(s)].pending.append(bytes);
  Route(s);
}

// Writes a stream's pending bytes to the attempt each belongs to: the one `passed` markers
// after logs_.front(), or nobody's (an idle executor's stray output) past the last.
void Supervisor::Route(OutStream s) {
  Stream& st = streams_[static_cast<int>(s)];
  std::string_view rest = st.pending;
  while (!rest.empty()) {
    const size_t m = rest.find(kAttemptEndMarker);
    const size_t n = m == std::string_view::npos ? rest.size() - MarkerPrefixAtEnd(rest) : m;
    if (st.passed < logs_.size()) {
      AttemptLogs& logs = *logs_[st.passed].logs;
      (s == OutStream::kStdout ? logs.out : logs.err).Write(rest.substr(0, n));
    } else {
      Stray(s, rest.substr(0, n));
    }
    if (m == std::string_view::npos) {
      rest.remove_prefix(n);
      break;
    }
    rest.remove_prefix(m + kAttemptEndMarker.size());
    ++st.passed;
  }
  st.pending.erase(0, st.pending.size() - rest.size());
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
  for (Stream& st : streams_) st.passed = st.passed > 0 ? st.passed - 1 : 0;
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
  if (!queue_.empty() && queue_.front().task.id == done.id) {
    queue_.pop_front();
    head_killed_.reset();
    kill_deadline_.reset();
    if (!queue_.empty()) queue_.front().head_since = now;
  }
  bool changed = false;
  if (!logs_.empty() && logs_.front().id == done.id && logs_.front().attempt == done.attempt) {
    changed = AddLastStderr(done, *logs_.front().logs);
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
    // The stream's last bytes (a marker's start that never completed) are the attempt's too.
    for (int s = 0; s < 2; ++s) {
      AttemptLogs& logs = *logs_.front().logs;
      (s == 0 ? logs.out : logs.err).Write(streams_[s].pending);
    }
    tail = logs_.front().logs->err.LastLines(1);
    CloseFrontLog();
  }
  for (Stream& st : streams_) st = Stream{};  // the next executor's pipes are new
  if (queue_.empty() || announced) return;
  InFlight dead = std::move(queue_.front());
  queue_.pop_front();
  ShardDone d;
  d.id = dead.task.id;
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
    kill_deadline_ = now + options_.kill_grace_s;
  }
  // Memory limits are the executor's own (on the shard's growth above its baseline, which
  // only the executor sees at the shard's start): see worker/executor.h.
}

bool Supervisor::RunInProcess(double now) {
  (void)now;
  if (local_.empty() || !queue_.empty()) return false;
  RunShard task = std::move(local_.front());
  local_.pop_front();
  std::unique_ptr<AttemptLogs> logs = LogsFor(task);
  auto progress = [&](int64_t step, int64_t total) {
    up_.Send(Progress{task.id, task.attempt, step, total});
  };
  ShardDone done = in_process_.Run(task, *logs, progress);
  logs->Close();
  AddLastStderr(done, *logs);
  up_.Send(done);
  return true;
}

}  // namespace seedgrid

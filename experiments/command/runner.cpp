// The runner half of kind: command (command.h). Runs in the executor (or, for a gang, in each
// worker rank of the gang). Process control, in short (docs/command.md, "Process control"):
//
//   * every command runs under a guard process (guard.h), a subreaper that dies last: when the
//     command ends, when the runner asks (the memory limit, a gang's stop) or when the runner
//     itself dies (kill -9 of the worker or the executor), the guard SIGKILLs the command and
//     everything under it, setsid'd processes included, before it reports;
//   * executor: the command joins the executor's process group, so the worker's timeout and
//     preemption (SIGTERM to the group, its grace, SIGKILL) reach the command and everything
//     it started. While the command runs, the executor catches SIGTERM instead of dying at
//     once: the command gets the grace to save, and when it has ended the executor re-raises
//     SIGTERM so the worker reports the attempt as it meant to (a timeout, a preemption);
//   * gang rank (a worker process, an MPI rank): the command leads a group of its own;
//   * both: the shard's memory limit applies to the sum of the resident sets of every process
//     under the guard (polled every 50 ms; over it, the tree is SIGKILLed and the attempt is
//     `memory`; in a gang, every rank's attempt).
//
// The command inherits stdout and stderr (the worker keeps them per attempt); stderr passes
// through a pipe here so the last lines can become the attempt's error.
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <dirent.h>
#include <algorithm>
#include <atomic>
#include <cerrno>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <functional>
#include <mutex>
#include <optional>
#include <stdexcept>
#include <system_error>
#include <thread>

#include <fmt/format.h>

#include "core/live.h"
#include "core/process.h"
#include "core/shard_control.h"
#include "core/store.h"
#include "core/strings.h"
#include "core/sysutil.h"
#include "experiments/command/command.h"
#include "experiments/command/gang.h"
#include "experiments/command/guard.h"
#include "experiments/command/layout.h"
#include "experiments/command/results.h"
#include "experiments/command/template.h"

namespace seedgrid {
namespace {

namespace fs = std::filesystem;
using command::ExpandTemplate;
using command::GangControl;
using command::GangEnd;
using command::GangEnv;
using command::GuardedCommand;

// ---- stderr tee: the command's stderr to ours, the last lines kept for the error ----

class StderrTee {
 public:
  StderrTee() {
    Pipe p = MakePipe();
    read_ = std::move(p.read);
    write_ = std::move(p.write);
    thread_ = std::thread([this] { Loop(); });
  }
  ~StderrTee() { Stop(); }
  int child_end() const { return write_.get(); }
  void CloseChildEnd() { write_.reset(); }
  // Drains what is there and stops (a straggler holding the pipe cannot keep us waiting).
  void Stop() {
    if (!thread_.joinable()) return;
    stop_ = true;
    thread_.join();
  }
  // The last `n` non-empty lines, joined by " | ".
  std::string Tail(int n) const {
    std::lock_guard lock(mu_);
    std::vector<std::string> lines;
    size_t end = tail_.size();
    while (end > 0 && static_cast<int>(lines.size()) < n) {
      size_t start = tail_.rfind('\n', end - 1);
      start = start == std::string::npos ? 0 : start + 1;
      std::string line = tail_.substr(start, end - start);
      while (!line.empty() && (line.back() == '\n' || line.back() == '\r')) line.pop_back();
      if (!line.empty()) lines.insert(lines.begin(), line);
      end = start == 0 ? 0 : start - 1;
    }
    std::string out;
    for (const auto& l : lines) out += (out.empty() ? "" : " | ") + l;
    return out;
  }

 private:
  void Loop() {
    char buf[8192];
    for (;;) {
      pollfd pfd{read_.get(), POLLIN, 0};
      int rc = ::poll(&pfd, 1, 50);
      if (rc < 0 && errno != EINTR) return;
      if (rc <= 0) {
        if (stop_) return;
        continue;
      }
      ssize_t r = ::read(read_.get(), buf, sizeof buf);
      if (r < 0 && errno == EINTR) continue;
      if (r <= 0) return;
      std::string_view chunk(buf, static_cast<size_t>(r));
      try {
        WriteAll(STDERR_FILENO, chunk);
      } catch (const std::exception&) {
        // Nobody reads our stderr any more: keep the tail for the error all the same.
      }
      std::lock_guard lock(mu_);
      tail_.append(chunk);
      if (tail_.size() > 8192) tail_.erase(0, tail_.size() - 8192);
    }
  }
  Fd read_, write_;
  std::thread thread_;
  std::atomic<bool> stop_{false};
  mutable std::mutex mu_;
  std::string tail_;  // guarded by mu_
};

// ---- SIGTERM while the command runs (executor only) ----

volatile sig_atomic_t g_term = 0;
void OnTerm(int) { g_term = 1; }

class TermGuard {
 public:
  TermGuard() {
    g_term = 0;
    struct sigaction sa {};
    sa.sa_handler = OnTerm;
    sigemptyset(&sa.sa_mask);
    if (::sigaction(SIGTERM, &sa, &old_) != 0)
      throw std::system_error(errno, std::generic_category(), "sigaction(SIGTERM)");
  }
  ~TermGuard() { ::sigaction(SIGTERM, &old_, nullptr); }
  // The worker asked the executor to stop: now that the command had its grace, do.
  void ReRaiseIfAsked() {
    if (!g_term) return;
    ::sigaction(SIGTERM, &old_, nullptr);
    ::raise(SIGTERM);
  }

 private:
  struct sigaction old_ {};
};

// SIGKILL to every other process of our process group (what the command left behind).
void KillGroupStragglers() {
  const pid_t me = ::getpid(), group = ::getpgrp();
  if (group != me) return;  // not a group leader: the group is not ours to clean
  DIR* d = ::opendir("/proc");
  if (!d) return;
  while (dirent* e = ::readdir(d)) {
    char* end = nullptr;
    const long pid = std::strtol(e->d_name, &end, 10);
    if (pid <= 0 || *end || pid == me) continue;
    if (::getpgid(static_cast<pid_t>(pid)) == group) ::kill(static_cast<pid_t>(pid), SIGKILL);
  }
  ::closedir(d);
}

// Waits for the command, checking its tree's memory every 50 ms against `limit_mb` (0: none).
// Over it, the tree is SIGKILLed and `over` says by how much.
ExitStatus WaitWithin(GuardedCommand& cmd, int64_t limit_mb, std::string* over) {
  if (limit_mb <= 0) return cmd.Wait();  // EINTR (the executor's SIGTERM) is retried
  for (;;) {
    if (auto s = cmd.TryWait()) return *s;
    if (auto message = cmd.OverMemory(limit_mb)) {
      *over = *message;
      cmd.Kill();
      return cmd.Wait();
    }
    ::usleep(50 * 1000);
  }
}

// ---- the command line ----

struct Dirs {
  std::string files, checkpoint, scratch, params_file, inputs_file;
};

Json InputsJson(const ShardTaskView& t) {
  Json by_stage = Json::object();
  for (const auto& in : t.inputs) {
    Json files = Json::array();
    std::error_code ec;
    if (fs::is_directory(in.artifact_dir, ec)) {
      std::vector<std::string> names;
      for (auto it = fs::recursive_directory_iterator(in.artifact_dir, ec);
           !ec && it != fs::end(it); it.increment(ec)) {
        if (it->is_regular_file(ec)) names.push_back(it->path().string());
      }
      std::sort(names.begin(), names.end());
      files = names;
    }
    if (!by_stage.contains(in.key.stage())) by_stage[in.key.stage()] = Json::array();
    by_stage[in.key.stage()].push_back({{"id", in.key.id().hex},
                                        {"stage", in.key.stage()},
                                        {"kind", in.key.kind()},
                                        {"h5", in.path},
                                        {"dir", in.artifact_dir},
                                        {"files", files},
                                        {"seed", in.key.seed()},
                                        {"params", in.key.params()},
                                        {"axes", in.key.axes()}});
  }
  return by_stage;
}

std::function<std::optional<std::string>(const std::string&)> Lookup(const ShardTaskView& t,
                                                                     const Dirs& d) {
  return [&t, &d](const std::string& n) -> std::optional<std::string> {
    if (n == "seed") return std::to_string(t.key.seed());
    if (n == "shard_id") return t.key.id().hex;
    if (n == "out") return d.scratch;
    if (n == "checkpoint") return d.checkpoint;
    if (n == "attempt") return std::to_string(t.attempt);
    if (n == "sweep") return t.sweep;
    if (n == "stage") return t.key.stage();
    if (n == "params") return d.params_file;
    if (n.rfind("needs.", 0) == 0) {
      const size_t dot = n.rfind('.');
      const std::string stage = n.substr(6, dot - 6), what = n.substr(dot + 1);
      for (const auto& in : t.inputs) {
        if (in.key.stage() == stage) return what == "h5" ? in.path : in.artifact_dir;
      }
      return std::nullopt;
    }
    return command::ParamText(t.key.params(), n);
  };
}

std::vector<std::string> Environment(const ShardTaskView& t, const Dirs& d, const GangEnv* gang,
                                     const std::string& device) {
  auto lookup = Lookup(t, d);
  std::vector<std::string> set;
  if (t.key.params().contains("env") && t.key.params()["env"].is_object()) {
    for (const auto& [k, v] : t.key.params()["env"].items()) {
      const std::string text = v.is_string() ? v.get<std::string>() : v.dump();
      set.push_back(k + "=" + ExpandTemplate(text, lookup));
    }
  }
  set.push_back("SEEDGRID_PARAMS=" + d.params_file);
  set.push_back("SEEDGRID_SHARD_ID=" + t.key.id().hex);
  set.push_back(fmt::format("SEEDGRID_SEED={}", t.key.seed()));
  set.push_back("SEEDGRID_OUT=" + d.scratch);
  set.push_back("SEEDGRID_INPUTS=" + d.inputs_file);
  set.push_back(fmt::format("SEEDGRID_ATTEMPT={}", t.attempt));
  set.push_back("SEEDGRID_CHECKPOINT_DIR=" + d.checkpoint);
  set.push_back("SEEDGRID_SWEEP=" + t.sweep);
  set.push_back("SEEDGRID_STAGE=" + t.key.stage());
  if (device.rfind("cuda:", 0) == 0) {
    // The worker's GPU: its entry of the inherited list (a GPU index or UUID).
    const int index = std::atoi(device.c_str() + 5);
    std::vector<std::string> visible;
    std::string list = Env("CUDA_VISIBLE_DEVICES");
    for (size_t s = 0; !list.empty();) {
      size_t c = list.find(',', s);
      visible.push_back(list.substr(s, c == std::string::npos ? std::string::npos : c - s));
      if (c == std::string::npos) break;
      s = c + 1;
    }
    set.push_back("CUDA_VISIBLE_DEVICES=" + (index < static_cast<int>(visible.size())
                                                 ? visible[index]
                                                 : std::to_string(index)));
  }
  if (gang) {
    set.push_back(fmt::format("RANK={}", gang->rank));
    set.push_back(fmt::format("WORLD_SIZE={}", gang->world));
    set.push_back(fmt::format("LOCAL_RANK={}", gang->local_rank));
    set.push_back(fmt::format("LOCAL_WORLD_SIZE={}", gang->local_world));
    set.push_back("MASTER_ADDR=" + gang->master_addr);
    set.push_back(fmt::format("MASTER_PORT={}", gang->master_port));
  }
  // Not an MPI process, not the executor: drop the launcher's and seedgrid's own plumbing.
  return ChildEnvironment(
      set, {"OMPI_", "PMIX_", "PMI_", "SEEDGRID_EXECUTOR_PARENT", "SEEDGRID_EXIT_FILE"});
}

void WriteJsonFile(const std::string& path, const Json& j) {
  std::ofstream out(path, std::ios::trunc);
  out << j.dump(2) << "\n";
  out.close();
  if (!out) throw std::runtime_error(fmt::format("cannot write {}", path));
}

Dirs PrepareDirs(ShardContext& ctx) {
  const ShardTaskView& t = ctx.task();
  Dirs d;
  d.files = ctx.artifact_dir();  // created by the call: removed below, published at the end
  std::error_code ec;
  fs::remove(d.files, ec);  // only when empty: a published dir of a rerun stays until then
  const std::string stem = d.files.substr(0, d.files.size() - std::string(".files").size());
  d.checkpoint = command::CheckpointDirFor(stem);
  d.scratch = command::ScratchDirFor(stem, t.attempt);
  d.params_file = d.scratch + ".params.json";
  d.inputs_file = d.scratch + ".inputs.json";
  fs::remove_all(d.scratch);
  fs::create_directories(d.scratch);
  fs::create_directories(d.checkpoint);
  WriteJsonFile(d.params_file, t.key.params());
  WriteJsonFile(d.inputs_file, InputsJson(t));
  return d;
}

std::string Tail(const StderrTee& tee);

std::string Describe(ExitStatus s) {
  if (s.exited()) return fmt::format("exited with code {}", s.code());
  const char* name = sigabbrev_np(s.signal());
  return fmt::format("killed by signal {} (SIG{})", s.signal(), name ? name : "?");
}

std::string Tail(const StderrTee& tee) {
  const std::string t = tee.Tail(5);
  return t.empty() ? "" : "; last stderr: " + t;
}

struct Ended {
  ExitStatus status;
  std::string tail;                // the last stderr lines
  std::string stopped_by;          // gang: the other rank's failure that stopped this one
  bool stopped_by_memory = false;  // ... which was the memory limit
  std::string over_memory;         // the memory limit's message, when it killed the command
  bool timed_out = false;          // gang: the command ran past the timeout
  bool preempted = false;          // gang: the worker was told to shut down
};

// A gang rank's timeout, graces and preemption (GangControl::Wait). The coordinator records a
// gang still running at timeout + max(5 s, 10 %) as `timeout` and must then abort the launch
// (its ranks cannot be stopped alone; coordinator/scheduler.h deadline_grace_min_s,
// _fraction): the timeout's grace is capped 2 s below that slack, so the rank has killed its
// command and reported before it (the ranks start their clocks after the dispatch, the
// communicator and the rendezvous: well under those 2 s). A preemption's grace is the whole
// resources.grace, as for a single-rank command. The worker's default grace is 3 s
// (worker.h kill_grace_s).
command::GangLimits GangLimitsFor(const ShardContext& ctx) {
  const auto* control = dynamic_cast<const ShardControl*>(&ctx);
  if (!control) return {};
  const ShardTimeLimits l = control->time_limits();
  command::GangLimits g;
  g.preempt_grace_s = l.grace_s > 0 ? l.grace_s : 3.0;
  g.stop_requested = [control] { return control->stop_requested(); };
  if (l.timeout_s > 0) {
    g.timeout_s = l.timeout_s;
    g.grace_s = std::min(g.preempt_grace_s, std::max(5.0, 0.1 * l.timeout_s) - 2.0);
  }
  return g;
}

// Spawns the command under its guard (guard.h) and waits for it (watching the gang, if any).
Ended RunProcess(const ShardTaskView& t, const Dirs& d, const GangEnv* gang, GangControl* control,
                 const command::GangLimits& limits, const std::string& device, bool in_executor) {
  auto lookup = Lookup(t, d);
  SpawnOptions o;
  for (const auto& a : t.key.params().at("argv")) {
    o.argv.push_back(ExpandTemplate(a.is_string() ? a.get<std::string>() : a.dump(), lookup));
  }
  o.env = Environment(t, d, gang, device);
  o.cwd = ExpandTemplate(t.key.params().value("cwd", std::string(".")), lookup);
  StderrTee tee;
  // stdin from /dev/null; fds 3 and 4 (the executor's protocol pipes, inheritable since they
  // were dup2'ed there) over /dev/null so no process of the command can hold them open.
  o.redirects = {Redirect::Open(STDIN_FILENO, "/dev/null", O_RDONLY),
                 Redirect::Dup(STDERR_FILENO, tee.child_end()),
                 Redirect::Open(3, "/dev/null", O_RDONLY),
                 Redirect::Open(4, "/dev/null", O_RDONLY)};
  GuardedCommand cmd;
  try {
    // In the executor, the command joins its group (the worker's signals reach it); in a gang
    // rank, it leads one of its own (the worker's group is Open MPI's).
    cmd = GuardedCommand::Start(o, in_executor ? ::getpgrp() : 0);
  } catch (const std::system_error& e) {
    throw std::runtime_error(
        fmt::format("cannot start {} (cwd {}): {}", o.argv[0], o.cwd, e.code().message()));
  }
  tee.CloseChildEnd();
  Ended e;
  if (control) {
    GangEnd g = control->Wait(cmd, t.memory_mb, limits,
                              [&](ExitStatus s) { return Describe(s) + Tail(tee); });
    e.status = g.status;
    e.timed_out = g.timed_out;
    e.preempted = g.preempted;
    e.stopped_by = std::move(g.stopped_by);
    e.stopped_by_memory = g.stopped_by_memory;
    e.over_memory = std::move(g.over_memory);
  } else {
    e.status = WaitWithin(cmd, t.memory_mb, &e.over_memory);
  }
  // The guard killed what the command left; when it was itself killed and could not, what
  // stayed in the command's group goes now.
  if (in_executor) {
    KillGroupStragglers();
  } else if (!cmd.reported()) {
    ::kill(-cmd.group(), SIGKILL);
  }
  tee.Stop();
  e.tail = tee.Tail(5);
  return e;
}

void RunCommand(ShardContext& ctx) {
  const ShardTaskView& t = ctx.task();
  if (!t.key.params().contains("argv") || !t.key.params()["argv"].is_array() ||
      t.key.params()["argv"].empty()) {
    throw std::runtime_error("command: params.argv must be a non-empty list");
  }
  GangEnv gang;
  std::optional<GangControl> control;
  if (Collective* c = ctx.collective()) control.emplace(*c, &gang);
  const bool in_executor = !control && ::getpgrp() == ::getpid();
  Dirs d = PrepareDirs(ctx);
  LiveFile(d.scratch + "/metrics.jsonl");  // its lines with a step: live curves (core/live.h)
  std::optional<TermGuard> term;
  if (in_executor) term.emplace();
  const command::GangLimits limits = control ? GangLimitsFor(ctx) : command::GangLimits{};
  Ended e = RunProcess(t, d, control ? &gang : nullptr, control ? &*control : nullptr, limits,
                       ctx.device(), in_executor);
  std::error_code ec;
  fs::remove(d.params_file, ec);
  fs::remove(d.inputs_file, ec);
  if (term) term->ReRaiseIfAsked();
  term.reset();
  const bool ok = e.status.exited() && e.status.code() == 0;
  // 0 ok, 1 failed, 2 timed out, 3 preempted: a gang past its timeout is `timeout` on every
  // rank, a preempted one `preempted` (the coordinator keeps the first rank's answer).
  int failed = e.preempted ? 3 : e.timed_out ? 2 : ok ? 0 : 1;
  if (control) ctx.collective()->AllReduce(&failed, 1, DType::kInt32, ReduceOp::kMax);
  if (!ok || failed) fs::remove_all(d.scratch, ec);
  if (failed == 3) {
    throw ShardFailure(
        Outcome::kPreempted,
        fmt::format("preempted: SIGTERM forwarded to the command, {:.3g} s grace{}",
                    limits.preempt_grace_s, e.preempted ? ", then " + Describe(e.status) : ""));
  }
  if (failed == 2) {
    if (!e.timed_out)
      throw ShardFailure(Outcome::kTimeout, "command: another rank of the gang timed out");
    throw ShardFailure(Outcome::kTimeout,
                       fmt::format("command timeout after {:.3g} s (SIGTERM, {:.3g} s grace): {}{}",
                                   limits.timeout_s, limits.grace_s, Describe(e.status),
                                   e.tail.empty() ? "" : "; last stderr: " + e.tail));
  }
  if (!e.stopped_by.empty()) {
    if (e.stopped_by_memory)
      throw ShardFailure(Outcome::kMemory, "command stopped: " + e.stopped_by);
    throw std::runtime_error("command stopped: " + e.stopped_by);
  }
  if (!e.over_memory.empty()) throw ShardFailure(Outcome::kMemory, e.over_memory);
  if (!ok) {
    throw std::runtime_error(fmt::format("command {}{}", Describe(e.status),
                                         e.tail.empty() ? "" : "; last stderr: " + e.tail));
  }
  if (failed) throw std::runtime_error("command: another rank of the gang failed");
  if (control && gang.rank != 0) {  // only rank 0 publishes
    fs::remove_all(d.scratch, ec);
    return;
  }
  command::PublishResults(d.scratch, d.files, ctx);
  fs::remove_all(d.checkpoint, ec);  // done: nothing left to resume
}

}  // namespace

void RegisterCommandRunners(RunnerRegistry& runners) { runners.Add("command", RunCommand); }

}  // namespace seedgrid

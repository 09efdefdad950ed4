#include "coordinator/coordinator.h"

#include <fcntl.h>
#include <sched.h>
#include <signal.h>
#include <unistd.h>

#include <cerrno>

#include <algorithm>
#include <atomic>
#include <memory>
#include <optional>
#include <chrono>
#include <cstdio>
#include <filesystem>
#include <unordered_map>
#include <unordered_set>

#include <SQLiteCpp/SQLiteCpp.h>
#include <fmt/format.h>

#include "coordinator/launch.h"
#include "coordinator/progress.h"
#include "coordinator/scheduler.h"
#include "core/registry.h"
#include "core/shard_check.h"
#include "core/store.h"
#include "core/sysutil.h"

namespace seedgrid {
namespace {

namespace fs = std::filesystem;

std::atomic<int> g_signal{0};

void OnSignal(int sig) { g_signal.store(sig); }

using Clock = std::chrono::steady_clock;

// Registry events left for idle rounds before the loop writes them regardless (see the loop).
constexpr size_t kRegistryBacklog = 16;

double ThreadCpuSeconds() {
  timespec ts{};
  clock_gettime(CLOCK_THREAD_CPUTIME_ID, &ts);
  return ts.tv_sec + ts.tv_nsec * 1e-9;
}


// Writes scheduler events into the registry, one transaction per batch (a crash loses at most
// the open batch), without holding up dispatch: the coordinator calls Step() when no message
// is waiting, so SQLite fills the time it would otherwise spend polling for the next reply,
// and Commit() every 50 ms. A `running` state is written only at commit time, for shards
// still running then: most short shards are dispatched and finished within one batch, and
// cost two writes, their attempt row and their final state.
class RegistryWriter {
 public:
  // `seqs`: each task's shards.seq (Registry::SetShardStateAt).
  RegistryWriter(Registry& reg, const std::vector<SchedTask>& tasks, std::vector<int64_t> seqs,
                 std::string reg_dir, std::string job_id)
      : reg_(reg), tasks_(tasks), seqs_(std::move(seqs)), running_at_(tasks.size(), 0),
        reg_dir_(std::move(reg_dir)), rows_(Registry::kBulkRows), states_rows_(Registry::kBulkRows) {
    for (auto& r : rows_) r.job_id = job_id;
  }
  ~RegistryWriter() = default;  // an uncommitted batch rolls back (the crash case)

  // Takes a round's events (`events` keeps its capacity): dispatches and joins are noted at
  // once, finished attempts queue for Step().
  void Add(std::vector<SchedEvent>& events) {
    for (auto& e : events) {
      if (auto* f = std::get_if<FinishedEvent>(&e)) {
        if (running_at_[f->task] == f->done.attempt) running_at_[f->task] = 0;
        finished_.push_back(std::move(*f));
      } else if (auto* d = std::get_if<DispatchedEvent>(&e)) {
        running_at_[d->task] = d->attempt;
        dispatched_.push_back(d->task);
      } else if (auto* w = std::get_if<WorkerJoinedEvent>(&e)) {
        hosts_[w->worker.rank] = w->hello;
      }
    }
  }
  // Events not yet committed; finished attempts whose state is not written yet.
  size_t pending() const { return finished_.size() + dispatched_.size(); }
  size_t backlog() const { return finished_.size() - states_; }

  // One statement inside the open transaction, so a round stays short: the attempt rows of
  // the next kBulkRows finished attempts (of one when fewer wait), then their states.
  // False when there is nothing to do.
  bool Step() {
    if (states_ == finished_.size()) return false;
    if (!batch_) batch_.emplace(reg_);
    if (states_ < attempts_) {
      const size_t n = attempts_ - states_;
      for (size_t i = 0; i < n; ++i) FillState(finished_[states_ + i], states_rows_[i]);
      reg_.SetShardStatesAt(std::span(states_rows_).first(n));
      for (size_t i = 0; i < n; ++i) {
        const FinishedEvent& f = finished_[states_ + i];
        if (!f.done.metrics.empty()) reg_.SetMetrics(tasks_[f.task].msg.id, f.done.metrics);
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

  void Commit() {
    while (Step()) {
    }
    if (!batch_) return;
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

 private:
  // The rows' strings keep their capacity from one attempt to the next: no allocation.
  void FillAttempt(const FinishedEvent& f, AttemptRow& a) {
    const ShardDone& d = f.done;
    a.shard.hex = tasks_[f.task].msg.id.hex;
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

  void FillState(const FinishedEvent& f, ShardState& s) {
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

  static inline const std::string kNone;
  Registry& reg_;
  const std::vector<SchedTask>& tasks_;
  std::vector<int64_t> seqs_;
  std::vector<int> running_at_;  // attempt dispatched in this batch and not finished yet (0: none)
  std::vector<int> dispatched_;  // tasks dispatched in this batch
  std::string reg_dir_;
  std::vector<AttemptRow> rows_;  // scratch for AddAttempts; job_id set once
  std::vector<ShardState> states_rows_;  // scratch for SetShardStatesAt
  std::vector<FinishedEvent> finished_;  // in this batch, in order
  size_t attempts_ = 0;  // finished_[0, attempts_) have their attempt row written
  size_t states_ = 0;    // finished_[0, states_) have their state written (states_ <= attempts_)
  std::optional<Registry::Batch> batch_;
  std::unordered_map<int, Hello> hosts_;
};

// Round-trip latencies as the coordinator sees them (benchmarks, `--stats-json`). The first
// completions (the executor's start-up, cold caches) are a warm-up, reported apart: the
// steady-state rate counts from the warm-up's last completion to the last one.
class DispatchStats {
 public:
  explicit DispatchStats(size_t n) : sent_(n, 0), warmup_(std::min<size_t>(1000, n / 10)) {
    rtt_us_.reserve(n);  // no reallocation (a copy of every sample so far) in the loop
  }
  void Observe(const std::vector<SchedEvent>& events) {
    for (const auto& e : events) {
      if (auto* d = std::get_if<DispatchedEvent>(&e)) {
        sent_[d->task] = d->time;
        if (first_ == 0) first_ = d->time;
      } else if (auto* f = std::get_if<FinishedEvent>(&e)) {
        if (f->done.outcome == Outcome::kPreempted) continue;
        if (++finished_ == warmup_) {
          warm_ = f->time;
          warm_cpu_ = ThreadCpuSeconds();
        }
        if (finished_ > warmup_) rtt_us_.push_back((f->time - sent_[f->task]) * 1e6);
        last_ = f->time;
      }
    }
  }
  void ObserveFlush(double seconds) {
    ++flushes_;
    flush_s_ += seconds;
  }
  // Where the loop's time goes (steady clock, ~25 ns a read here): the time since the previous
  // mark is charged to `phase`.
  enum Phase { kMessages, kRegistry, kCommit, kIdle, kOther, kPhases };
  void Mark(Phase phase) {
    auto t = Clock::now();
    if (finished_ > warmup_) phase_s_[phase] += std::chrono::duration<double>(t - mark_).count();
    mark_ = t;
  }
  // Call once the loop is over: the coordinator thread's CPU time since the warm-up.
  void Stop() { stop_cpu_ = ThreadCpuSeconds(); }
  void Write(const std::string& path) {
    double sum = 0;
    for (double r : rtt_us_) sum += r;
    std::sort(rtt_us_.begin(), rtt_us_.end());
    auto q = [&](double p) {
      return rtt_us_.empty() ? 0.0 : rtt_us_[std::min(rtt_us_.size() - 1, size_t(p * rtt_us_.size()))];
    };
    double secs = last_ - (warmup_ > 0 ? warm_ : first_);
    double all_secs = last_ - first_;
    Json j = {{"shards", rtt_us_.size()}, {"seconds", secs},
              {"shards_per_s", secs > 0 ? rtt_us_.size() / secs : 0.0},
              {"rtt_us", {{"p50", q(0.5)}, {"p90", q(0.9)}, {"p99", q(0.99)},
                          {"mean", rtt_us_.empty() ? 0.0 : sum / rtt_us_.size()},
                          {"max", rtt_us_.empty() ? 0.0 : rtt_us_.back()}}},
              {"warmup_shards", warmup_},
              // The coordinator thread's CPU per shard in steady state: what bounds its rate.
              {"coordinator_cpu_us_per_shard",
               rtt_us_.empty() ? 0.0 : (stop_cpu_ - warm_cpu_) * 1e6 / rtt_us_.size()},
              {"all", {{"shards", finished_}, {"seconds", all_secs},
                       {"shards_per_s", all_secs > 0 ? finished_ / all_secs : 0.0}}},
              {"registry_commits", {{"count", flushes_}, {"seconds", flush_s_}}},
              // Coordinator loop time per steady-state shard, by phase (µs).
              {"loop_us_per_shard", PhaseJson()}};
    if (FILE* f = std::fopen(path.c_str(), "w")) {
      std::fputs(j.dump(2).c_str(), f);
      std::fclose(f);
    }
  }

 private:
  std::vector<double> sent_;
  std::vector<double> rtt_us_;
  size_t warmup_;
  size_t finished_ = 0;
  double first_ = 0, warm_ = 0, last_ = 0;
  double warm_cpu_ = 0, stop_cpu_ = 0;
  Clock::time_point mark_ = Clock::now();
  double phase_s_[kPhases] = {};
  Json PhaseJson() const {
    const double n = std::max<double>(1, static_cast<double>(rtt_us_.size()));
    return {{"messages", phase_s_[kMessages] * 1e6 / n}, {"registry", phase_s_[kRegistry] * 1e6 / n},
            {"commit", phase_s_[kCommit] * 1e6 / n}, {"idle", phase_s_[kIdle] * 1e6 / n},
            {"other", phase_s_[kOther] * 1e6 / n}};
  }
  int64_t flushes_ = 0;
  double flush_s_ = 0;
};

const char* RoleName(ShardRole role) {
  return role == ShardRole::kMap ? "map" : role == ShardRole::kReduce ? "reduce" : "single";
}

std::string NeedsJson(const std::vector<ShardId>& needs) {
  std::string j = "[";
  for (const auto& n : needs) j += (j.size() > 1 ? ",\"" : "\"") + n.hex + "\"";
  return j + "]";
}

std::string Env(const char* name) {
  const char* v = std::getenv(name);
  return v ? v : "";
}

}  // namespace

void InstallPreemptionHandlers() {
  struct sigaction sa {};
  sa.sa_handler = OnSignal;
  sigemptyset(&sa.sa_mask);
  for (int s : {SIGTERM, SIGUSR1, SIGINT}) sigaction(s, &sa, nullptr);
}

bool PreemptionRequested() { return g_signal.load() != 0; }
int PreemptionSignal() { return g_signal.load(); }

void AppendLaunchRecord(const std::string& line) {
  const char* f = std::getenv("SEEDGRID_EXIT_FILE");
  if (!f || !*f) return;
  int fd = ::open(f, O_WRONLY | O_APPEND | O_CLOEXEC);
  if (fd < 0) return;  // the launcher is gone: nobody to tell
  for (size_t done = 0; done < line.size();) {
    ssize_t w = ::write(fd, line.data() + done, line.size() - done);
    if (w < 0 && errno == EINTR) continue;
    if (w <= 0) break;
    done += static_cast<size_t>(w);
  }
  ::close(fd);
}

int RankExit(int code) {
  const char* f = std::getenv("SEEDGRID_EXIT_FILE");
  if (!f || !*f) return code;
  AppendLaunchRecord(fmt::format("exit {}\n", code));
  return 0;
}

namespace {

// Worker ranks of this host that have died. When a rank dies, mpirun SIGTERMs the others
// (Open MPI 4: a second after), which rank 0 would take for a preemption; the workers ignore
// SIGTERM (main.cpp), so the dead one is the rank that was lost. Ranks on other hosts cannot
// be looked at from here.
std::vector<int> LostWorkers(const std::unordered_map<int, Hello>& hellos) {
  const std::string here = Hostname();
  std::vector<int> lost;
  for (const auto& [rank, hello] : hellos) {
    if (hello.host == here && !ProcessAlive(static_cast<int>(hello.pid))) lost.push_back(rank);
  }
  std::sort(lost.begin(), lost.end());
  return lost;
}

}  // namespace

void ShutdownWorkers(const MpiSession& mpi, int code) {
  MpiComm comm;
  for (int r = 1; r < mpi.size(); ++r) comm.Send(WorkerId{r}, Shutdown{code});
}

int RunCoordinator(const MpiSession& mpi, const Plan& plan, const CoordinatorOptions& options) {
  const SweepSpec& spec = plan.spec;
  const std::string reg_dir = fs::path(options.registry_path).parent_path().string();
  const int n_workers = mpi.size() - 1;
  if (n_workers < 1) {
    throw UsageError(
        "no worker ranks: run under `mpirun -n N` with N >= 2, or use `seedgrid run --workers K`");
  }
  fs::create_directories(options.out_dir);
  RunLock lock(options.registry_path);
  Registry reg(options.registry_path, Registry::Mode::kWrite);
  const std::string job_id = Env("SLURM_JOB_ID");

  // 1. Record the sweep and its shards; recover what a dead launch left running.
  std::vector<std::string> needs_json(plan.shards.size());
  for (size_t i = 0; i < plan.shards.size(); ++i) needs_json[i] = NeedsJson(plan.shards[i].needs);
  int64_t launch = 0;
  {
    Registry::Batch batch(reg);
    SweepRow row;
    row.name = spec.name;
    row.spec_text = spec.source_text;
    row.spec_hash = spec.Hash();
    row.out_dir = options.out_dir;
    row.git_commit = std::string(GitCommit());
    row.host = Hostname();
    reg.UpsertSweep(row);
    std::vector<ShardSpecRow> rows;
    rows.reserve(plan.shards.size());
    for (size_t i = 0; i < plan.shards.size(); ++i) {
      const ShardPlan& s = plan.shards[i];
      rows.push_back({s.id.hex, spec.name, s.stage, s.stage_index, s.kind, s.params_json,
                      s.axes_json, s.seed, RoleName(s.role), needs_json[i]});
    }
    reg.InsertShardSpecs(rows);
    reg.SetProvenance(spec.name, "spec_path", spec.source_path);
    reg.SetProvenance(spec.name, "overrides", Json(spec.overrides).dump());
    reg.SetProvenance(spec.name, "seedgrid", std::string(SeedgridVersion()));
    reg.SetProvenance(spec.name, "git_commit", std::string(GitCommit()));
    reg.SetProvenance(spec.name, "code_tag", std::string(CodeTag()));
    reg.SetProvenance(spec.name, "mpi", mpi.library_version());
    if (!job_id.empty()) {
      reg.SetProvenance(spec.name, "slurm.job_id", job_id);
      reg.SetProvenance(spec.name, "slurm.nodelist", Env("SLURM_JOB_NODELIST"));
    }
    launch = reg.BeginLaunch(spec.name, Hostname(), ::getpid(), n_workers, job_id);
    int orphans = reg.RecoverOrphans(spec.name);
    if (orphans > 0 && !options.quiet) {
      fmt::print("recovered {} shard(s) left running by an earlier launch\n", orphans);
    }
    batch.Commit();
  }
  WriteSweepSpecFile(options.out_dir, spec);

  // 2. States from the registry, by plan position, reconciled with the files on disk.
  const size_t n = plan.shards.size();
  std::unordered_map<ShardId, int> index;
  index.reserve(n);
  for (size_t i = 0; i < n; ++i) index.emplace(plan.shards[i].id, static_cast<int>(i));
  LaunchStates launch_states = ReconcileLaunch(reg, plan, options.out_dir, reg_dir, index);
  if (!options.quiet) PrintReconciliation(launch_states);
  std::vector<ShardState>& states = launch_states.states;
  std::vector<std::string>& out_paths = launch_states.out_paths;
  std::vector<SchedTask> tasks(n);

  std::vector<std::string> selected_prefixes = options.rerun_shards;
  for (size_t i = 0; i < plan.shards.size(); ++i) {
    const ShardPlan& s = plan.shards[i];
    const ShardState& row = states[i];
    SchedTask& t = tasks[i];
    RunShard& m = t.msg;
    m.id = s.id;
    m.sweep = spec.name;
    m.stage = s.stage;
    m.kind = s.kind;
    m.role = RoleName(s.role);
    m.params_json = s.params_json;
    m.axes_json = s.axes_json;
    m.needs_json = std::move(needs_json[i]);
    m.seed = s.seed;
    m.out_path = out_paths[i];
    m.artifact_dir = ArtifactDirFor(out_paths[i]);
    m.timeout_s = s.resources.timeout_s;
    m.memory_mb = s.resources.memory_mb;
    m.isolation = s.resources.isolation;
    for (const auto& n : s.needs) {
      int j = index.at(n);
      const ShardPlan& dep = plan.shards[j];
      t.needs.push_back(j);
      InputRef in;
      in.id = dep.id;
      in.stage = dep.stage;
      in.kind = dep.kind;
      in.path = out_paths[j];
      in.artifact_dir = ArtifactDirFor(out_paths[j]);
      in.seed = dep.seed;
      in.params_json = dep.params_json;
      in.axes_json = dep.axes_json;
      m.inputs.push_back(std::move(in));
    }
    t.max_attempts = s.resources.max_attempts;
    t.ranks = s.resources.ranks;
    t.status = row.status;
    t.attempts = row.attempts;
    // Attempt numbers continue after the ones already recorded (preempted ones included).
    t.attempt_numbers = std::max(static_cast<int>(row.attempts), launch_states.attempt_numbers[i]);
    // A done shard whose file was lost or damaged is computed again with a fresh budget.
    if (launch_states.recompute[i]) t.budget_base = t.attempts;
    if (options.rerun && row.status == ShardStatus::kFailed) {
      bool chosen = selected_prefixes.empty();
      for (const auto& p : selected_prefixes) chosen = chosen || s.id.hex.rfind(p, 0) == 0;
      if (chosen) {
        t.status = ShardStatus::kPending;
        t.budget_base = t.attempts;  // a rerun grants a fresh attempt budget
      }
    }
  }
  Scheduler sched(std::move(tasks), SchedulerOptions{options.window, 64});
  if (int k = sched.UnsatisfiableRanks(n_workers)) {
    throw UsageError(fmt::format("a stage needs ranks: {} but this launch has only {} worker rank(s)",
                                 k, n_workers));
  }
  std::vector<int64_t> seqs(n);
  for (size_t i = 0; i < n; ++i) seqs[i] = states[i].seq;
  launch_states = {};
  RegistryWriter writer(reg, sched.tasks(), std::move(seqs), reg_dir, job_id);
  std::optional<WalCheckpointer> checkpointer(std::in_place, reg);
  ProgressLine progress(spec.name, sched.counts().total, options.quiet);
  MpiComm comm;
  Poller poller;
  std::string frame;
  int source = 0;
  std::vector<SchedEvent> events;
  auto last_flush = Clock::now();
  auto t0 = Clock::now();
  InstallPreemptionHandlers();
  std::unique_ptr<DispatchStats> stats;
  if (!options.stats_path.empty()) stats = std::make_unique<DispatchStats>(sched.tasks().size());

  // 3. The loop: messages first, registry after the window is refilled.
  while (!sched.Finished()) {
    bool active = false;
    int handled = 0;
    double unix_now = 0;
    while (handled < 256 && TryRecvFrame(&frame, &source)) {
      unix_now = UnixNow();  // per message: a round can outlast a short shard's round trip
      sched.OnMessage(WorkerId{source}, DecodeFromWorker(frame), unix_now, comm);
      ++handled;
      active = true;
    }
    if (stats) stats->Mark(active ? DispatchStats::kMessages : DispatchStats::kIdle);
    if (sched.has_deadlines()) sched.Tick(active ? unix_now : UnixNow(), comm);  // inline/gang shards' timeouts
    if (PreemptionRequested()) {
      sched.Preempt(UnixNow());
    }
    sched.TakeEvents(&events);
    if (!events.empty()) {
      if (stats) stats->Observe(events);
      progress.Observe(events, sched.tasks());
      writer.Add(events);
    }
    // The registry after the window is refilled: one statement per idle round (the time a
    // reply takes to come back), and whatever is needed to keep the backlog short when there
    // are no idle rounds (shards quicker than SQLite): dispatch then goes at the registry's
    // pace, evenly, instead of the writes piling up into a drain of tens of milliseconds at
    // commit, during which every worker would starve. A commit every 50 ms.
    if (stats) stats->Mark(DispatchStats::kOther);
    if (!active && writer.Step()) active = true;
    while (writer.backlog() > kRegistryBacklog && writer.Step()) active = true;
    if (stats) stats->Mark(DispatchStats::kRegistry);
    auto now = Clock::now();
    if (writer.pending() >= 50000 ||
        (writer.pending() > 0 && now - last_flush > std::chrono::milliseconds(50))) {
      writer.Commit();
      last_flush = now;
      if (stats) {
        stats->ObserveFlush(std::chrono::duration<double>(Clock::now() - now).count());
        stats->Mark(DispatchStats::kCommit);
      }
    }
    progress.Tick(sched.counts(), now);
    if (active) {
      poller.Active(now);
    } else if (int ms = poller.WaitMs(now); ms > 0) {
      ::usleep(static_cast<useconds_t>(ms) * 1000);
    } else if (poller.Yield(now)) {
      sched_yield();
    }
  }
  {
    auto tail = sched.TakeEvents();
    if (stats) stats->Observe(tail);
    writer.Add(tail);
  }
  writer.Commit();
  checkpointer.reset();
  if (stats) {
    stats->Stop();  // after the last commit: the registry rows are part of the cost
    stats->Write(options.stats_path);
  }

 
  // 4. Results index, summary, exit code.
  const auto& c = sched.counts();
  int code = exit_code::kOk;
  // A lost worker is not a preemption, although mpirun's SIGTERM made it look like one: its
  // shards in flight (and the others') are marked preempted, not charged, and rerun by the
  // next launch; the sweep exits 3.
  const std::vector<int> lost =
      sched.preempted() ? LostWorkers(sched.hellos()) : std::vector<int>{};
  if (!lost.empty()) {
    code = exit_code::kShardsFailed;
  } else if (sched.preempted()) {
    code = exit_code::kPreempted;
  } else if (c.failed > 0 || c.blocked > 0) {
    code = exit_code::kShardsFailed;
  }
  ShutdownWorkers(mpi, std::getenv("SEEDGRID_EXIT_FILE") ? 0 : code);
  bool index_failed = false;
  {
    // Every done shard of the sweep, shared ones included (they live in the directory of the
    // sweep that computed them first: linked by their path relative to this sweep's).
    const ResultsTargets targets(options.out_dir, spec.name, reg_dir);
    std::vector<std::pair<std::string, std::vector<ResultsLink>>> stages;
    for (const auto& st : spec.stages) stages.push_back({st.name, {}});
    for (const auto& r : reg.ShardStates(spec.name)) {
      if (r.status != ShardStatus::kDone || r.artifact.empty()) continue;
      auto it = index.find(r.id);
      std::string stage;
      if (it != index.end()) {
        stage = plan.shards[it->second].stage;
      } else if (auto full = reg.Shard(r.id)) {  // from an earlier version of the spec
        stage = full->stage;
      }
      for (auto& [name, links] : stages) {
        if (name == stage) links.push_back({r.id, targets.For(r.artifact)});
      }
    }
    try {
      WriteResultsIndex(options.out_dir, spec.name, stages);
    } catch (const std::exception& e) {
      // A full disk or a quota: the registry (maybe elsewhere) has every outcome, but a
      // results.h5 that lists fewer shards than are done must not pass for a complete sweep.
      // The next launch of the same sweep rewrites it and recomputes nothing.
      fmt::print(stderr, "seedgrid: could not write results.h5: {}\n", e.what());
      if (code == exit_code::kOk) {
        code = exit_code::kShardsFailed;
        index_failed = true;
      }
    }
  }
  {
    Registry::Batch batch(reg);
    reg.EndLaunch(launch, code);
    batch.Commit();
  }
  double secs = std::chrono::duration<double>(Clock::now() - t0).count();
  progress.Finish(c, secs);
  if (code == exit_code::kPreempted) {
    fmt::print("preempted by signal {} ({}): in-flight shards are marked preempted (not charged).\n"
               "resume with: {}\n",
               PreemptionSignal(), sigabbrev_np(PreemptionSignal()) ? sigabbrev_np(PreemptionSignal()) : "?",
               options.resume_hint);
  } else if (!lost.empty()) {
    for (int r : lost) {
      const Hello& h = sched.hellos().at(r);
      fmt::print("lost worker rank {} on host {} (pid {}): it died during the sweep (killed or "
                 "crashed) and MPI ends the job with it\n", r, h.host, h.pid);
      AppendLaunchRecord(fmt::format("lost {}\n", r));
    }
    fmt::print("{} shard(s) in flight are marked preempted (not charged) and {} more are pending; "
               "resume with: {}\n", c.preempted, c.pending + c.blocked, options.resume_hint);
  } else if (code == exit_code::kShardsFailed) {
    const int64_t behind = c.blocked - c.stranded;
    if (c.failed > 0) {
      fmt::print("{} shard(s) failed after retries{}; see `seedgrid status {}`, fix, then "
                 "`seedgrid rerun {} --failed`\n",
                 c.failed, behind > 0 ? fmt::format(" ({} more blocked behind them)", behind) : "",
                 spec.name, spec.name);
    }
    if (c.stranded > 0) {
      fmt::print("{} shard(s) could not run: too few worker ranks were left after retiring rank(s) "
                 "{}; they stay pending for the next launch\n",
                 c.stranded, fmt::join(sched.retired(), ", "));
    }
  }
  if (index_failed) {
    fmt::print("every shard is done, but {}/{}/results.h5 could not be written (see above); "
               "free space, then run the same command again to write it\n",
               options.out_dir, spec.name);
  }
  std::fflush(stdout);
  if (!sched.retired().empty()) {
    // A retired rank is stuck inside a shard's code: it will never read Shutdown nor reach
    // MPI_Finalize, where the other ranks would wait for it. The registry and results.h5 are
    // written; the exit code goes to the self-launcher's file first, then the job is aborted
    // (mpirun exits with the same code).
    fmt::print(stderr, "seedgrid: worker rank(s) {} stuck in a shard past its timeout: aborting "
               "the MPI job (exit code {})\n", fmt::join(sched.retired(), ", "), code);
    std::fflush(stderr);
    RankExit(code);
    MPI_Abort(MPI_COMM_WORLD, code);
  }
  return code;
}

}  // namespace seedgrid

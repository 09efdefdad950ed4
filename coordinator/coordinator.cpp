#include "coordinator/coordinator.h"

#include <fcntl.h>
#include <sched.h>
#include <signal.h>
#include <unistd.h>

#include <cerrno>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <memory>
#include <unordered_map>

#include <fmt/format.h>

#include "coordinator/dispatch_stats.h"
#include "coordinator/launch.h"
#include "coordinator/progress.h"
#include "coordinator/registry_writer.h"
#include "coordinator/scheduler.h"
#include "coordinator/tasks.h"
#include "core/registry.h"
#include "core/store.h"
#include "core/sysutil.h"
#include "transport/mpi_comm.h"
#include "transport/poller.h"

namespace seedgrid {
namespace {

namespace fs = std::filesystem;

std::atomic<int> g_signal{0};

void OnSignal(int sig) { g_signal.store(sig); }

using Clock = std::chrono::steady_clock;

// Registry events left for idle rounds before the loop writes them regardless (see the loop).
constexpr size_t kRegistryBacklog = 16;

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
// SIGTERM (app/main.cpp), so the dead one is the rank that was lost. Ranks on other hosts cannot
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

namespace {

// What the steps of a launch share.
struct Launch {
  const MpiSession& mpi;
  const Plan& plan;
  const CoordinatorOptions& options;
  const std::string reg_dir;  // the registry's directory
  Registry& reg;
  const std::unordered_map<ShardId, int> index;  // plan position of each shard id
  int64_t row = 0;                               // the launch row (RecordLaunch)
};

// The loop: messages first, the registry after the window is refilled, until the scheduler is
// finished; then every event is committed. Per round it reads at most 256 messages, then
// timeouts (only while a deadline is held) and the preemption flag, hands the round's events to
// the writer (and the progress line, and `stats` when benchmarking), and waits as the Poller
// says. Nothing here allocates or calls virtually per message but the scheduler's own Comm.
void DispatchLoop(Scheduler& sched, Registry& reg, RegistryWriter& writer, ProgressLine& progress,
                  DispatchStats* stats) {
  WalCheckpointer checkpointer(reg);
  MpiComm comm;
  Poller poller;
  std::string frame;
  WorkerId source;
  std::vector<SchedEvent> events;
  auto last_flush = Clock::now();
  InstallPreemptionHandlers();
  while (!sched.Finished()) {
    bool active = false;
    int handled = 0;
    double unix_now = 0;
    while (handled < 256 && comm.TryRecv(&frame, &source)) {
      unix_now = UnixNow();  // per message: a round can outlast a short shard's round trip
      sched.OnMessage(source, DecodeFromWorker(frame), unix_now, comm);
      ++handled;
      active = true;
    }
    if (stats) stats->Mark(active ? DispatchStats::kMessages : DispatchStats::kIdle);
    if (sched.has_deadlines())
      sched.Tick(active ? unix_now : UnixNow(), comm);  // inline/gang shards' timeouts
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
  auto tail = sched.TakeEvents();
  if (stats) stats->Observe(tail);
  writer.Add(tail);
  writer.Commit();
}

// The sweep's exit code. A lost worker is not a preemption, although mpirun's SIGTERM made it
// look like one: its shards in flight (and the others') are marked preempted, not charged, and
// rerun by the next launch; the sweep exits 3.
int SweepExitCode(const Scheduler& sched, bool lost_workers) {
  const SchedCounts& c = sched.counts();
  if (lost_workers) return exit_code::kShardsFailed;
  if (sched.preempted()) return exit_code::kPreempted;
  if (c.failed > 0 || c.blocked > 0) return exit_code::kShardsFailed;
  return exit_code::kOk;
}

// runs/<sweep>/results.h5: every done shard of the sweep, shared ones included (they live in
// the directory of the sweep that computed them first: linked by their path relative to this
// sweep's). False, said on stderr, when it could not be written.
bool PublishResultsIndex(const Launch& l) {
  const SweepSpec& spec = l.plan.spec;
  const ResultsTargets targets(l.options.out_dir, spec.name, l.reg_dir);
  std::vector<std::pair<std::string, std::vector<ResultsLink>>> stages;
  for (const auto& st : spec.stages) stages.push_back({st.name, {}});
  for (const auto& r : l.reg.ShardStates(spec.name)) {
    if (r.status != ShardStatus::kDone || r.artifact.empty()) continue;
    auto it = l.index.find(r.id);
    std::string stage;
    if (it != l.index.end()) {
      stage = l.plan.shards[it->second].key.stage();
    } else if (auto full = l.reg.Shard(r.id)) {  // from an earlier version of the spec
      stage = full->key.stage();
    }
    for (auto& [name, links] : stages) {
      if (name == stage) links.push_back({r.id, targets.For(r.artifact)});
    }
  }
  try {
    WriteResultsIndex(l.options.out_dir, spec.name, stages);
    return true;
  } catch (const std::exception& e) {
    fmt::print(stderr, "seedgrid: could not write results.h5: {}\n", e.what());
    return false;
  }
}

// What the end of the sweep means and what to do next, on stdout (lost ranks also go to the
// launch record).
void PrintOutcome(const Launch& l, const Scheduler& sched, int code, const std::vector<int>& lost,
                  bool index_failed) {
  const SchedCounts& c = sched.counts();
  const std::string& sweep = l.plan.spec.name;
  if (code == exit_code::kPreempted) {
    fmt::print(
        "preempted by signal {} ({}): in-flight shards are marked preempted (not charged).\n"
        "resume with: {}\n",
        PreemptionSignal(),
        sigabbrev_np(PreemptionSignal()) ? sigabbrev_np(PreemptionSignal()) : "?",
        l.options.resume_hint);
  } else if (!lost.empty()) {
    for (int r : lost) {
      const Hello& h = sched.hellos().at(r);
      fmt::print(
          "lost worker rank {} on host {} (pid {}): it died during the sweep (killed or "
          "crashed) and MPI ends the job with it\n",
          r, h.host, h.pid);
      AppendLaunchRecord(fmt::format("lost {}\n", r));
    }
    fmt::print(
        "{} shard(s) in flight are marked preempted (not charged) and {} more are pending; "
        "resume with: {}\n",
        c.preempted, c.pending + c.blocked, l.options.resume_hint);
  } else if (code == exit_code::kShardsFailed) {
    const int64_t behind = c.blocked - c.stranded;
    if (c.failed > 0) {
      fmt::print(
          "{} shard(s) failed after retries{}; see `seedgrid status {}`, fix, then "
          "`seedgrid rerun {} --failed`\n",
          c.failed, behind > 0 ? fmt::format(" ({} more blocked behind them)", behind) : "", sweep,
          sweep);
    }
    if (c.stranded > 0) {
      fmt::print(
          "{} shard(s) could not run: too few worker ranks were left after retiring rank(s) "
          "{}; they stay pending for the next launch\n",
          c.stranded, fmt::join(sched.retired(), ", "));
    }
  }
  if (index_failed) {
    fmt::print(
        "every shard is done, but {}/{}/results.h5 could not be written (see above); "
        "free space, then run the same command again to write it\n",
        l.options.out_dir, sweep);
  }
}

// The finish: workers told to shut down, the results index, the launch row ended, what it
// means printed; returns the exit code (see RunCoordinator about retired ranks).
int FinishLaunch(const Launch& l, const Scheduler& sched, ProgressLine& progress,
                 Clock::time_point start) {
  const std::vector<int> lost =
      sched.preempted() ? LostWorkers(sched.hellos()) : std::vector<int>{};
  int code = SweepExitCode(sched, !lost.empty());
  ShutdownWorkers(l.mpi, std::getenv("SEEDGRID_EXIT_FILE") ? 0 : code);
  bool index_failed = false;
  if (!PublishResultsIndex(l) && code == exit_code::kOk) {
    // A full disk or a quota: the registry (maybe elsewhere) has every outcome, but a
    // results.h5 that lists fewer shards than are done must not pass for a complete sweep.
    // The next launch of the same sweep rewrites it and recomputes nothing.
    code = exit_code::kShardsFailed;
    index_failed = true;
  }
  {
    Registry::Batch batch(l.reg);
    l.reg.EndLaunch(l.row, code);
    batch.Commit();
  }
  progress.Finish(sched.counts(), std::chrono::duration<double>(Clock::now() - start).count());
  PrintOutcome(l, sched, code, lost, index_failed);
  std::fflush(stdout);
  if (!sched.retired().empty()) {
    // A retired rank is stuck inside a shard's code: it will never read Shutdown nor reach
    // MPI_Finalize, where the other ranks would wait for it. The registry and results.h5 are
    // written; the exit code goes to the self-launcher's file first, then the job is aborted
    // (mpirun exits with the same code).
    fmt::print(stderr,
               "seedgrid: worker rank(s) {} stuck in a shard past its timeout: aborting "
               "the MPI job (exit code {})\n",
               fmt::join(sched.retired(), ", "), code);
    std::fflush(stderr);
    RankExit(code);
    MPI_Abort(MPI_COMM_WORLD, code);
  }
  return code;
}

}  // namespace

int RunCoordinator(const MpiSession& mpi, const Plan& plan, const CoordinatorOptions& options) {
  const int n_workers = mpi.size() - 1;
  if (n_workers < 1) {
    throw UsageError(
        "no worker ranks: run under `mpirun -n N` with N >= 2, or use `seedgrid run --workers K`");
  }
  fs::create_directories(options.out_dir);
  RunLock lock(options.registry_path);
  Registry reg(options.registry_path, Registry::Mode::kWrite);
  const std::string job_id = Env("SLURM_JOB_ID");
  Launch l{mpi, plan,           options, fs::path(options.registry_path).parent_path().string(),
           reg, PlanIndex(plan)};

  // 1. Record the launch; 2. the shards' states, reconciled with the files on disk.
  l.row = RecordLaunch(reg, plan,
                       LaunchFacts{options.out_dir, mpi.library_version(), n_workers, job_id,
                                   Env("SLURM_JOB_NODELIST"), options.quiet});
  WriteSweepSpecFile(options.out_dir, plan.spec);
  std::vector<int64_t> seqs(plan.shards.size());
  std::vector<SchedTask> tasks;
  {
    const LaunchStates states = ReconcileLaunch(reg, plan, options.out_dir, l.reg_dir, l.index);
    if (!options.quiet) PrintReconciliation(states);
    for (size_t i = 0; i < seqs.size(); ++i) seqs[i] = states.states[i].seq;
    tasks = BuildTasks(plan, states, RerunOptions{options.rerun, options.rerun_shards});
  }
  Scheduler sched(std::move(tasks), SchedulerOptions{options.window, 64});
  if (int k = sched.UnsatisfiableRanks(n_workers)) {
    throw UsageError(fmt::format(
        "a stage needs ranks: {} but this launch has only {} worker rank(s)", k, n_workers));
  }

  // 3. The loop; 4. the finish.
  RegistryWriter writer(reg, sched.tasks(), std::move(seqs), l.reg_dir, job_id);
  ProgressLine progress(plan.spec.name, sched.counts().total, options.quiet);
  const auto start = Clock::now();
  std::unique_ptr<DispatchStats> stats;
  if (!options.stats_path.empty()) stats = std::make_unique<DispatchStats>(sched.tasks().size());
  DispatchLoop(sched, reg, writer, progress, stats.get());
  if (stats) {
    stats->Stop();  // after the last commit: the registry rows are part of the cost
    stats->Write(options.stats_path);
  }
  return FinishLaunch(l, sched, progress, start);
}

}  // namespace seedgrid

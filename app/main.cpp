// seedgrid: one binary, subcommands. `run` and `rerun` are MPI programs (rank 0 coordinates,
// ranks >= 1 work); started without an MPI launcher they relaunch themselves under mpirun.
// `exec` is the hidden executor child of a worker.
#include <malloc.h>
#include <signal.h>
#include <sys/mman.h>
#include <sys/prctl.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <set>
#include <sstream>
#include <string>
#include <system_error>
#include <thread>
#include <vector>

#include <fmt/format.h>
#include <CLI/CLI.hpp>

#include "coordinator/commands.h"
#include "coordinator/coordinator.h"
#include "coordinator/logs.h"
#include "coordinator/report/report.h"
#include "coordinator/serve/serve.h"
#include "coordinator/submit/submit.h"
#include "core/process.h"
#include "core/registry.h"
#include "core/spec.h"
#include "core/strings.h"
#include "core/sysutil.h"
#include "experiments/model/checkpoint.h"
#include "experiments/model/model_cli.h"
#include "text/cli.h"
#include "transport/mpi.h"
#include "worker/executor.h"
#include "worker/worker.h"

namespace fs = std::filesystem;
using namespace seedgrid;

namespace {

struct SweepArgs {
  std::string spec;
  std::vector<std::string> overrides;
  std::string out;
  std::string registry;
  bool dry_run = false;
  int workers = 0;
  int window = 2;
  size_t max_shards = kDefaultMaxShards;
  bool quiet = false;
  std::string stats;
  // rerun
  std::string sweep;
  bool failed = false;
  std::vector<std::string> shards;
};

struct LoadedPlan {
  Plan plan;
  std::string out_dir;
  std::string registry;
};

// The spec of a run or a rerun, with where it writes.
struct LoadedSpec {
  SweepSpec spec;
  std::string out_dir;
  std::string registry;
};

// Where DefaultRegistryPath found a reading command's registry.
std::string_view ReadRegistrySource(const std::string& flag) {
  if (!flag.empty()) return "--registry";
  if (!Env("SEEDGRID_REGISTRY").empty()) return "SEEDGRID_REGISTRY";
  return "the default: runs/registry.sqlite under the current directory";
}

LoadedSpec LoadSpecForRun(const SweepArgs& a) {
  LoadedSpec ls;
  ls.spec = LoadSpec(a.spec, a.overrides, AllKinds());
  ls.out_dir = fs::absolute(a.out.empty() ? ls.spec.out : a.out).lexically_normal().string();
  ls.registry = a.registry.empty() ? (fs::path(ls.out_dir) / "registry.sqlite").string()
                                   : fs::absolute(a.registry).lexically_normal().string();
  return ls;
}

LoadedSpec LoadSpecForRerun(const SweepArgs& a) {
  LoadedSpec ls;
  ls.registry = DefaultRegistryPath(a.registry);
  Registry reg(ls.registry, Registry::Mode::kReadOnly);
  auto sweep = reg.Sweep(a.sweep);
  if (!sweep) throw UsageError(fmt::format("no sweep '{}' in {}", a.sweep, ls.registry));
  if (sweep->spec_text.empty()) {
    throw UsageError(
        fmt::format("sweep '{}' was rebuilt by reindex and has no spec: run its spec "
                    "again with `seedgrid run`",
                    a.sweep));
  }
  auto prov = reg.Provenance(a.sweep);
  std::vector<std::string> overrides;
  if (auto it = prov.find("overrides"); it != prov.end() && !it->second.empty()) {
    overrides = Json::parse(it->second).get<std::vector<std::string>>();
  }
  std::string path = prov.count("spec_path") ? prov["spec_path"] : a.sweep + ".yaml";
  ls.spec = ParseSpec(sweep->spec_text, path, overrides, AllKinds());
  ls.out_dir = sweep->out_dir;
  return ls;
}

LoadedPlan LoadPlan(const SweepArgs& a, bool rerun) {
  LoadedSpec ls = rerun ? LoadSpecForRerun(a) : LoadSpecForRun(a);
  CheckSpecCheckpoints(ls.spec);  // issue 16: bad checkpoints are exit 2 before any dispatch
  LoadedPlan lp;
  lp.plan = ExpandSpec(ls.spec, AllKinds(), a.max_shards);
  lp.out_dir = std::move(ls.out_dir);
  lp.registry = std::move(ls.registry);
  return lp;
}

// Which registry a command reads or writes, on stderr: a relative default depends on the
// current directory, which should not go unsaid.
void SayRegistry(const std::string& path, std::string_view source) {
  fmt::print(stderr, "registry: {} ({})\n", path, source);
}

std::string_view RunRegistrySource(const SweepArgs& a, bool rerun) {
  if (!a.registry.empty()) return "--registry";
  if (rerun) return ReadRegistrySource("");
  return a.out.empty() ? "<out>/registry.sqlite, out as the spec says"
                       : "<out>/registry.sqlite, --out";
}

// The registry of a reading command (status, report): said, and required to exist.
std::string ReadRegistry(const std::string& flag) {
  const std::string path = DefaultRegistryPath(flag);
  SayRegistry(path, ReadRegistrySource(flag));
  if (!fs::exists(path)) {
    throw UsageError(fmt::format(
        "no registry at {}: run a sweep first, or name its registry with --registry FILE or "
        "SEEDGRID_REGISTRY (a sweep's registry is <out>/registry.sqlite)",
        path));
  }
  return path;
}

// What the self-launcher checks before it starts MPI (throws SpecError/UsageError).
void CheckForLaunch(const SweepArgs& a, bool rerun) {
  LoadedSpec ls = rerun ? LoadSpecForRerun(a) : LoadSpecForRun(a);
  CountShards(ls.spec, AllKinds(), a.max_shards);
  CheckSpecCheckpoints(ls.spec);
}

// The self-launcher's side of the launch record (format in coordinator/coordinator.h): a
// memfd the ranks append to through /proc/<our pid>/fd/<n>. Being a memfd, it vanishes with
// us, whatever kills us: no exit file is left in /tmp or anywhere.
class LaunchRecord {
 public:
  struct Rank {
    int rank = -1;
    long pid = 0;
    std::string host;
    bool ended = false;  // said bye (a worker) or exit (rank 0)
  };

  LaunchRecord() : fd_(::memfd_create("seedgrid-launch", MFD_CLOEXEC)) {
    if (fd_ < 0) {
      throw std::system_error(errno, std::generic_category(), "memfd_create for the launch record");
    }
  }
  ~LaunchRecord() { ::close(fd_); }
  LaunchRecord(const LaunchRecord&) = delete;
  LaunchRecord& operator=(const LaunchRecord&) = delete;

  std::string path() const { return fmt::format("/proc/{}/fd/{}", ::getpid(), fd_); }

  // Reads the lines appended since the last call.
  void Read() {
    char tmp[4096];
    for (;;) {
      ssize_t n = ::pread(fd_, tmp, sizeof tmp, offset_);
      if (n < 0 && errno == EINTR) continue;
      if (n <= 0) break;
      offset_ += n;
      pending_.append(tmp, static_cast<size_t>(n));
    }
    for (size_t nl; (nl = pending_.find('\n')) != std::string::npos; pending_.erase(0, nl + 1)) {
      Parse(pending_.substr(0, nl));
    }
  }

  // Until rank 0 has its exit code: a rank of this host whose process has ended without its
  // bye/exit line is lost. Open MPI leaves a second between a rank's death and its SIGTERM to
  // the others, and the workers ignore that SIGTERM: a poll every 50 ms finds the first dead.
  // Reads the record too.
  void WatchRanks() {
    Read();
    if (exit_code_ >= 0 || !lost_.empty()) return;
    const std::string here = Hostname();
    std::vector<Rank> gone;
    for (const Rank& r : ranks_) {
      if (!r.ended && r.host == here && !ProcessAlive(static_cast<int>(r.pid))) gone.push_back(r);
    }
    // Rank 0 may have written its exit code (and ended the job) since: then the order is
    // unknown, and rank 0's code stands.
    Read();
    if (exit_code_ < 0) lost_ = std::move(gone);
  }

  int exit_code() const { return exit_code_; }  // -1: rank 0 wrote none
  const std::vector<Rank>& lost() const { return lost_; }
  bool named_by_rank0(int rank) const { return named_.count(rank) > 0; }

 private:
  void Parse(const std::string& line) {
    std::istringstream in(line);
    std::string what;
    in >> what;
    if (what == "rank") {
      Rank r;
      if (in >> r.rank >> r.pid >> r.host) ranks_.push_back(r);
    } else if (what == "bye") {
      int rank = -1;
      if (!(in >> rank)) return;
      for (Rank& r : ranks_) {
        if (r.rank == rank) r.ended = true;
      }
    } else if (what == "lost") {
      int rank = -1;
      if (in >> rank) named_.insert(rank);
    } else if (what == "exit") {
      int code = -1;
      if (in >> code) exit_code_ = code;
      for (Rank& r : ranks_) r.ended |= r.rank == 0;
    }
  }

  int fd_;
  off_t offset_ = 0;
  std::string pending_;
  std::vector<Rank> ranks_;
  std::vector<Rank> lost_;
  std::set<int> named_;
  int exit_code_ = -1;
};

volatile sig_atomic_t g_forwarded = 0;  // the launcher passed a preemption signal on
pid_t g_mpirun = 0;

void ForwardPreemption(int) {
  g_forwarded = 1;
  if (g_mpirun > 0) ::kill(g_mpirun, SIGUSR1);
}

// The sweep's exit code from what the launch left: a lost rank (3; 0 when rank 0 had
// finished the whole sweep anyway), else rank 0's code, else mpirun's failure (1).
int LaunchExitCode(const LaunchRecord& record, int status) {
  if (!record.lost().empty()) {
    for (const auto& r : record.lost()) {
      if (record.named_by_rank0(r.rank)) continue;  // rank 0 has said it, with its shards
      fmt::print(stderr,
                 "seedgrid: lost {} on host {} (pid {}): it ended during the sweep without being "
                 "told to (killed or crashed), and MPI ended the job. Its shards in flight are not "
                 "charged: they stay pending for the next launch; resume by running the same "
                 "command again.\n",
                 r.rank == 0 ? std::string("rank 0 (the coordinator)")
                             : fmt::format("worker rank {}", r.rank),
                 r.host, r.pid);
    }
    return record.exit_code() == exit_code::kOk ? exit_code::kOk : exit_code::kShardsFailed;
  }
  if (record.exit_code() >= 0) return record.exit_code();
  if (WIFEXITED(status) && WEXITSTATUS(status) != 0) return WEXITSTATUS(status);
  fmt::print(stderr, "seedgrid: the MPI job ended without a result ({})\n",
             WIFSIGNALED(status) ? fmt::format("mpirun killed by signal {}", WTERMSIG(status))
                                 : fmt::format("mpirun exit status {}", WEXITSTATUS(status)));
  return exit_code::kInternal;
}

// Not under mpirun/srun: start ourselves under mpirun with 1 coordinator + K workers.
int SelfLaunch(int argc, char** argv, int workers) {
  if (workers <= 0)
    workers = std::max(1, static_cast<int>(std::thread::hardware_concurrency()) - 1);
  const char* mpirun_env = std::getenv("SEEDGRID_MPIRUN");
  std::string mpirun = mpirun_env && *mpirun_env ? mpirun_env : "mpirun";
  std::vector<std::string> args = {
      mpirun, "-n", std::to_string(workers + 1), "--oversubscribe", "--bind-to", "none"};
  if (::geteuid() == 0) {
    setenv("OMPI_ALLOW_RUN_AS_ROOT", "1", 0);
    setenv("OMPI_ALLOW_RUN_AS_ROOT_CONFIRM", "1", 0);
  }
  if (!std::getenv("SEEDGRID_PROGRESS"))
    setenv("SEEDGRID_PROGRESS", ::isatty(1) ? "tty" : "plain", 1);
  // Every rank is on this node: shared memory is the only transport needed. Open MPI's TCP
  // transport, once loaded, makes every MPI_Iprobe also poll(2) its sockets, a syscall per
  // polling round that doubles a short shard's round trip (BENCHMARKS.md). OMPI_MCA_btl set by
  // the user wins.
  setenv("OMPI_MCA_btl", "self,vader", 0);
  args.push_back(SelfExe("seedgrid"));
  for (int i = 1; i < argc; ++i) args.push_back(argv[i]);
  // The ranks exit 0 and rank 0 leaves the sweep's exit code in the launch record: a rank
  // exiting non-zero would make mpirun abort the job with a page of noise.
  LaunchRecord record;
  setenv("SEEDGRID_EXIT_FILE", record.path().c_str(), 1);
  std::fflush(stdout);
  SpawnOptions spawn;
  spawn.argv = std::move(args);
  // mpirun, and with it the job, ends with us: SIGTERM is its signal to stop the job.
  spawn.parent_death_signal = SIGTERM;
  Child mpirun_child;
  try {
    mpirun_child = Spawn(spawn);
  } catch (const std::system_error& e) {
    fmt::print(stderr,
               "seedgrid: cannot start {}: {} (install openmpi-bin, or set SEEDGRID_MPIRUN)\n",
               mpirun, e.code().message());
    return exit_code::kUsage;
  }
  const pid_t child = mpirun_child.pid();
  // Preemption signals go to mpirun as SIGUSR1, which it forwards to every rank: the
  // coordinator then marks in-flight shards preempted and exits 4 (workers ignore it).
  g_mpirun = child;
  struct sigaction sa {};
  sa.sa_handler = ForwardPreemption;
  sigemptyset(&sa.sa_mask);
  for (int sig : {SIGTERM, SIGUSR1, SIGINT}) sigaction(sig, &sa, nullptr);
  int status = 0;
  for (;;) {
    if (auto done = mpirun_child.TryWait()) {
      status = done->raw();
      break;
    }
    if (g_forwarded) {
      record.Read();  // after a preemption the ranks end as they may
    } else {
      record.WatchRanks();
    }
    ::usleep(50'000);
  }
  record.Read();
  return LaunchExitCode(record, status);
}

int RunSweep(int argc, char** argv, const SweepArgs& a, bool rerun) {
  if (!UnderMpiLauncher()) {
    // Validate before anything starts: an invalid spec exits 2 and writes nothing. Counting is
    // enough (rank 0 expands the plan and checks the rest before it writes anything).
    if (a.dry_run) {
      LoadedPlan lp = LoadPlan(a, rerun);
      SayRegistry(lp.registry, RunRegistrySource(a, rerun));
      return PrintDryRun(lp.plan, lp.registry);
    }
    CheckForLaunch(a, rerun);
    return SelfLaunch(argc, argv, a.workers);
  }
  MpiSession mpi(&argc, &argv);
  AppendLaunchRecord(fmt::format("rank {} {} {}\n", mpi.rank(), ::getpid(), Hostname()));
  if (mpi.rank() != 0) {
    // Workers leave signals to the coordinator and wait for its Shutdown. SIGTERM too: Open
    // MPI sends it to every rank when one dies, and Slurm to every task when it preempts; a
    // worker that died of it could not be told from the rank that was lost.
    ::signal(SIGUSR1, SIG_IGN);
    ::signal(SIGINT, SIG_IGN);
    ::signal(SIGTERM, SIG_IGN);
    WorkerOptions wo;
    wo.binary = SelfExe("seedgrid");
    int code = RunWorker(mpi, wo);
    AppendLaunchRecord(fmt::format("bye {}\n", mpi.rank()));
    return std::getenv("SEEDGRID_EXIT_FILE") ? 0 : code;
  }
  InstallPreemptionHandlers();
  int code = exit_code::kInternal;
  try {
    LoadedPlan lp = LoadPlan(a, rerun);
    if (!a.quiet) SayRegistry(lp.registry, RunRegistrySource(a, rerun));
    if (!a.quiet && !a.dry_run && !lp.plan.collapsed.empty()) {
      fmt::print(
          "{} config(s) collapsed into identical shards (params that do not apply to "
          "them); `--dry-run` lists them\n",
          lp.plan.collapsed.size());
    }
    if (a.dry_run) {
      PrintDryRun(lp.plan, lp.registry);
      ShutdownWorkers(mpi, 0);
      return 0;
    }
    CoordinatorOptions co;
    co.registry_path = lp.registry;
    co.out_dir = lp.out_dir;
    co.window = a.window;
    co.quiet = a.quiet;
    co.stats_path = a.stats.empty() ? "" : fs::absolute(a.stats).string();
    co.rerun = rerun;
    co.rerun_shards = a.shards;
    std::string hint;  // the spec by its absolute path: the user may resume from elsewhere
    if (rerun) {
      hint = "seedgrid rerun " + ShellQuote(lp.plan.spec.name) + " --registry " +
             ShellQuote(lp.registry);
    } else {
      hint = "seedgrid run " + ShellQuote(fs::absolute(a.spec).lexically_normal().string());
      for (const auto& o : a.overrides) hint += " " + ShellQuote(o);
      hint += " --out " + ShellQuote(lp.out_dir) + " --registry " + ShellQuote(lp.registry);
    }
    co.resume_hint = hint;
    return RankExit(RunCoordinator(mpi, lp.plan, co));
  } catch (const SpecError& e) {
    fmt::print(stderr, "seedgrid: {}\n", e.what());
    code = exit_code::kUsage;
  } catch (const UsageError& e) {
    fmt::print(stderr, "seedgrid: {}\n", e.what());
    code = exit_code::kUsage;
  } catch (const std::exception& e) {
    fmt::print(stderr, "seedgrid: internal error: {}\n", e.what());
    code = exit_code::kInternal;
  }
  ShutdownWorkers(mpi, code);
  return RankExit(code);
}

void AddSweepFlags(CLI::App* cmd, SweepArgs& a) {
  cmd->add_option("--registry", a.registry, "Registry file (default <out>/registry.sqlite)");
  cmd->add_option("--workers", a.workers,
                  "Worker ranks when started without mpirun/srun (default: cores - 1)");
  cmd->add_option("--window", a.window, "Shards in flight per worker (1 or 2)")
      ->check(CLI::Range(1, 8));
  cmd->add_flag("--dry-run", a.dry_run, "Print the shard table and write nothing");
  cmd->add_option("--max-shards", a.max_shards, "Refuse specs that expand to more shards");
  cmd->add_flag("-q,--quiet", a.quiet, "No progress output");
  cmd->add_option("--stats-json", a.stats,
                  "Write dispatch statistics (throughput, round-trip percentiles) to this file");
}

// Every flag of every subcommand, filled by CLI11's parse.
struct CliArgs {
  SweepArgs run, rerun;
  std::string registry;          // --registry of status, ls, show, reindex, report
  std::string sweep;             // status
  std::string shard;             // show
  std::string out_dir = "runs";  // reindex
  bool json = false;
  std::string kind;  // kinds
  bool yaml = false, markdown = false;
  ReportOptions report;
  std::string formats;  // report --format, comma-separated
  SubmitOptions submit;
  LogsOptions logs;
  serve::ServeOptions serve;
  text::TokenizeArgs tokenize;
};

struct Subcommands {
  CLI::App *run, *rerun, *status, *ls, *show, *logs, *reindex, *kinds, *report, *submit, *serve,
      *tokenize;
};

// run and rerun: the sweep-running subcommands.
void AddSweepCommands(CLI::App& app, CliArgs& a, Subcommands& c) {
  c.run = app.add_subcommand("run", "Run a sweep spec (resumes whatever is not done)");
  c.run->add_option("spec", a.run.spec, "Sweep spec (YAML)")->required()->check(CLI::ExistingFile);
  c.run->add_option("overrides", a.run.overrides,
                    "key=value overrides (dotted paths, YAML values)");
  c.run->add_option("--out", a.run.out, "Artifacts root (default: the spec's `out`, runs)");
  AddSweepFlags(c.run, a.run);

  c.rerun =
      app.add_subcommand("rerun", "Re-queue failed, preempted and orphaned shards of a sweep");
  c.rerun->add_option("sweep", a.rerun.sweep, "Sweep name")->required();
  c.rerun->add_flag("--failed", a.rerun.failed, "Failed shards (the default)");
  c.rerun->add_option("--shards", a.rerun.shards, "Only these failed shards (id prefixes)");
  AddSweepFlags(c.rerun, a.rerun);
}

// status, ls, show, logs, reindex, kinds: the registry's readers (and its rebuild).
void AddRegistryCommands(CLI::App& app, CliArgs& a, Subcommands& c) {
  c.status = app.add_subcommand("status",
                                "Counts per stage and status; failed shards with their last error");
  c.status->add_option("sweep", a.sweep, "Sweep name (default: all)");
  c.status->add_option("--registry", a.registry, "Registry file (default runs/registry.sqlite)");
  c.status->add_flag("--json", a.json, "JSON output");

  c.ls = app.add_subcommand("ls", "List sweeps");
  c.ls->add_option("--registry", a.registry, "Registry file");
  c.ls->add_flag("--json", a.json, "JSON output");

  c.show =
      app.add_subcommand("show", "Everything about one shard: params, attempts, metrics, files");
  c.show->add_option("shard", a.shard, "Shard id or unique prefix")->required();
  c.show->add_option("--registry", a.registry, "Registry file");
  c.show->add_flag("--json", a.json, "JSON output");

  c.logs = app.add_subcommand(
      "logs", "An attempt's stdout (or stderr): <out>/<sweep>/<stage>/<id>.logs/attempt-<n>.out");
  c.logs->add_option("shard", a.logs.shard, "Shard id or unique prefix")->required();
  c.logs->add_option("--attempt", a.logs.attempt, "Attempt number (default: the latest)")
      ->check(CLI::PositiveNumber);
  c.logs->add_flag("--err", a.logs.err, "stderr instead of stdout");
  c.logs->add_flag("--follow,-f", a.logs.follow, "Keep printing until the attempt ends");
  c.logs->add_option("--registry", a.registry, "Registry file");

  c.reindex = app.add_subcommand("reindex", "Rebuild registry rows from the shard HDF5 files");
  c.reindex->add_option("--out", a.out_dir, "Artifacts root to scan (default runs)");
  c.reindex->add_option("--registry", a.registry, "Registry file (default <out>/registry.sqlite)");

  c.kinds =
      app.add_subcommand("kinds", "Experiment kinds and their params: type, default, meaning");
  c.kinds->add_option("kind", a.kind, "Only this kind");
  c.kinds->add_flag("--json", a.json, "JSON output");
  c.kinds->add_flag("--yaml", a.yaml, "A starter spec of KIND (every param at its default)");
  c.kinds->add_flag("--markdown", a.markdown, "The tables of docs/kinds.md");

  c.serve = app.add_subcommand("serve", "Read-only live web view of the registry's sweeps");
  serve::AddServeFlags(*c.serve, &a.serve);
}

// Tools that need no registry: model (listed for --help only: Main hands `model` to
// ModelCommandMain before parsing) and tokenize.
void AddToolCommands(CLI::App& app, CliArgs& a, Subcommands& c) {
  app.add_subcommand("model", "Check a checkpoint: model inspect DIR, model logits DIR ...");
  c.tokenize = text::AddTokenizeCommand(app, a.tokenize);
}

// report and submit.
void AddReportAndSubmitCommands(CLI::App& app, CliArgs& a, Subcommands& c) {
  ReportOptions& ro = a.report;
  c.report = app.add_subcommand("report", "Seed-aggregated tables and figures of a sweep");
  // One sweep; several: side by side (the first in ro.sweep, see WriteReport).
  c.report->add_option("sweeps", ro.compare, "Sweep name (several: compared side by side)")
      ->required();
  c.report->add_option("--stage", ro.stage, "Only this stage");
  c.report->add_option("--out", ro.out_dir, "Report directory (default <out>/<sweep>/report)");
  c.report->add_option("--format", a.formats, "Comma-separated: md,tex,csv,html (default all)");
  c.report->add_option("--group-by", ro.group_by,
                       "Group by these axes (default: every axis but the seed)");
  c.report->add_option("--metrics", ro.metrics, "Metrics (names or prefix*)");
  c.report->add_flag(
      "--no-figures", [&ro](int64_t) { ro.figures = false; }, "Tables only");
  c.report->add_option("--registry", a.registry, "Registry file");

  c.submit = app.add_subcommand("submit", "Submit a sweep to Slurm as one allocation");
  AddSubmitFlags(*c.submit, &a.submit);
}

// Runs the subcommand that was parsed.
int RunCommand(int argc, char** argv, const Subcommands& c, CliArgs& a) {
  if (*c.run) return RunSweep(argc, argv, a.run, false);
  if (*c.rerun) return RunSweep(argc, argv, a.rerun, true);
  if (*c.status) return CmdStatus(ReadRegistry(a.registry), a.sweep, a.json);
  if (*c.ls) return CmdLs(DefaultRegistryPath(a.registry), a.json);
  if (*c.show) return CmdShow(DefaultRegistryPath(a.registry), a.shard, a.json);
  if (*c.logs) return CmdLogs(DefaultRegistryPath(a.registry), a.logs);
  if (*c.serve) return serve::RunServe(a.serve, DefaultRegistryPath(a.serve.registry));
  if (*c.tokenize) return text::RunTokenize(a.tokenize);
  if (*c.kinds) return CmdKinds(a.kind, a.json, a.yaml, a.markdown);
  if (*c.reindex) {
    std::string reg = a.registry.empty() ? (fs::absolute(a.out_dir) / "registry.sqlite").string()
                                         : fs::absolute(a.registry).string();
    return CmdReindex(reg, fs::absolute(a.out_dir).string());
  }
  if (*c.report) {
    a.report.registry_path = ReadRegistry(a.registry);
    for (size_t s = 0, e; s < a.formats.size(); s = e + 1) {
      e = a.formats.find(',', s);
      if (e == std::string::npos) e = a.formats.size();
      if (e > s) a.report.formats.push_back(a.formats.substr(s, e - s));
    }
    return RunReport(a.report);
  }
  if (*c.submit) {
    if (a.submit.seedgrid_binary.empty()) a.submit.seedgrid_binary = SelfExe("seedgrid");
    return RunSubmit(a.submit);
  }
  return exit_code::kUsage;
}

// The flags of `cmd` as a command line writes them ("--dry-run", "-q").
std::vector<std::string> FlagNames(const CLI::App& cmd) {
  std::vector<std::string> names;
  for (const CLI::Option* o : cmd.get_options()) {
    for (const auto& l : o->get_lnames()) names.push_back("--" + l);
    for (const auto& n : o->get_snames()) names.push_back("-" + n);
  }
  return names;
}

// "did you mean" for what CLI11 could not place: an unknown command (the first word), or an
// unknown flag of the command given, within edit distance 2. "" when nothing is near.
std::string CliSuggestion(CLI::App& app, int argc, char** argv) {
  if (argc < 2) return "";
  const std::string first = argv[1];
  CLI::App* cmd = nullptr;
  std::vector<std::string> commands;
  for (CLI::App* sub : app.get_subcommands([](CLI::App*) { return true; })) {
    commands.push_back(sub->get_name());
    if (sub->get_name() == first) cmd = sub;
  }
  if (!first.starts_with('-') && !cmd) {
    const std::string hint = Suggest(first, commands);
    return hint.empty() ? "" : fmt::format("unknown command '{}'{}", first, hint);
  }
  std::vector<std::string> flags = FlagNames(app);
  if (cmd) {
    for (auto& f : FlagNames(*cmd)) flags.push_back(std::move(f));
  }
  for (int i = cmd ? 2 : 1; i < argc; ++i) {
    const std::string arg = argv[i];
    if (arg == "--") break;
    if (!arg.starts_with("--") && !(arg.size() == 2 && arg[0] == '-')) continue;
    const std::string flag = arg.substr(0, arg.find('='));
    if (std::find(flags.begin(), flags.end(), flag) != flags.end()) continue;
    const std::string hint = Suggest(flag, flags);
    if (!hint.empty()) {
      return fmt::format("unknown flag '{}' of 'seedgrid{}'{}", flag,
                         cmd ? " " + cmd->get_name() : "", hint);
    }
  }
  return "";
}

int Main(int argc, char** argv) {
  // glibc's default thresholds cause page-fault storms in LibTorch loops (calibration.md).
  mallopt(M_MMAP_THRESHOLD, 64 << 20);
  mallopt(M_TRIM_THRESHOLD, 1 << 30);

  if (argc >= 2 && std::string(argv[1]) == "exec") return RunExecutorMain(3, 4);
  // `seedgrid model inspect|logits` (experiments/model/model_cli.h): parses its own flags.
  if (argc >= 2 && std::string(argv[1]) == "model") return ModelCommandMain(argc, argv);

  CLI::App app{
      "seedgrid: distributed batch experiment runner (MPI coordinator, LibTorch workers,\n"
      "HDF5 results, SQLite registry, seed-aggregated reports, Slurm)"};
  app.set_version_flag("--version",
                       std::string(SeedgridVersion()) + " (" + std::string(GitCommit()) + ")");
  app.require_subcommand(1);
  CliArgs args;
  Subcommands commands{};
  AddSweepCommands(app, args, commands);
  AddRegistryCommands(app, args, commands);
  AddReportAndSubmitCommands(app, args, commands);
  AddToolCommands(app, args, commands);

  if (argc == 1) {  // bare `seedgrid`: what it can do, not an error
    app.name("seedgrid");
    fmt::print("{}", app.help());
    return 0;
  }
  try {
    app.parse(argc, argv);
  } catch (const CLI::ParseError& e) {
    int rc = app.exit(e);
    if (rc == 0) return 0;
    if (const std::string hint = CliSuggestion(app, argc, argv); !hint.empty())
      fmt::print(stderr, "seedgrid: {}\n", hint);
    return exit_code::kUsage;
  }

  // Errors as exit codes (README): a spec or usage error is 2, anything else 1.
  try {
    return RunCommand(argc, argv, commands, args);
  } catch (const SpecError& e) {
    fmt::print(stderr, "seedgrid: {}\n", e.what());
    return exit_code::kUsage;
  } catch (const UsageError& e) {
    fmt::print(stderr, "seedgrid: {}\n", e.what());
    return exit_code::kUsage;
  } catch (const std::exception& e) {
    fmt::print(stderr, "seedgrid: error: {}\n", e.what());
    return exit_code::kInternal;
  }
}

}  // namespace

int main(int argc, char** argv) { return Main(argc, argv); }

#include "coordinator/submit/submit.h"

#include <fcntl.h>
#include <fmt/format.h>
#include <poll.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <iostream>
#include <map>
#include <optional>
#include <regex>
#include <sstream>
#include <stdexcept>
#include <system_error>

#include "core/kinds.h"
#include "core/process.h"
#include "core/registry.h"
#include "core/spec.h"
#include "core/strings.h"
#include "core/sysutil.h"
#include "core/types.h"

namespace seedgrid {
namespace {

namespace fs = std::filesystem;

constexpr int kMaxChain = 100;

// Slurm time syntax: M, M:S, H:M:S, D-H, D-H:M, D-H:M:S; UNLIMITED / INFINITE. nullopt if bad,
// -1 for unlimited.
std::optional<long> ParseSlurmTime(const std::string& t) {
  std::string lower = t;
  std::transform(lower.begin(), lower.end(), lower.begin(), ::tolower);
  if (lower == "unlimited" || lower == "infinite") return -1;
  std::smatch m;
  static const std::regex day(R"(^(\d+)-(\d+)(?::(\d+))?(?::(\d+))?$)");
  static const std::regex hms(R"(^(\d+)(?::(\d+))?(?::(\d+))?$)");
  auto num = [&](int i) { return m[i].matched ? std::stol(m[i].str()) : 0L; };
  if (t.size() > 20) return std::nullopt;
  if (std::regex_match(t, m, day)) return ((num(1) * 24 + num(2)) * 60 + num(3)) * 60 + num(4);
  if (std::regex_match(t, m, hms)) {
    if (m[3].matched) return (num(1) * 60 + num(2)) * 60 + num(3);
    if (m[2].matched) return num(1) * 60 + num(2);
    return num(1) * 60;
  }
  return std::nullopt;
}

struct SignalSpec {
  std::string name;  // without SIG
  int seconds = 0;
};

std::optional<SignalSpec> ParseSignal(std::string s) {
  static const std::regex re(R"(^(?:B:)?(?:SIG)?(USR1|USR2|TERM|INT|HUP|URG|CONT)@(\d{1,5})$)");
  std::smatch m;
  if (!std::regex_match(s, m, re)) return std::nullopt;
  int secs = std::stoi(m[2].str());
  if (secs > 65535) return std::nullopt;
  return SignalSpec{m[1].str(), secs};
}

bool IsSlurmToken(const std::string& s) {
  static const std::regex re(R"(^[A-Za-z0-9_.,:+\-]+$)");
  return std::regex_match(s, re);
}

// Where a path will be seen by sbatch's #SBATCH parser and by the job: no blanks or '%'.
bool IsPlainPath(const std::string& s) {
  return s.find_first_of(" \t\n\r%'\"\\") == std::string::npos;
}

std::string Absolute(const std::string& p) { return fs::absolute(p).lexically_normal().string(); }

std::string ReadFile(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  if (!in) throw std::runtime_error("cannot read " + path);
  std::ostringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

void WriteFile(const std::string& path, const std::string& text, fs::perms perms) {
  const std::string tmp = path + ".tmp";
  {
    std::ofstream out(tmp, std::ios::binary | std::ios::trunc);
    out << text;
    out.flush();
    if (!out) throw std::runtime_error("cannot write " + tmp);
  }
  fs::permissions(tmp, perms);
  fs::rename(tmp, path);
}

struct Template {
  std::string text;
  std::string origin;  // a path, or "embedded"
};

Template LoadTemplate(const SubmitOptions& opts, const std::string& exe) {
  if (!opts.template_path.empty())
    return {ReadFile(opts.template_path), Absolute(opts.template_path)};
  std::vector<std::string> candidates;
  if (const char* env = std::getenv("SEEDGRID_SBATCH_TEMPLATE"); env && *env) {
    return {ReadFile(env), Absolute(env)};
  }
#ifdef SEEDGRID_SOURCE_DIR
  candidates.push_back(std::string(SEEDGRID_SOURCE_DIR) + "/slurm/seedgrid.sbatch.in");
#endif
  if (!exe.empty()) {
    candidates.push_back(
        (fs::path(exe).parent_path().parent_path() / "share/seedgrid/seedgrid.sbatch.in").string());
  }
  for (const auto& c : candidates) {
    std::error_code ec;
    if (fs::is_regular_file(c, ec)) return {ReadFile(c), fs::path(c).lexically_normal().string()};
  }
  return {std::string(EmbeddedSbatchTemplate()), "embedded"};
}

// Replaces every @NAME@ (NAME in [A-Z_]+). A placeholder the map lacks is a template bug.
std::string Render(const Template& tpl, const std::map<std::string, std::string>& values) {
  static const std::regex re("@([A-Z][A-Z_]*)@");
  std::string out;
  std::vector<std::string> unknown;
  auto begin = std::sregex_iterator(tpl.text.begin(), tpl.text.end(), re);
  size_t last = 0;
  for (auto it = begin; it != std::sregex_iterator(); ++it) {
    const auto& m = *it;
    out.append(tpl.text, last, m.position(0) - last);
    auto v = values.find(m[1].str());
    if (v == values.end()) {
      unknown.push_back(m[0].str());
      out += m[0].str();
    } else {
      out += v->second;
    }
    last = m.position(0) + m.length(0);
  }
  out.append(tpl.text, last, std::string::npos);
  if (!unknown.empty()) {
    std::string list;
    for (const auto& u : unknown) list += " " + u;
    throw std::runtime_error("sbatch template (" + tpl.origin +
                             "): unknown placeholder(s):" + list);
  }
  return out;
}

// ---- a child process with captured output ---------------------------------------------------

struct CommandResult {
  int exit_code = -1;  // 128 + signal when killed
  std::string out, err;
};

CommandResult RunCommand(const std::vector<std::string>& argv) {
  Pipe out = MakePipe(), err = MakePipe();
  SpawnOptions o;
  o.argv = argv;
  o.redirects = {Redirect::Dup(STDOUT_FILENO, out.write.get()),
                 Redirect::Dup(STDERR_FILENO, err.write.get()),
                 Redirect::Open(STDIN_FILENO, "/dev/null", O_RDONLY)};
  Child child = Spawn(o);
  out.write.reset();
  err.write.reset();
  CommandResult res;
  pollfd fds[2] = {{out.read.get(), POLLIN, 0}, {err.read.get(), POLLIN, 0}};
  std::string* sinks[2] = {&res.out, &res.err};
  int open = 2;
  char buf[4096];
  while (open > 0) {
    if (::poll(fds, 2, -1) < 0) {
      if (errno == EINTR) continue;
      break;
    }
    for (int i = 0; i < 2; ++i) {
      if (fds[i].fd < 0 || !(fds[i].revents & (POLLIN | POLLHUP | POLLERR))) continue;
      ssize_t n = ::read(fds[i].fd, buf, sizeof buf);
      if (n > 0) {
        sinks[i]->append(buf, n);
      } else if (n == 0 || errno != EINTR) {
        fds[i].fd = -1;
        --open;
      }
    }
  }
  res.exit_code = child.Wait().ShellCode();
  return res;
}

// ---- the resolved submission ----------------------------------------------------------------

enum class Mode { kRun, kResume, kRerun };
std::string_view ToString(Mode m) {
  return m == Mode::kRun ? "run" : m == Mode::kResume ? "resume" : "rerun";
}

struct Submission {
  Mode mode = Mode::kRun;
  std::string sweep;
  size_t shard_count = 0;  // 0 when unknown (rerun without spec)
  std::optional<SweepSpec> spec;
  std::string out_dir;    // absolute
  std::string registry;   // absolute
  std::string slurm_dir;  // absolute: <out>/<sweep>/slurm
  std::string exe;        // absolute seedgrid binary
  int workers_per_node = 1;
  SignalSpec signal;
  std::string stamp;  // names this submission's files
  Template tpl;
};

std::string Stamp() {
  std::string iso = NowIso8601Utc();  // 2024-05-01T13:45:07Z
  iso.erase(std::remove_if(iso.begin(), iso.end(), [](char c) { return c == '-' || c == ':'; }),
            iso.end());
  static int seq = 0;  // several submissions from one process within a second
  std::string stamp = iso + "-" + std::to_string(::getpid());
  return seq++ ? stamp + "-" + std::to_string(seq) : stamp;
}

// Throws UsageError listing every problem, if there is any.
void ThrowIfProblems(const std::vector<std::string>& problems) {
  if (problems.empty()) return;
  std::string msg = "seedgrid submit:";
  for (const auto& p : problems) msg += "\n  " + p;
  throw UsageError(msg);
}

// The flags alone: mode, resources, Slurm syntax, the binary. Fills what they decide.
void CheckFlags(const SubmitOptions& o, Submission& s, std::vector<std::string>& problems) {
  if (!o.resume_sweep.empty() && !o.rerun_sweep.empty()) {
    problems.push_back("--resume and --rerun exclude each other");
  }
  s.mode = !o.rerun_sweep.empty()    ? Mode::kRerun
           : !o.resume_sweep.empty() ? Mode::kResume
                                     : Mode::kRun;
  if (o.spec_path.empty() && s.mode != Mode::kRerun) problems.push_back("a SPEC file is required");
  if (o.spec_path.empty() && !o.overrides.empty()) {
    problems.push_back("key=value overrides need a SPEC");
  }
  if (o.nodes < 1) problems.push_back(fmt::format("--nodes must be >= 1 (got {})", o.nodes));
  if (o.gpus_per_node < 0) problems.push_back("--gpus-per-node must be >= 0");
  if (o.cpus_per_gpu < 0) problems.push_back("--cpus-per-gpu must be >= 0");
  if (o.cpus_per_gpu > 0 && o.gpus_per_node == 0) {
    problems.push_back(
        "--cpus-per-gpu needs --gpus-per-node > 0 (for CPU jobs pass "
        "--sbatch-arg=--cpus-per-task=N)");
  }
  if (o.workers_per_node < 0) problems.push_back("--workers-per-node must be >= 0");
  if (o.gpus_per_node > 0 && o.workers_per_node > 0 && o.workers_per_node != o.gpus_per_node) {
    problems.push_back(
        "--workers-per-node is for CPU clusters (--gpus-per-node 0): with GPUs there is one worker "
        "per GPU");
  }
  s.workers_per_node = o.gpus_per_node > 0 ? o.gpus_per_node : std::max(1, o.workers_per_node);
  if (o.chain < 0 || o.chain > kMaxChain) {
    problems.push_back(fmt::format("--chain must be in 0..{} (got {})", kMaxChain, o.chain));
  }
  std::optional<long> limit;
  if (o.time.empty()) {
    problems.push_back("--time is required (Slurm syntax: minutes, H:M:S, D-H:M)");
  } else if (!(limit = ParseSlurmTime(o.time))) {
    problems.push_back("--time '" + o.time +
                       "' is not Slurm time syntax (minutes, M:S, H:M:S, D-H, D-H:M, D-H:M:S)");
  }
  auto sig = ParseSignal(o.signal);
  if (!sig) {
    problems.push_back(
        "--signal '" + o.signal +
        "' must be SIG@SECONDS with SIG one of USR1 USR2 TERM INT HUP URG CONT, e.g. USR1@120");
  } else {
    s.signal = *sig;
    if (limit && *limit > 0 && sig->seconds >= *limit) {
      problems.push_back(
          fmt::format("--signal {}@{}: the warning must come before the end of --time {} ({} s)",
                      sig->name, sig->seconds, o.time, *limit));
    }
  }
  static const std::regex mem(R"(^\d+[KMGTkmgt]?$)");
  if (!o.mem.empty() && !std::regex_match(o.mem, mem)) {
    problems.push_back("--mem '" + o.mem + "' must be a number with an optional K/M/G/T suffix");
  }
  if (!o.partition.empty() && !IsSlurmToken(o.partition)) {
    problems.push_back("--partition '" + o.partition + "' is not a Slurm name");
  }
  if (!o.account.empty() && !IsSlurmToken(o.account)) {
    problems.push_back("--account '" + o.account + "' is not a Slurm name");
  }
  for (const auto& e : o.extra_sbatch) {
    if (e.empty() || e[0] != '-' || e.find_first_of("\n\r") != std::string::npos) {
      problems.push_back("--sbatch-arg '" + e + "' must be one sbatch option starting with '-'");
    }
  }
  s.exe = o.seedgrid_binary.empty() ? SelfExe() : o.seedgrid_binary;
  if (s.exe.empty() || !fs::path(s.exe).is_absolute()) {
    problems.push_back("the seedgrid binary path must be absolute (got '" + s.exe + "')");
  }
}

// The spec: validated and expanded now, so an invalid spec submits nothing; the sweep's name.
void CheckSpec(const SubmitOptions& o, Submission& s, std::vector<std::string>& problems) {
  if (!o.spec_path.empty()) {
    s.spec = LoadSpec(o.spec_path, o.overrides, AllKinds());
    Plan plan = ExpandSpec(*s.spec, AllKinds());
    s.shard_count = plan.shards.size();
    s.sweep = s.spec->name;
    int total_workers = o.nodes * s.workers_per_node;
    for (const auto& st : s.spec->stages) {
      if (st.resources.ranks > total_workers) {
        problems.push_back(
            fmt::format("stage {} needs ranks: {} but the job has {} workers ({} nodes x {})",
                        st.name, st.resources.ranks, total_workers, o.nodes, s.workers_per_node));
      }
    }
  }
  const std::string& named = s.mode == Mode::kRerun ? o.rerun_sweep : o.resume_sweep;
  if (s.mode != Mode::kRun && s.spec && named != s.sweep) {
    problems.push_back(fmt::format("--{} {}: the spec {} defines sweep '{}'", ToString(s.mode),
                                   named, o.spec_path, s.sweep));
  }
  if (s.mode == Mode::kRerun) s.sweep = o.rerun_sweep;
  if (s.sweep.empty() || s.sweep == "." || s.sweep == ".." ||
      s.sweep.find_first_of("/ \t\n%'\"\\") != std::string::npos) {
    problems.push_back("sweep name '" + s.sweep +
                       "' cannot name a directory (no '/', blanks, quotes or '%')");
  }
}

// Out dir and registry: absolute, so the job does not depend on its working directory.
// Returns them as given or found (made absolute by the caller).
std::pair<std::string, std::string> FindPlaces(const SubmitOptions& o, const Submission& s,
                                               std::vector<std::string>& problems) {
  std::optional<SweepRow> row;
  std::string out = !o.out_dir.empty() ? o.out_dir : s.spec ? s.spec->out : "";
  std::string registry = o.registry_path;
  if (registry.empty() && !out.empty()) registry = (fs::path(out) / "registry.sqlite").string();
  if (s.mode != Mode::kRun) {
    if (registry.empty()) {
      problems.push_back("--rerun without a SPEC needs --registry PATH or --out DIR");
    } else if (!fs::exists(registry)) {
      problems.push_back("registry " + registry + " does not exist: nothing to " +
                         std::string(ToString(s.mode)));
    } else {
      Registry reg(registry, Registry::Mode::kReadOnly);
      row = reg.Sweep(s.sweep);
      if (!row) {
        problems.push_back(
            fmt::format("sweep '{}' is not in {}{}", s.sweep, registry,
                        s.mode == Mode::kResume ? " (submit it without --resume first)" : ""));
      }
    }
  }
  if (out.empty() && row) {
    out = row->out_dir;
    if (fs::path(out).is_relative()) out = (fs::path(registry).parent_path() / out).string();
  }
  if (out.empty()) problems.push_back("no output directory: pass --out DIR");
  return {out, registry};
}

// Checks every flag, then the spec and the registry; all flag problems are reported together.
Submission Resolve(const SubmitOptions& o) {
  std::vector<std::string> problems;
  Submission s;
  CheckFlags(o, s, problems);
  ThrowIfProblems(problems);
  CheckSpec(o, s, problems);
  const auto [out, registry] = FindPlaces(o, s, problems);
  ThrowIfProblems(problems);
  s.out_dir = Absolute(out);
  s.registry = Absolute(registry);
  s.slurm_dir = (fs::path(s.out_dir) / s.sweep / "slurm").string();
  if (!IsPlainPath(s.slurm_dir)) {
    throw UsageError(
        "seedgrid submit: the output directory " + s.out_dir +
        " must not contain blanks, quotes, backslashes or '%' (it names the Slurm log)");
  }
  s.stamp = Stamp();
  s.tpl = LoadTemplate(o, s.exe);
  return s;
}

std::string SpecSnapshotPath(const Submission& s) {
  return (fs::path(s.slurm_dir) / ("submit-" + s.stamp + ".spec.yaml")).string();
}
std::string ScriptPath(const Submission& s) {
  return (fs::path(s.slurm_dir) / ("submit-" + s.stamp + ".sbatch")).string();
}
std::string LogPattern(const Submission& s) {
  return (fs::path(s.slurm_dir) / "job-%j.out").string();
}

std::string JobName(const std::string& sweep) {
  std::string n = "sg-" + sweep;
  for (char& c : n) {
    if (!std::isalnum(static_cast<unsigned char>(c)) && c != '-' && c != '_' && c != '.') c = '_';
  }
  return n;
}

// The `seedgrid submit` line that resumes this sweep with the same resources.
std::vector<std::string> ResumeArgv(const SubmitOptions& o, const Submission& s) {
  std::vector<std::string> a = {s.exe, "submit"};
  if (!o.spec_path.empty()) a.push_back(Absolute(o.spec_path));
  a.insert(a.end(), o.overrides.begin(), o.overrides.end());
  a.insert(a.end(), {s.mode == Mode::kRerun ? "--rerun" : "--resume", s.sweep, "--nodes",
                     std::to_string(o.nodes)});
  if (o.gpus_per_node > 0) a.insert(a.end(), {"--gpus-per-node", std::to_string(o.gpus_per_node)});
  if (o.gpus_per_node == 0 && o.workers_per_node > 0) {
    a.insert(a.end(), {"--workers-per-node", std::to_string(o.workers_per_node)});
  }
  if (o.cpus_per_gpu > 0) a.insert(a.end(), {"--cpus-per-gpu", std::to_string(o.cpus_per_gpu)});
  if (!o.mem.empty()) a.insert(a.end(), {"--mem", o.mem});
  a.insert(a.end(), {"--time", o.time});
  if (!o.partition.empty()) a.insert(a.end(), {"--partition", o.partition});
  if (!o.account.empty()) a.insert(a.end(), {"--account", o.account});
  a.insert(a.end(), {"--registry", s.registry, "--out", s.out_dir});
  return a;
}

std::string RenderScript(const SubmitOptions& o, const Submission& s) {
  std::vector<std::string> d;
  d.push_back("--job-name=" + JobName(s.sweep));
  d.push_back(fmt::format("--nodes={}", o.nodes));
  d.push_back(fmt::format("--ntasks-per-node={}", s.workers_per_node));
  if (o.gpus_per_node > 0) d.push_back(fmt::format("--gpus-per-node={}", o.gpus_per_node));
  if (o.cpus_per_gpu > 0) d.push_back(fmt::format("--cpus-per-gpu={}", o.cpus_per_gpu));
  if (!o.mem.empty()) d.push_back("--mem=" + o.mem);
  d.push_back("--time=" + o.time);
  if (!o.partition.empty()) d.push_back("--partition=" + o.partition);
  if (!o.account.empty()) d.push_back("--account=" + o.account);
  d.push_back(fmt::format("--signal=B:{}@{}", s.signal.name, s.signal.seconds));
  d.push_back("--output=" + LogPattern(s));
  d.push_back("--open-mode=append");
  for (const auto& e : o.extra_sbatch) d.push_back(e);
  std::string directives;
  for (const auto& x : d) {
    if (!directives.empty()) directives += '\n';
    directives += "#SBATCH " + x;
  }

  std::vector<std::string> cmd = {s.exe};
  if (s.mode == Mode::kRerun) {
    cmd.insert(cmd.end(), {"rerun", s.sweep, "--failed", "--registry", s.registry});
  } else {
    cmd.insert(cmd.end(), {"run", SpecSnapshotPath(s)});
    cmd.insert(cmd.end(), o.overrides.begin(), o.overrides.end());
    cmd.insert(cmd.end(), {"--out", s.out_dir, "--registry", s.registry});
  }
  std::string header =
      fmt::format("sweep {} ({}{}), {} node(s) x {} worker(s), template {}", s.sweep,
                  ToString(s.mode), s.shard_count ? fmt::format(", {} shards", s.shard_count) : "",
                  o.nodes, s.workers_per_node, s.tpl.origin);
  return Render(s.tpl, {
                           {"HEADER_COMMENT", header},
                           {"SBATCH_DIRECTIVES", directives},
                           {"SEEDGRID_BIN", ShellQuote(s.exe)},
                           {"SWEEP", ShellQuote(s.sweep)},
                           {"MODE", std::string(ToString(s.mode))},
                           {"REGISTRY", ShellQuote(s.registry)},
                           {"SLURM_DIR", ShellQuote(s.slurm_dir)},
                           {"GPUS_PER_NODE", std::to_string(o.gpus_per_node)},
                           {"WORKERS_PER_NODE", std::to_string(s.workers_per_node)},
                           {"SIGNAL_NAME", s.signal.name},
                           {"COMMAND", ShellJoin(cmd)},
                           {"RESUME_HINT", ShellQuote(ShellJoin(ResumeArgv(o, s)))},
                       });
}

// "123" or "123;cluster" -> "123".
std::string ParseJobId(const std::string& out) {
  std::string id(Trim(out));
  if (auto nl = id.rfind('\n'); nl != std::string::npos) id = id.substr(nl + 1);
  id = id.substr(0, id.find(';'));
  static const std::regex re(R"(^\d+$)");
  if (!std::regex_match(id, re)) return "";
  return id;
}

std::string Sbatch(const std::string& script, const std::string& depends_on) {
  const char* env = std::getenv("SEEDGRID_SBATCH");
  std::vector<std::string> argv = {env && *env ? env : "sbatch", "--parsable"};
  if (!depends_on.empty()) argv.push_back("--dependency=afterany:" + depends_on);
  argv.push_back(script);
  CommandResult r = RunCommand(argv);
  std::string id = r.exit_code == 0 ? ParseJobId(r.out) : "";
  if (id.empty()) {
    throw std::runtime_error(fmt::format(
        "sbatch failed (exit {}): {}{}", r.exit_code, Trim(r.err),
        r.exit_code == 0 ? " [unexpected output: " + std::string(Trim(r.out)) + "]" : ""));
  }
  return id;
}

struct JobRecord {
  std::string id;
  int chain_index = 0;
  std::string depends_on;
};

// The registry's writer holds its run lock: a sweep running on it meanwhile makes this throw
// (RunSubmit checks the lock before queuing anything, so that is a race, named in the error).
void Record(const SubmitOptions& o, const Submission& s, const std::vector<JobRecord>& jobs) {
  RunLock lock(s.registry);
  Registry reg(s.registry, Registry::Mode::kWrite);
  Registry::Batch batch(reg);
  const std::string now = NowIso8601Utc();
  std::vector<SlurmJobRow> rows;
  std::string ids;
  for (const auto& j : jobs) {
    std::string log = LogPattern(s);
    log.replace(log.find("%j"), 2, j.id);
    rows.push_back({j.id, s.sweep, now, std::string(ToString(s.mode)), j.chain_index, j.depends_on,
                    o.nodes, o.gpus_per_node, s.workers_per_node, o.time, ScriptPath(s), log});
    if (!ids.empty()) ids += ',';
    ids += j.id;
  }
  reg.AddSlurmJobs(rows);
  auto prov = reg.Provenance(s.sweep);
  if (auto it = prov.find("slurm.job_ids"); it != prov.end() && !it->second.empty()) {
    ids = it->second + "," + ids;
  }
  reg.SetProvenance(s.sweep, "slurm.job_ids", ids);
  batch.Commit();
}

}  // namespace

std::string ServeHint(const std::string& seedgrid_binary, const std::string& registry,
                      const std::string& user, const std::string& host) {
  return fmt::format(
      "  watch  {} serve --registry {}   (here, on {})\n"
      "         from a laptop: ssh -N -L 8765:127.0.0.1:8765 {}{}  then open "
      "http://127.0.0.1:8765/\n",
      seedgrid_binary, registry, host, user.empty() ? "" : user + "@", host);
}

std::string RenderSubmitScript(const SubmitOptions& opts) {
  return RenderScript(opts, Resolve(opts));
}

int RunSubmit(const SubmitOptions& opts) {
  Submission s = Resolve(opts);
  const std::string script = RenderScript(opts, s);
  if (opts.print_only) {
    std::cout << script << std::flush;
    return exit_code::kOk;
  }
  MakeDirsDurable(s.slurm_dir);
  if (s.spec) WriteFile(SpecSnapshotPath(s), s.spec->source_text, fs::perms(0644));
  WriteFile(ScriptPath(s), script, fs::perms(0755));

  // A registry in use by a running sweep fails here, before anything is queued. The lock is
  // not held while sbatch runs: the first job may start before the chain is queued, and its
  // own launch takes the lock.
  { RunLock probe(s.registry); }

  std::vector<JobRecord> jobs;
  auto record = [&] {
    try {
      Record(opts, s, jobs);
    } catch (const std::exception& e) {
      std::string ids;
      for (const auto& j : jobs) ids += " " + j.id;
      throw std::runtime_error(std::string(e.what()) + " (already queued, not recorded:" + ids +
                               ")");
    }
  };
  try {
    for (int i = 0; i <= opts.chain; ++i) {
      std::string prev = jobs.empty() ? "" : jobs.back().id;
      jobs.push_back({Sbatch(ScriptPath(s), prev), i, prev});
    }
  } catch (const std::exception& e) {
    if (jobs.empty()) throw;
    record();
    std::string ids;
    for (const auto& j : jobs) ids += " " + j.id;
    throw std::runtime_error(std::string(e.what()) + " (already queued and recorded:" + ids + ")");
  }
  record();

  std::cerr << fmt::format("seedgrid submit: sweep {} ({}{}) -> job {}", s.sweep, ToString(s.mode),
                           s.shard_count ? fmt::format(", {} shards", s.shard_count) : "",
                           jobs.front().id);
  if (jobs.size() > 1) {
    std::cerr << " + " << jobs.size() - 1 << " chained (afterany):";
    for (size_t i = 1; i < jobs.size(); ++i) std::cerr << " " << jobs[i].id;
  }
  std::cerr << fmt::format("\n  script {}\n  log    {}\n  registry {}\n", ScriptPath(s),
                           LogPattern(s), s.registry);
  const char* user = std::getenv("USER");
  std::cerr << ServeHint(opts.seedgrid_binary.empty() ? "seedgrid" : opts.seedgrid_binary,
                         s.registry, user ? user : "", Hostname());
  for (const auto& j : jobs) std::cout << j.id << "\n";
  std::cout << std::flush;
  return exit_code::kOk;
}

}  // namespace seedgrid

#include "coordinator/commands.h"

#include <algorithm>
#include <cctype>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <iterator>
#include <map>
#include <optional>
#include <unordered_map>

#include <fmt/format.h>

#include "coordinator/logs.h"
#include "core/log_layout.h"
#include "core/registry.h"
#include "core/store.h"
#include "core/strings.h"

namespace seedgrid {
namespace {

namespace fs = std::filesystem;

std::string AxesText(const Json& axes) {
  std::string s;
  for (auto it = axes.begin(); it != axes.end(); ++it) {
    if (!s.empty()) s += " ";
    s += it.key() + "=" + (it->is_string() ? it->get<std::string>() : it->dump());
  }
  return s;
}

// strerror's text for every errno this libc knows ("Unknown error N" left out).
const std::vector<std::string>& ErrnoTexts() {
  static const std::vector<std::string> texts = [] {
    std::vector<std::string> out;
    for (int e = 1; e < 256; ++e) {
      std::string t = std::strerror(e);
      if (!t.starts_with("Unknown error")) out.push_back(std::move(t));
    }
    return out;
  }();
  return texts;
}

// True when the line holds an errno text as a whole phrase: "Invalid arguments to routine" (an
// HDF5 major code) does not name EINVAL.
bool HasErrnoText(std::string_view line) {
  auto letter = [](char c) { return std::isalpha(static_cast<unsigned char>(c)) != 0; };
  for (const auto& t : ErrnoTexts()) {
    for (size_t at = line.find(t); at != std::string_view::npos; at = line.find(t, at + 1)) {
      const size_t end = at + t.size();
      const bool starts = at == 0 || !letter(line[at - 1]);
      if (starts && (end == line.size() || !letter(line[end]))) return true;
    }
  }
  return false;
}

bool SaysError(std::string_view line) {
  std::string lower(line);
  std::transform(lower.begin(), lower.end(), lower.begin(),
                 [](unsigned char c) { return static_cast<char>(std::tolower(c)); });
  return lower.find("error") != std::string::npos || lower.find("exception") != std::string::npos;
}

// "#000: H5F.c line 1025 in H5Fclose(): ..." (after leading spaces), a frame of an HDF5 stack.
bool IsHdf5Frame(std::string_view line) {
  line = Trim(line);
  return line.size() > 5 && line[0] == '#' && std::isdigit(static_cast<unsigned char>(line[1])) &&
         std::isdigit(static_cast<unsigned char>(line[2])) &&
         std::isdigit(static_cast<unsigned char>(line[3])) && line[4] == ':';
}

// What `status` shows of a failed shard's error: the cause line, and where the rest is.
std::string ErrorSummary(const std::string& error, const ShardId& id) {
  std::string line = ErrorCauseLine(error);
  if (Trim(error).find('\n') == std::string_view::npos) return line;
  return fmt::format("{}  (whole message: seedgrid show {})", line, id.hex);
}

// An error for `show`: inline when it is one line, else every line below, indented.
std::string ErrorBlock(const std::string& error, std::string_view indent) {
  std::string_view text = Trim(error);
  if (text.find('\n') == std::string_view::npos) return fmt::format(": {}\n", text);
  std::string out = ":\n";
  for (size_t start = 0; start <= text.size();) {
    size_t end = std::min(text.find('\n', start), text.size());
    std::string_view line = text.substr(start, end - start);
    if (!line.empty() && line.back() == '\r') line.remove_suffix(1);
    fmt::format_to(std::back_inserter(out), "{}{}\n", indent, line);
    start = end + 1;
  }
  return out;
}

// The log of a failed shard's last attempt that `status` points to ("" when it wrote none).
std::string FailedShardLog(const Registry& reg, const ShardRow& row) {
  const std::string dir = ShardLogDir(reg, row);
  int last = 0;
  for (const auto& a : reg.Attempts(row.key.id())) last = std::max(last, a.n);
  if (const auto logged = LoggedAttempts(dir); !logged.empty())
    last = std::max(last, logged.back());
  return AttemptLogToShow(dir, last);
}

struct StageCounts {
  std::string kind;
  int stage_index = 0;
  std::map<std::string, int64_t> by_status;
  int64_t total = 0;
  int64_t Count(const std::string& status) const {
    auto it = by_status.find(status);
    return it == by_status.end() ? 0 : it->second;
  }
};

// What `seedgrid status` shows of one sweep: its stages in plan order with their counts, and
// its failed shards.
struct SweepStatus {
  SweepRow sweep;
  std::vector<std::pair<std::string, StageCounts>> stages;
  int64_t done = 0, total = 0;
  std::vector<ShardRow> failed;
  std::vector<std::string> failed_logs;  // per failed shard: its last attempt's log ("": none)
};

// Every sweep, or the one named (UsageError naming the known ones when there is none).
std::vector<SweepRow> SweepsToShow(const Registry& reg, const std::string& name) {
  if (name.empty()) return reg.Sweeps();
  auto s = reg.Sweep(name);
  if (!s) {
    std::string known;
    for (const auto& x : reg.Sweeps()) known += (known.empty() ? "" : ", ") + x.name;
    throw UsageError(fmt::format("no sweep '{}' in {} (known: {})", name, reg.path(),
                                 known.empty() ? "none" : known));
  }
  return {*s};
}

SweepStatus ReadSweepStatus(const Registry& reg, const SweepRow& sw) {
  SweepStatus st;
  st.sweep = sw;
  std::map<std::string, StageCounts> stages;
  for (const auto& n : reg.CountByStatus(sw.name)) {
    auto& c = stages[n.stage];
    c.kind = n.kind;
    c.stage_index = n.stage_index;
    c.by_status[std::string(ToString(n.status))] += n.count;
    c.total += n.count;
    st.total += n.count;
    if (n.status == ShardStatus::kDone) st.done += n.count;
  }
  st.stages.assign(stages.begin(), stages.end());
  std::sort(st.stages.begin(), st.stages.end(),
            [](auto& a, auto& b) { return a.second.stage_index < b.second.stage_index; });
  st.failed = reg.ShardsWithStatus(sw.name, ShardStatus::kFailed);
  for (const auto& r : st.failed) st.failed_logs.push_back(FailedShardLog(reg, r));
  return st;
}

Json StatusJson(const SweepStatus& st) {
  Json j;
  j["sweep"] = st.sweep.name;
  j["out_dir"] = st.sweep.out_dir;
  j["total"] = st.total;
  j["done"] = st.done;
  j["complete"] = st.done == st.total;
  j["stages"] = Json::array();
  for (const auto& [name, c] : st.stages) {
    Json stage;
    stage["name"] = name;
    stage["kind"] = c.kind;
    stage["total"] = c.total;
    for (auto s : {"pending", "running", "done", "failed", "preempted"}) stage[s] = c.Count(s);
    j["stages"].push_back(stage);
  }
  j["failed"] = Json::array();
  for (size_t i = 0; i < st.failed.size(); ++i) {
    const ShardRow& r = st.failed[i];
    j["failed"].push_back({{"id", r.key.id().hex},
                           {"stage", r.key.stage()},
                           {"seed", r.key.seed()},
                           {"axes", r.key.axes()},
                           {"attempts", r.attempts},
                           {"error", r.error},
                           {"error_line", ErrorCauseLine(r.error)},
                           {"log", st.failed_logs[i]}});
  }
  return j;
}

void PrintStatus(const SweepStatus& st) {
  fmt::print("sweep {}  ({} shards, {} done{})\n", st.sweep.name, st.total, st.done,
             st.done == st.total ? ", complete" : "");
  fmt::print("  {:<14} {:<12} {:>6} {:>6} {:>8} {:>7} {:>10} {:>8}\n", "stage", "kind", "total",
             "done", "running", "failed", "preempted", "pending");
  for (const auto& [name, c] : st.stages) {
    fmt::print("  {:<14} {:<12} {:>6} {:>6} {:>8} {:>7} {:>10} {:>8}\n", name, c.kind, c.total,
               c.Count("done"), c.Count("running"), c.Count("failed"), c.Count("preempted"),
               c.Count("pending"));
  }
  if (st.failed.empty()) return;
  fmt::print("  failed shards:\n");
  for (size_t i = 0; i < st.failed.size(); ++i) {
    const ShardRow& r = st.failed[i];
    const std::string err = ErrorSummary(r.error, r.key.id());
    fmt::print("    {}  {}  seed={} {}  attempts {}: {}\n", r.key.id().hex, r.key.stage(),
               r.key.seed(), AxesText(r.key.axes()), r.attempts, err);
    if (!st.failed_logs[i].empty()) fmt::print("      log: {}\n", st.failed_logs[i]);
  }
  fmt::print("  rerun them with: seedgrid rerun {} --failed\n", st.sweep.name);
}

// Why `kinds KIND --yaml` offers no starter spec: what the kind's own validate says of its
// starter params (the tokens kind, which the planner adds, rejects every stage a spec writes);
// empty when the starter passes.
std::vector<std::string> StarterProblems(const KindConfig& kind) {
  if (!kind.validate) return {};
  Json params = kind.defaults;
  for (const auto& [key, value] : kind.starter_params.items()) params[key] = value;
  return kind.validate(params);
}

}  // namespace

std::string DefaultRegistryPath(const std::string& flag) {
  if (!flag.empty()) return fs::absolute(flag).string();
  if (const char* e = std::getenv("SEEDGRID_REGISTRY"); e && *e) return fs::absolute(e).string();
  return fs::absolute("runs/registry.sqlite").string();
}

std::string ErrorCauseLine(std::string_view error) {
  std::vector<std::string_view> lines;  // the non-empty ones, right-trimmed
  for (size_t start = 0; start <= error.size();) {
    size_t end = std::min(error.find('\n', start), error.size());
    std::string_view line = error.substr(start, end - start);
    while (!line.empty() && std::isspace(static_cast<unsigned char>(line.back()))) {
      line.remove_suffix(1);
    }
    if (!Trim(line).empty()) lines.push_back(line);
    start = end + 1;
  }
  if (lines.empty()) return "";
  if (lines.size() == 1) return std::string(Trim(lines[0]));  // the common case: no search
  auto last = [&](auto&& pred, size_t from = 0) -> std::optional<std::string> {
    for (size_t i = lines.size(); i-- > from;) {
      if (pred(lines[i])) return std::string(Trim(lines[i]));
    }
    return std::nullopt;
  };
  if (auto l = last(HasErrnoText)) return *l;
  for (size_t i = 0; i < lines.size(); ++i) {
    if (Trim(lines[i]) != "Traceback (most recent call last):") continue;
    auto unindented = [](std::string_view l) {
      return !std::isspace(static_cast<unsigned char>(l[0]));
    };
    if (auto l = last(unindented, i + 1)) return *l;
  }
  if (auto l = last(IsHdf5Frame)) return *l;
  if (auto l = last(SaysError)) return *l;
  return std::string(Trim(lines[0]));
}

int PrintDryRun(const Plan& plan, const std::string& registry_path) {
  std::unordered_map<ShardId, ShardStatus> status;
  if (fs::exists(registry_path)) {
    Registry reg(registry_path, Registry::Mode::kReadOnly);
    for (const auto& r : reg.ShardStates(plan.spec.name)) status[r.id] = r.status;
  }
  fmt::print("sweep {}: {} shard(s), {} stage(s) (dry run: nothing written)\n", plan.spec.name,
             plan.shards.size(), plan.spec.stages.size());
  fmt::print("{:<16}  {:<12} {:<12} {:>6} {:<8} {:>5} {:<9}  {}\n", "shard", "stage", "kind",
             "seed", "role", "needs", "status", "axes");
  for (const auto& s : plan.shards) {
    const ShardKey& k = s.key;
    auto it = status.find(k.id());
    std::string st = it == status.end() ? "new" : std::string(ToString(it->second));
    fmt::print("{:<16}  {:<12} {:<12} {:>6} {:<8} {:>5} {:<9}  {}\n", k.id().hex, k.stage(),
               k.kind(), k.seed(), ToString(k.role()), k.needs().size(), st, AxesText(k.axes()));
  }
  if (!plan.collapsed.empty()) {
    // KindConfig::inapplicable: the axes shown null above are the params that do not apply.
    fmt::print(
        "{} shard(s) collapsed: they differ from a shard above only in params that do "
        "not apply to them\n",
        plan.collapsed.size());
    constexpr size_t kShown = 20;
    for (size_t i = 0; i < plan.collapsed.size() && i < kShown; ++i) {
      const CollapsedShard& c = plan.collapsed[i];
      fmt::print("  {} seed={} {}{} is identical to {}\n", c.stage, c.seed, AxesText(c.axes),
                 c.role == ShardRole::kSingle ? "" : fmt::format(" ({})", ToString(c.role)),
                 c.same_as.hex);
    }
    if (plan.collapsed.size() > kShown)
      fmt::print("  ... and {} more\n", plan.collapsed.size() - kShown);
  }
  return 0;
}

int CmdStatus(const std::string& registry_path, const std::string& sweep_name, bool json) {
  Registry reg(registry_path, Registry::Mode::kReadOnly);
  Json out = Json::array();
  for (const auto& sw : SweepsToShow(reg, sweep_name)) {
    const SweepStatus st = ReadSweepStatus(reg, sw);
    if (json) {
      out.push_back(StatusJson(st));
    } else {
      PrintStatus(st);
    }
  }
  if (json) fmt::print("{}\n", sweep_name.empty() ? out.dump(2) : out[0].dump(2));
  return 0;
}

int CmdLs(const std::string& registry_path, bool json) {
  Registry reg(registry_path, Registry::Mode::kReadOnly);
  Json out = Json::array();
  if (!json)
    fmt::print("{:<24} {:>7} {:>7} {:>7}  {:<20}  {}\n", "sweep", "shards", "done", "failed",
               "created", "out");
  for (const auto& sw : reg.Sweeps()) {
    int64_t total = 0, done = 0, failed = 0;
    for (const auto& r : reg.Shards(sw.name)) {
      ++total;
      done += r.status == ShardStatus::kDone;
      failed += r.status == ShardStatus::kFailed;
    }
    if (json) {
      out.push_back({{"sweep", sw.name},
                     {"shards", total},
                     {"done", done},
                     {"failed", failed},
                     {"created", sw.created},
                     {"out_dir", sw.out_dir}});
    } else {
      fmt::print("{:<24} {:>7} {:>7} {:>7}  {:<20}  {}\n", sw.name, total, done, failed, sw.created,
                 sw.out_dir);
    }
  }
  if (json) fmt::print("{}\n", out.dump(2));
  return 0;
}

// What `show` prints of a shard, read once.
struct ShardDetail {
  ShardRow row;
  std::vector<AttemptRow> attempts;
  std::map<std::string, double> metrics;
  std::string log_dir;  // <id>.logs beside the shard's file
  bool has_logs = false;
  // The attempt's log file when it exists ("" otherwise).
  std::string LogPath(int n, bool err) const {
    const std::string p = log_dir + "/" + AttemptLogName(n, err);
    return fs::exists(p) ? p : std::string();
  }
};

Json ShowJson(const ShardDetail& d) {
  const ShardRow& row = d.row;
  const ShardKey& k = row.key;
  Json j = {{"id", k.id().hex},
            {"sweep", row.sweep},
            {"stage", k.stage()},
            {"kind", k.kind()},
            {"seed", k.seed()},
            {"role", ToString(k.role())},
            {"status", ToString(row.status)},
            {"attempts", row.attempts},
            {"artifact", row.artifact},
            {"error", row.error},
            {"params", k.params()},
            {"axes", k.axes()},
            {"metrics", d.metrics}};
  j["needs"] = Json::array();
  for (const auto& n : k.needs()) j["needs"].push_back(n.hex);
  j["attempt_log"] = Json::array();
  for (const auto& a : d.attempts) {
    j["attempt_log"].push_back({{"n", a.n},
                                {"rank", a.rank},
                                {"host", a.host},
                                {"outcome", ToString(a.outcome)},
                                {"signal", a.signal},
                                {"exit_code", a.exit_code},
                                {"error", a.error},
                                {"seconds", a.end - a.start},
                                {"peak_rss_kb", a.peak_rss_kb},
                                {"stdout_log", d.LogPath(a.n, false)},
                                {"stderr_log", d.LogPath(a.n, true)}});
  }
  j["logs"] = d.has_logs ? d.log_dir : "";
  return j;
}

void PrintAttempts(const ShardDetail& d) {
  if (d.attempts.empty()) return;
  fmt::print("attempts:\n");
  for (const auto& a : d.attempts) {
    fmt::print("  #{} rank {} on {}: {} after {:.3f} s{}{}", a.n, a.rank, a.host,
               ToString(a.outcome), a.end - a.start,
               a.peak_rss_kb ? fmt::format(", peak RSS {} MiB", a.peak_rss_kb / 1024) : "",
               a.error.empty() ? "\n" : ErrorBlock(a.error, "      "));
    if (a.outcome != Outcome::kOk && a.outcome != Outcome::kPreempted) {
      if (const std::string log = AttemptLogToShow(d.log_dir, a.n); !log.empty()) {
        fmt::print("      log: {}\n", log);
      }
    }
  }
}

void PrintShow(const ShardDetail& d) {
  const ShardRow& row = d.row;
  const ShardKey& k = row.key;
  fmt::print(
      "shard    {}\nsweep    {}\nstage    {} ({}, {})\nseed     {}\nstatus   {} "
      "({} charged attempt(s))\nartifact {}\n",
      k.id().hex, row.sweep, k.stage(), k.kind(), ToString(k.role()), k.seed(),
      ToString(row.status), row.attempts, row.artifact.empty() ? "-" : row.artifact);
  if (!k.axes().empty()) fmt::print("axes     {}\n", AxesText(k.axes()));
  fmt::print("params   {}\n", k.params().dump());
  if (!k.needs().empty()) {
    std::string n;
    for (const auto& x : k.needs()) n += (n.empty() ? "" : " ") + x.hex;
    fmt::print("needs    {}\n", n);
  }
  if (!d.metrics.empty()) {
    fmt::print("metrics:\n");
    for (const auto& [name, v] : d.metrics) fmt::print("  {:<24} {:.6g}\n", name, v);
  }
  PrintAttempts(d);
  if (d.has_logs)
    fmt::print("logs     {}  (seedgrid logs {} [--attempt N] [--err])\n", d.log_dir, k.id().hex);
  // The shard's own error, when no attempt row holds it (a shard failed before it ran, or rows
  // rebuilt by reindex).
  auto holds_it = [&](const AttemptRow& a) { return a.error == row.error; };
  if (!row.error.empty() && std::none_of(d.attempts.begin(), d.attempts.end(), holds_it)) {
    fmt::print("error{}", ErrorBlock(row.error, "    "));
  }
}

int CmdShow(const std::string& registry_path, const std::string& prefix, bool json) {
  Registry reg(registry_path, Registry::Mode::kReadOnly);
  auto row = reg.FindShardByPrefix(prefix);
  if (!row) throw UsageError(fmt::format("no shard matches '{}' in {}", prefix, registry_path));
  ShardDetail d;
  d.attempts = reg.Attempts(row->key.id());
  d.metrics = reg.Metrics(row->key.id());
  d.log_dir = ShardLogDir(reg, *row);
  d.has_logs = !LoggedAttempts(d.log_dir).empty();
  d.row = std::move(*row);
  if (json) {
    fmt::print("{}\n", ShowJson(d).dump(2));
  } else {
    PrintShow(d);
  }
  return 0;
}

int CmdKinds(const std::string& only, bool json, bool yaml, bool markdown) {
  const auto& kinds = AllKinds();
  if (!only.empty() && !kinds.Find(only)) {
    throw UsageError(fmt::format("no kind '{}'{} (kinds: {})", only, Suggest(only, kinds.Names()),
                                 fmt::join(kinds.Names(), ", ")));
  }
  if (yaml) {
    if (only.empty())
      throw UsageError("kinds --yaml: name the kind, e.g. seedgrid kinds pretrain --yaml");
    if (const auto problems = StarterProblems(*kinds.Find(only)); !problems.empty())
      throw UsageError(
          fmt::format("kinds {} --yaml: no starter spec: {}", only, fmt::join(problems, "; ")));
    fmt::print("{}", StarterSpec(*kinds.Find(only)));
    return 0;
  }
  if (markdown) {
    fmt::print("{}", KindsMarkdown(kinds));
    return 0;
  }
  if (json) {
    Json j = Json::object();
    for (const auto& n : kinds.Names()) {
      if (!only.empty() && n != only) continue;
      const auto* k = kinds.Find(n);
      Json params = Json::array();
      for (const auto& r : ParamRows(*k)) {
        params.push_back(
            {{"key", r.key}, {"type", r.type}, {"default", r.value}, {"meaning", r.meaning}});
      }
      j[n] = {{"summary", k->summary},
              {"defaults", k->defaults},
              {"params", params},
              {"has_reduce", k->has_reduce},
              {"supports_gang", k->supports_gang},
              {"starter", StarterProblems(*k).empty()}};
    }
    fmt::print("{}\n", j.dump(2));
    return 0;
  }
  fmt::print("{}", KindsText(kinds, only));
  return 0;
}

}  // namespace seedgrid

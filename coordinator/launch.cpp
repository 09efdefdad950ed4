#include "coordinator/launch.h"

#include <sys/stat.h>
#include <unistd.h>

#include <cstdio>
#include <cstring>
#include <filesystem>
#include <optional>
#include <system_error>
#include <unordered_set>

#include <fmt/format.h>

#include "core/kinds.h"
#include "core/shard_check.h"
#include "core/store.h"
#include "core/sysutil.h"

namespace seedgrid {

namespace fs = std::filesystem;

std::string RelativeTo(const std::string& path, const std::string& base_dir) {
  if (path.size() > base_dir.size() + 1 && path.compare(0, base_dir.size(), base_dir) == 0 &&
      path[base_dir.size()] == '/') {
    return path.substr(base_dir.size() + 1);
  }
  return path;
}

ResultsTargets::ResultsTargets(const std::string& out_dir, const std::string& sweep,
                               const std::string& reg_dir) {
  const fs::path out = fs::path(out_dir).lexically_normal();
  const fs::path reg = fs::path(reg_dir).lexically_normal();
  sweep_dir_ = (out / sweep).string();
  if (reg == out) in_sweep_ = sweep + "/";
  to_reg_ = reg.lexically_relative(out / sweep).string() + "/";
}

std::string ResultsTargets::For(const std::string& artifact) const {
  if (artifact.front() == '/') {
    if (artifact.size() > sweep_dir_.size() &&
        artifact.compare(0, sweep_dir_.size(), sweep_dir_) == 0 &&
        artifact[sweep_dir_.size()] == '/') {
      return artifact.substr(sweep_dir_.size() + 1);
    }
    return artifact;  // HDF5 follows absolute targets as they are
  }
  if (!in_sweep_.empty() && artifact.compare(0, in_sweep_.size(), in_sweep_) == 0) {
    return artifact.substr(in_sweep_.size());
  }
  return to_reg_ + artifact;
}

std::unordered_map<ShardId, int> PlanIndex(const Plan& plan) {
  std::unordered_map<ShardId, int> index;
  index.reserve(plan.shards.size());
  for (size_t i = 0; i < plan.shards.size(); ++i)
    index.emplace(plan.shards[i].key.id(), static_cast<int>(i));
  return index;
}

int64_t RecordLaunch(Registry& reg, const Plan& plan, const LaunchFacts& facts) {
  const SweepSpec& spec = plan.spec;
  Registry::Batch batch(reg);
  SweepRow row;
  row.name = spec.name;
  row.spec_text = spec.source_text;
  row.spec_hash = spec.Hash();
  row.out_dir = facts.out_dir;
  row.git_commit = std::string(GitCommit());
  row.host = Hostname();
  reg.UpsertSweep(row);
  std::vector<ShardSpecRow> rows;
  rows.reserve(plan.shards.size());
  for (const ShardPlan& s : plan.shards) rows.push_back({s.key, spec.name, s.stage_index});
  reg.InsertShardSpecs(rows);
  reg.SetProvenance(spec.name, "spec_path", spec.source_path);
  reg.SetProvenance(spec.name, "overrides", Json(spec.overrides).dump());
  reg.SetProvenance(spec.name, "seedgrid", std::string(SeedgridVersion()));
  reg.SetProvenance(spec.name, "git_commit", std::string(GitCommit()));
  reg.SetProvenance(spec.name, "code_tag", std::string(CodeTag()));
  reg.SetProvenance(spec.name, "mpi", facts.mpi_library);
  if (!facts.job_id.empty()) {
    reg.SetProvenance(spec.name, "slurm.job_id", facts.job_id);
    reg.SetProvenance(spec.name, "slurm.nodelist", facts.job_nodelist);
  }
  const int64_t launch =
      reg.BeginLaunch(spec.name, Hostname(), ::getpid(), facts.n_workers, facts.job_id);
  const int orphans = reg.RecoverOrphans(spec.name);
  if (orphans > 0 && !facts.quiet) {
    fmt::print("recovered {} shard(s) left running by an earlier launch\n", orphans);
  }
  batch.Commit();
  return launch;
}

namespace {

// Whether files exist, from one directory listing per directory (a stat per shard costs
// seconds at 10^5-10^6 shards that have no file yet).
class FileListing {
 public:
  bool Exists(const std::string& path) {
    const size_t slash = path.rfind('/');
    const std::string dir = slash == std::string::npos ? "." : path.substr(0, slash);
    if (dir != last_dir_) {  // paths come grouped by directory: one lookup per group
      last_dir_ = dir;
      auto [it, fresh] = dirs_.try_emplace(dir);
      if (fresh) {
        std::error_code ec;
        for (fs::directory_iterator d(dir, ec), end; !ec && d != end; d.increment(ec)) {
          it->second.insert(d->path().filename().string());
        }
      }
      names_ = &it->second;
    }
    return names_->count(slash == std::string::npos ? path : path.substr(slash + 1)) > 0;
  }

 private:
  std::unordered_map<std::string, std::unordered_set<std::string>> dirs_;
  std::string last_dir_ = "\n";  // no directory's name
  const std::unordered_set<std::string>* names_ = nullptr;
};

// The reconciliation of one launch, a shard at a time (plan order, so files come grouped by
// directory).
class Reconciler {
 public:
  Reconciler(Registry& reg, const Plan& plan, const std::string& reg_dir, LaunchStates& out)
      : reg_(reg), plan_(plan), reg_dir_(reg_dir), out_(out), now_(UnixNow()), host_(Hostname()) {}

  void Shard(size_t i, const std::string& own_path) {
    ShardState& row = out_.states[i];
    std::string& path = out_.out_paths[i];
    path = own_path;
    if (row.status == ShardStatus::kDone && !row.artifact.empty()) {
      // Where it was published (another sweep's directory for a shared shard).
      const std::string published =
          row.artifact.front() == '/' ? row.artifact : reg_dir_ + "/" + row.artifact;
      struct stat st {};
      if (!stat_.Stat(published, &st)) {
        Reset(i, "published file missing: " + published);
        ++out_.missing;
        return;
      }
      path = published;
      const int64_t stamp = FileStamp(st);
      if (stamp == row.stamp) return;  // verified in this very state before
      if (auto problem = Check(i, published)) {
        Damaged(i, published, *problem);
        path = own_path;
        return;
      }
      reg_.SetShardStamp(row.seq, stamp);
      row.stamp = stamp;
      return;
    }
    if (row.status != ShardStatus::kDone && listing_.Exists(own_path)) Recover(i, own_path);
  }

 private:
  std::optional<std::string> Check(size_t i, const std::string& path) const {
    const ShardPlan& s = plan_.shards[i];
    std::vector<std::string> datasets;
    if (const KindConfig* k = AllKinds().Find(s.key.kind()); k && k->datasets)
      datasets = k->datasets(s.key.params(), ToString(s.key.role()));
    return CheckShardFile(path, s.key.id(), datasets);
  }

  // A file published before an interruption: done if it is whole.
  void Recover(size_t i, const std::string& path) {
    const ShardPlan& s = plan_.shards[i];
    ShardState& row = out_.states[i];
    if (auto problem = Check(i, path)) {
      Damaged(i, path, *problem);
      return;
    }
    auto info = ReadShardFileInfo(path);
    auto stamp = FileStampOf(path);
    if (!info || !stamp) return;  // vanished between the check and now: computed again
    reg_.SetShardState(s.key.id(), ShardStatus::kDone, row.attempts, RelativeTo(path, reg_dir_), "",
                       *stamp);
    if (!info->metrics.empty()) reg_.SetMetrics(s.key.id(), info->metrics);
    row.status = ShardStatus::kDone;
    row.stamp = *stamp;
    ++out_.recovered;
  }

  void Damaged(size_t i, const std::string& path, const std::string& problem) {
    std::string aside;
    try {
      aside = MoveAside(path);
    } catch (const std::system_error& e) {
      // Left where it is: the next publish replaces it by rename, which is still no loss.
      aside = std::string("(not moved: ") + e.what() + ")";
    }
    const std::string why = fmt::format("published file {} is damaged ({}); moved aside to {}",
                                        path, problem, fs::path(aside).filename().string());
    AttemptRow a;
    a.shard = plan_.shards[i].key.id();
    a.shard_seq = out_.states[i].seq;
    a.n = ++out_.attempt_numbers[i];
    a.host = host_;
    a.start = a.end = now_;
    a.outcome = Outcome::kError;
    a.error = why;
    reg_.AddAttempt(a);
    fmt::print(stderr, "seedgrid: shard {}: {}\n", plan_.shards[i].key.id().hex, why);
    Reset(i, why);
    ++out_.damaged;
  }

  void Reset(size_t i, const std::string& why) {
    ShardState& row = out_.states[i];
    reg_.SetShardStateAt(row.seq, ShardStatus::kPending, row.attempts, "", why, now_);
    row.status = ShardStatus::kPending;
    row.stamp = 0;
    out_.recompute[i] = 1;
  }

  Registry& reg_;
  const Plan& plan_;
  const std::string& reg_dir_;
  LaunchStates& out_;
  double now_;
  std::string host_;
  DirStat stat_;         // done shards: stat by name (existence and stamp in one call)
  FileListing listing_;  // the others: one listing per directory (most have no file)
};

}  // namespace

LaunchStates ReconcileLaunch(Registry& reg, const Plan& plan, const std::string& out_dir,
                             const std::string& reg_dir,
                             const std::unordered_map<ShardId, int>& index) {
  const SweepSpec& spec = plan.spec;
  const size_t n = plan.shards.size();
  LaunchStates out;
  out.states.resize(n);
  out.out_paths.resize(n);
  out.attempt_numbers.assign(n, 0);
  out.recompute.assign(n, 0);
  Registry::Batch batch(reg);
  std::vector<char> known(n, 0);
  for (auto& st : reg.ShardStates(spec.name)) {
    auto it = index.find(st.id);
    if (it == index.end()) continue;  // from an earlier version of the spec
    known[it->second] = 1;
    out.states[it->second] = std::move(st);
  }
  // Shard ids are content addresses, global to the registry: a shard identical to one another
  // sweep already has (same kind, params, seed, needs, code tag) is shared, not recomputed,
  // and listed by both.
  std::vector<Registry::Member> members;
  for (size_t i = 0; i < n; ++i) {
    if (known[i]) continue;
    const ShardPlan& s = plan.shards[i];
    auto other = reg.Shard(s.key.id());
    if (!other)
      throw std::runtime_error(fmt::format("shard {} missing from the registry", s.key.id().hex));
    out.states[i] = ShardState{other->key.id(),
                               other->seq,
                               other->status,
                               other->attempts,
                               other->artifact,
                               other->error,
                               0,
                               0};
    members.push_back({other->seq, s.key.stage(), s.stage_index});
  }
  reg.AddMembers(spec.name, members);
  out.shared = static_cast<int>(members.size());
  if (out.shared > 0) {
    // Their stamps: ShardStates read them for this sweep's members only.
    for (auto& st : reg.ShardStates(spec.name)) {
      auto it = index.find(st.id);
      if (it != index.end() && !known[it->second]) out.states[it->second].stamp = st.stamp;
    }
  }
  for (const auto& [id, num] : reg.AttemptNumbers(spec.name)) {
    if (auto it = index.find(id); it != index.end()) out.attempt_numbers[it->second] = num;
  }
  Reconciler r(reg, plan, reg_dir, out);
  std::string stage_dir;  // out_dir/sweep/stage/, per stage (plans are in stage order)
  for (size_t i = 0; i < n; ++i) {
    const ShardPlan& s = plan.shards[i];
    if (i == 0 || s.key.stage() != plan.shards[i - 1].key.stage()) {
      stage_dir = ShardFilePath(out_dir, spec.name, s.key.stage(), s.key.id());
      stage_dir.resize(stage_dir.size() - s.key.id().hex.size() - 3);
    }
    r.Shard(i, stage_dir + s.key.id().hex + ".h5");
  }
  batch.Commit();
  return out;
}

void PrintReconciliation(const LaunchStates& s) {
  if (s.shared > 0) {
    fmt::print(
        "{} shard(s) are shared with another sweep of this registry (same content address)\n",
        s.shared);
  }
  if (s.missing > 0) {
    fmt::print("{} done shard(s) lost their published file: computing them again\n", s.missing);
  }
  if (s.damaged > 0) {
    fmt::print(
        "{} shard file(s) were damaged (truncated, overwritten or another shard's): moved "
        "aside to *.damaged-<time>, computing them again\n",
        s.damaged);
  }
  if (s.recovered > 0) {
    fmt::print("{} shard(s) were published before an interruption: not recomputed\n", s.recovered);
  }
}

std::string SweepSpecFilePath(const std::string& out_dir, const std::string& sweep) {
  return (fs::path(out_dir) / sweep / "sweep.json").string();
}

void WriteSweepSpecFile(const std::string& out_dir, const SweepSpec& spec) {
  const std::string path = SweepSpecFilePath(out_dir, spec.name);
  Json j = {{"name", spec.name},
            {"spec_path", spec.source_path},
            {"spec_hash", spec.Hash()},
            {"overrides", spec.overrides},
            {"spec_text", spec.source_text},
            {"seedgrid", std::string(SeedgridVersion())}};
  try {
    std::error_code ec;  // a failure shows in the write's message
    fs::create_directories(fs::path(path).parent_path(), ec);
    WriteFileAtomically(path, j.dump(2) + "\n");
  } catch (const StoreError& e) {
    // Not fatal: the registry holds the spec too; only a rebuild from files needs this copy.
    fmt::print(stderr, "warning: could not write the sweep's spec beside its results: {}\n",
               e.what());
  }
}

}  // namespace seedgrid

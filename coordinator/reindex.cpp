// `seedgrid reindex`: rebuilds registry rows from the shard files under <out> (a lost or
// deleted registry), checking every file as a launch does (core/shard_check.h).
//
//   1. Sweeps: `<out>/<sweep>/sweep.json` (written at every launch) restores the sweep's row
//      and provenance (spec text and path, overrides), so `rerun` and `report` work after it.
//      The spec is expanded again: every planned shard is recorded (pending until a file says
//      otherwise) under its stage and stage index, and shards shared with another sweep become
//      members of both.
//   2. Shard files (`<out>/<sweep>/<stage>/<id>.h5`): a file that passes the check makes its
//      shard done (attempts from the file's header when the registry knew fewer); a file that
//      fails it, or that names another shard, is moved aside to `*.damaged-<time>`, and its
//      shard, if recorded, gets an attempt row saying why.
//   3. Done rows whose file is missing, unreadable or another shard's are set back to pending.
#include <algorithm>
#include <cctype>
#include <filesystem>
#include <fstream>
#include <map>
#include <optional>

#include <fmt/format.h>

#include "coordinator/commands.h"
#include "coordinator/launch.h"
#include "core/kinds.h"
#include "core/registry.h"
#include "core/shard_check.h"
#include "core/spec.h"
#include "core/store.h"
#include "core/sysutil.h"

namespace seedgrid {

namespace fs = std::filesystem;

namespace {

bool IsHex(std::string_view s) {
  if (s.empty()) return false;
  for (char c : s) {
    if (!std::isxdigit(static_cast<unsigned char>(c))) return false;
  }
  return true;
}

class Reindexer {
 public:
  Reindexer(Registry& reg, std::string out_dir, std::string reg_dir)
      : reg_(reg), out_dir_(std::move(out_dir)), reg_dir_(std::move(reg_dir)), now_(UnixNow()) {}

  // 1. The sweep's spec beside its results, when there is one.
  void Sweep(const fs::path& dir) {
    const std::string name = dir.filename().string();
    const fs::path file = SweepSpecFilePath(out_dir_, name);
    if (!fs::exists(file)) return;
    try {
      std::ifstream in(file);
      const Json j = Json::parse(in);
      const auto overrides = j.at("overrides").get<std::vector<std::string>>();
      SweepSpec spec = ParseSpec(j.at("spec_text").get<std::string>(),
                                 j.at("spec_path").get<std::string>(), overrides, AllKinds());
      SweepRow row;
      if (auto old = reg_.Sweep(name)) row = *old;
      row.name = name;
      row.spec_text = spec.source_text;
      row.spec_hash = spec.Hash();
      row.out_dir = out_dir_;
      reg_.UpsertSweep(row);
      reg_.SetProvenance(name, "spec_path", spec.source_path);
      reg_.SetProvenance(name, "overrides", Json(spec.overrides).dump());
      const Plan plan = ExpandSpec(spec, AllKinds(), kDefaultMaxShards);
      std::vector<ShardRow> rows;
      rows.reserve(plan.shards.size());
      for (const auto& s : plan.shards) {
        stage_index_[{name, s.key.stage()}] = s.stage_index;
        ShardRow& r = rows.emplace_back();
        r.key = s.key;
        r.sweep = name;
        r.stage_index = s.stage_index;
      }
      reg_.InsertShards(rows);
      ++specs_;
    } catch (const std::exception& e) {
      fmt::print(stderr, "warning: {}: spec not restored: {}\n", file.string(), e.what());
    }
  }

  // 2. One file under <out>/<sweep>/<stage>/.
  void File(const fs::path& path) {
    const std::string p = fs::absolute(path).lexically_normal().string();
    const ShardId id{path.stem().string()};
    auto info = ReadShardFileInfo(p);
    std::optional<std::string> problem;
    if (!info) {
      problem = "does not open as a shard file (truncated, overwritten or not HDF5)";
    } else if (info->header.key.id() != id) {
      problem = fmt::format("it is shard {}'s file, not {}'s", info->header.key.id().hex, id.hex);
    } else {
      problem = CheckShardFile(p, id, Datasets(info->header.key));
    }
    if (problem) {
      Damaged(p, id, *problem);
      return;
    }
    const ShardFileHeader& h = info->header;
    ShardRow r;
    r.key = h.key;
    r.sweep = h.sweep;
    auto si = stage_index_.find({h.sweep, h.key.stage()});
    r.stage_index = si != stage_index_.end() ? si->second : 0;
    if (!reg_.Sweep(h.sweep)) {
      SweepRow s;
      s.name = h.sweep;
      s.out_dir = out_dir_;
      reg_.UpsertSweep(s);
    }
    reg_.InsertShards({r});
    auto existing = reg_.Shard(id);
    const int attempts =
        std::max<int>(existing ? existing->attempts : 0, static_cast<int>(h.attempt));
    reg_.SetShardState(id, ShardStatus::kDone, attempts, RelativeTo(p, reg_dir_), "",
                       FileStampOf(p).value_or(0));
    reg_.SetMetrics(id, info->metrics);
    ++files_;
    per_sweep_[h.sweep] += 1;
  }

  // 3. Every done row's file, unless it is the file indexed above (same stamp).
  void RecheckDone() {
    for (const auto& sweep : reg_.Sweeps()) {
      // States carry the stamps: one read per sweep, the shard's spec only for a changed file.
      for (const auto& st : reg_.ShardStates(sweep.name)) {
        if (st.status != ShardStatus::kDone || st.artifact.empty()) continue;
        const std::string p =
            st.artifact.front() == '/' ? st.artifact : reg_dir_ + "/" + st.artifact;
        auto stamp = FileStampOf(p);
        if (!stamp) {
          reg_.SetShardState(st.id, ShardStatus::kPending, st.attempts, "",
                             "published file missing: " + p);
          ++reset_;
          continue;
        }
        if (*stamp == st.stamp) continue;  // the file indexed above, or checked before
        auto r = reg_.Shard(st.id);
        if (!r) continue;
        if (auto problem = CheckShardFile(p, st.id, Datasets(r->key))) {
          Damaged(p, st.id, *problem);
        } else {
          reg_.SetShardStamp(st.seq, *stamp);
        }
      }
    }
  }

  void Print(const std::string& registry_path) const {
    for (const auto& [s, n] : per_sweep_) fmt::print("  {}: {} shard file(s)\n", s, n);
    fmt::print("reindexed {} shard file(s) into {}", files_, registry_path);
    if (specs_ > 0) fmt::print("; {} sweep spec(s) restored from sweep.json", specs_);
    if (damaged_ > 0) fmt::print("; {} damaged file(s) moved aside to *.damaged-<time>", damaged_);
    if (reset_ > 0) fmt::print("; {} done shard(s) without their file set back to pending", reset_);
    fmt::print("\n");
  }

 private:
  static std::vector<std::string> Datasets(const ShardKey& key) {
    const KindConfig* k = AllKinds().Find(key.kind());
    return k && k->datasets ? k->datasets(key.params(), ToString(key.role()))
                            : std::vector<std::string>{};
  }

  void Damaged(const std::string& path, const ShardId& id, const std::string& problem) {
    std::string aside;
    try {
      aside = fs::path(MoveAside(path)).filename().string();
    } catch (const std::exception& e) {
      aside = std::string("(not moved: ") + e.what() + ")";
    }
    const std::string why =
        fmt::format("published file {} is damaged ({}); moved aside to {}", path, problem, aside);
    fmt::print(stderr, "seedgrid reindex: {}\n", why);
    ++damaged_;
    auto row = reg_.Shard(id);
    if (!row) return;
    const auto attempts = reg_.Attempts(id);
    AttemptRow a;
    a.shard = id;
    a.shard_seq = row->seq;
    a.n = attempts.empty() ? row->attempts + 1 : attempts.back().n + 1;
    a.host = Hostname();
    a.start = a.end = now_;
    a.outcome = Outcome::kError;
    a.error = why;
    reg_.AddAttempt(a);
    if (row->status == ShardStatus::kDone) {
      reg_.SetShardState(id, ShardStatus::kPending, row->attempts, "", why);
      ++reset_;
    }
  }

  Registry& reg_;
  std::string out_dir_, reg_dir_;
  double now_;
  std::map<std::pair<std::string, std::string>, int> stage_index_;  // (sweep, stage) -> index
  std::map<std::string, int64_t> per_sweep_;
  int64_t files_ = 0, damaged_ = 0, reset_ = 0, specs_ = 0;
};

}  // namespace

int CmdReindex(const std::string& registry_path, const std::string& out_dir) {
  if (!fs::is_directory(out_dir)) throw UsageError(fmt::format("no directory {}", out_dir));
  RunLock lock(registry_path);
  Registry reg(registry_path, Registry::Mode::kWrite);
  Reindexer r(reg, out_dir, fs::path(registry_path).parent_path().string());
  Registry::Batch batch(reg);
  std::vector<fs::path> sweeps;
  for (const auto& d : fs::directory_iterator(out_dir)) {
    if (d.is_directory()) sweeps.push_back(d.path());
  }
  std::sort(sweeps.begin(), sweeps.end());
  for (const auto& d : sweeps) r.Sweep(d);
  // Shard files are <sweep>/<stage>/<hex id>.h5; anything else (results.h5, artifacts, temp
  // and damaged files) is not one.
  for (const auto& d : sweeps) {
    for (const auto& stage : fs::directory_iterator(d)) {
      if (!stage.is_directory()) continue;
      for (const auto& f : fs::directory_iterator(stage.path())) {
        if (f.is_regular_file() && f.path().extension() == ".h5" &&
            IsHex(f.path().stem().string())) {
          r.File(f.path());
        }
      }
    }
  }
  r.RecheckDone();
  batch.Commit();
  r.Print(registry_path);
  return 0;
}

}  // namespace seedgrid

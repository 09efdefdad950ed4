// The registry: one SQLite file (runs/registry.sqlite by default) of sweeps, shards, attempts,
// metrics and provenance. Plain SQLite: `sqlite3 runs/registry.sqlite 'select ...'` works.
//
// Threading and process contract: exactly one writer, the rank-0 coordinator, which holds the
// run lock (RunLock) for the sweep it runs. Readers (status, report, show) open read-only at
// any time. Writes are grouped by the caller into transactions (Registry::Batch); a crash
// loses at most the open batch. Journal: WAL on local disks; on NFS/Lustre/GPFS (statfs)
// the rollback journal with busy_timeout, because WAL needs shared memory that network
// filesystems do not provide.
//
// Schema (docs/ARCHITECTURE.md has the full DDL):
//   sweeps(name PK, spec_text, spec_hash, out_dir, created, updated, git_commit, host)
//   shards: a view, one row per (sweep, shard), of sweep_shards(sweep, seq, stage,
//           stage_index) PK(sweep, seq) (membership: a shard id is a content address, shared
//           by every sweep that plans it) joined with shard_specs(seq INTEGER PK, id UNIQUE,
//           sweep, stage, stage_index (of the sweep that recorded it first), kind, params JSON,
//           axes JSON, seed, role (single | map | reduce, checked by triggers since schema 6;
//           read as ShardRole), needs JSON), immutable, and shard_states(seq PK, status,
//           attempts, artifact, error, updated, stamp), the part that changes (UPDATE shards
//           SET status=... works, through a trigger)
//   attempts(shard, n, rank, host, gpu, start, end, outcome, signal, exit_code, error,
//            peak_rss_kb, job_id, shard_seq)  PK(shard_seq, n) WITHOUT ROWID
//   metrics(shard, name, value)  PK(shard, name)
//   provenance(sweep, key, value)  PK(sweep, key)
//   launches(id PK autoinc, sweep, started, ended, host, pid, workers, exit_code, job_id)
//   slurm_jobs(job_id PK, sweep, submitted, mode, chain_index, depends_on, nodes,
//              gpus_per_node, workers_per_node, time_limit, script, log): what `seedgrid
//              submit` queued (schema 5; before it, submit created the table itself)
//
// No raw SQL goes through a Registry: every read and write is a typed method below, so the
// schema (and its migrations) are this file's alone. Tests that inspect the file open their
// own SQLite connection on it.
#pragma once

#include <atomic>
#include <chrono>
#include <condition_variable>
#include <cstdint>
#include <map>
#include <memory>
#include <mutex>
#include <optional>
#include <span>
#include <string>
#include <thread>
#include <utility>
#include <vector>

#include "core/shard_key.h"
#include "core/types.h"

namespace SQLite {
class Database;
}

namespace seedgrid {

struct SweepRow {
  std::string name;
  std::string spec_text;
  std::string spec_hash;
  std::string out_dir;
  std::string created;  // ISO 8601 UTC
  std::string updated;
  std::string git_commit;
  std::string host;
};

// A shard as a sweep lists it: its key (the stage is this sweep's, the role read from the
// text column into the enum) and its state.
struct ShardRow {
  ShardKey key;
  std::string sweep;
  int stage_index = 0;
  ShardStatus status = ShardStatus::kPending;
  int attempts = 0;      // attempts charged (preempted ones are not)
  std::string artifact;  // path of the published HDF5 file, relative to the registry dir
  std::string error;     // last error line
  int64_t seq = 0;       // shards.seq, set by reads: SetShardStateAt's key
};

// What InsertShardSpecs records of a shard: its key (the JSON already canonical) and the
// sweep that records it.
struct ShardSpecRow {
  ShardKey key;
  std::string_view sweep;
  int stage_index = 0;
};

// A shard's row without its spec (shard_states and the id): what the coordinator reads at
// start-up and writes as shards finish. No key: the launch has the keys in its plan, and
// reading the spec columns of 10^6 rows is what this read exists to avoid.
struct ShardState {
  ShardId id;
  int64_t seq = 0;
  ShardStatus status = ShardStatus::kPending;
  int attempts = 0;
  std::string artifact;  // relative to the registry dir
  std::string error;
  double updated = 0;  // unix seconds
  int64_t stamp = 0;   // the published file's FileStamp when done (0: unknown)
};

struct AttemptRow {
  ShardId shard;
  int n = 0;  // 1-based attempt number (preempted attempts get numbers too)
  int rank = 0;
  std::string host;
  std::string gpu;
  double start = 0;  // unix seconds
  double end = 0;
  Outcome outcome = Outcome::kOk;
  int signal = 0;
  int exit_code = 0;
  std::string error;
  int64_t peak_rss_kb = 0;
  std::string job_id;
  int64_t shard_seq = 0;  // shards.seq of `shard`; 0: looked up by id
};

// One job `seedgrid submit` queued for a sweep (slurm_jobs).
struct SlurmJobRow {
  std::string job_id;
  std::string sweep;
  std::string submitted;   // ISO 8601 UTC
  std::string mode;        // run | resume | rerun
  int chain_index = 0;     // 0: the first job; n: the n-th chained (afterany) one
  std::string depends_on;  // the job it waits for ("" for the first)
  int nodes = 0;
  int gpus_per_node = 0;
  int workers_per_node = 0;
  std::string time_limit;
  std::string script;
  std::string log;
};

struct MetricRow {
  ShardId shard;
  std::string name;
  double value = 0;
};

// ---- rows of the read methods `seedgrid serve` uses (core/registry_serve.cpp) ----

// One launch of a sweep (launches): who ran it, where, and how it ended.
struct LaunchRow {
  int64_t id = 0;
  std::string sweep;
  std::string started;  // ISO 8601 UTC
  std::string ended;    // "" while running (or when the launch died without recording it)
  std::string host;
  int64_t pid = 0;
  int workers = 0;
  std::optional<int> exit_code;  // none while running or after a crash
  std::string job_id;
};

// Shards of a sweep counted by stage and status, with how many of them changed state at or
// after a given time (a done count over the last minute is the throughput).
struct StageStatusCount {
  std::string stage;
  int stage_index = 0;
  std::string kind;
  std::string status;
  int64_t count = 0;
  int64_t recent = 0;
};

// A shard as a list shows it: no needs, params as stored (canonical JSON text).
struct ShardBrief {
  int64_t seq = 0;
  std::string id;
  std::string stage;
  std::string status;
  int attempts = 0;
  std::string error;
  double updated = 0;  // unix seconds
  std::string params_json;
  std::string axes_json;  // the grid coordinates that tell shards of a stage apart
};

// Which shards ShardPage lists: a sweep's, optionally one stage's and one status's, in plan
// order (seq) after `after_seq` (keyset paging: page n+1 costs what page 1 costs).
struct ShardPageQuery {
  std::string sweep;
  std::string stage;   // "": every stage
  std::string status;  // "": every status
  int64_t after_seq = 0;
  int limit = 50;
};

// A live curve of one attempt of a running shard (live_points), thinned for a page.
struct LiveCurveRow {
  int attempt = 1;
  std::string name;
  std::vector<int64_t> steps;  // ascending
  std::vector<double> values;
  double t = 0;  // unix time of the newest point
};

// A sweep's running shard and the live curves of its latest attempt.
struct LiveShardRow {
  int64_t seq = 0;
  std::string id;
  std::string stage;
  std::vector<LiveCurveRow> curves;
};

class Registry {
 public:
  enum class Mode { kReadOnly, kWrite };
  // kWrite creates the file and schema if missing. kReadOnly throws UsageError when missing.
  Registry(const std::string& path, Mode mode);
  ~Registry();
  Registry(const Registry&) = delete;
  Registry& operator=(const Registry&) = delete;

  const std::string& path() const { return path_; }
  bool on_network_fs() const { return network_fs_; }

  // A transaction; commits on Commit(), rolls back in the destructor otherwise (never throws).
  class Batch {
   public:
    explicit Batch(Registry& r);
    ~Batch();
    void Commit();

   private:
    Registry& r_;
    bool done_ = false;
  };

  // ---- writes (coordinator only) ----
  void UpsertSweep(const SweepRow& sweep);  // keeps `created` of an existing row
  // Inserts shards that are missing (as pending); existing rows keep status/attempts/artifact.
  // Every row becomes a member of its `sweep` (known shards included).
  void InsertShards(const std::vector<ShardRow>& shards);
  // The same from rows ready to store (a launch recording its plan: no JSON dumped again);
  // only the new shards become members of their sweep here (AddMembers for the others: a
  // launch knows which they are without a lookup per row).
  void InsertShardSpecs(std::span<const ShardSpecRow> shards);
  // `stamp`: the published file's FileStamp for a done shard (0: none or unknown).
  void SetShardState(const ShardId& id, ShardStatus status, int attempts,
                     const std::string& artifact, const std::string& error, int64_t stamp = 0);
  // The same by seq (ShardRow::seq), for the coordinator's hot path: an integer key, and
  // rows updated in dispatch order share pages (ids are hashes, seqs follow the plan).
  // `updated`: the event's unix time (0: now).
  void SetShardStateAt(int64_t seq, ShardStatus status, int attempts, const std::string& artifact,
                       const std::string& error, double updated = 0, int64_t stamp = 0);
  void SetShardStamp(int64_t seq, int64_t stamp);
  // Makes shards already recorded (by another sweep) members of `sweep` too, under this
  // sweep's stage; members stay members.
  struct Member {
    int64_t seq = 0;
    std::string stage;
    int stage_index = 0;
  };
  void AddMembers(const std::string& sweep, std::span<const Member> members);
  void AddAttempt(const AttemptRow& attempt);
  // The same for many rows, kBulkRows to a statement (SQLite's per-statement work, about half
  // of a row's cost, paid once for them): the coordinator's hot path. Every row's shard_seq
  // must be set (no lookup by id).
  static constexpr size_t kBulkRows = 8;
  void AddAttempts(std::span<const AttemptRow> attempts);
  // SetShardStateAt for many shards, kBulkRows to a statement (`id` unused). Every seq must
  // exist (the bulk statement replaces the state row whole; it does not check).
  void SetShardStatesAt(std::span<const ShardState> states);
  void SetMetrics(const ShardId& id, const std::vector<std::pair<std::string, double>>& metrics);
  void SetProvenance(const std::string& sweep, const std::string& key, const std::string& value);
  int64_t BeginLaunch(const std::string& sweep, const std::string& host, int64_t pid, int workers,
                      const std::string& job_id);
  void EndLaunch(int64_t launch, int exit_code);
  // Shards left `running` by a launch that died: back to pending (they were never charged).
  int RecoverOrphans(const std::string& sweep);
  // Records jobs `submit` queued; a known job id is replaced. The writer holds the RunLock.
  void AddSlurmJobs(std::span<const SlurmJobRow> jobs);
  // Live curves (core/registry_live.cpp): points of a running attempt's curve `name` (a step
  // recorded again is replaced); past kLivePointsPerCurve rows the curve is thinned to about
  // half, evenly over its steps (one row per bucket of steps, its newest kept).
  static constexpr int64_t kLivePointsPerCurve = 1000;
  void AddLivePoints(int64_t seq, int attempt, const std::string& name,
                     std::span<const int64_t> steps, std::span<const double> values, double t);
  // Every live point of a shard (it is done: its final curves are in its file).
  void DropLivePoints(int64_t seq);
  // The seqs of the shards that have live points (a launch's writer drops them when they are
  // done, whichever launch recorded them). Costs a seek per such shard, not a table scan.
  std::vector<int64_t> LiveSeqs() const;

  // ---- reads ----
  std::vector<SweepRow> Sweeps() const;
  std::optional<SweepRow> Sweep(const std::string& name) const;
  std::vector<ShardRow> Shards(const std::string& sweep, const std::string& stage = "") const;
  // A sweep's shards in one status (plan order), and its shards counted by stage and status:
  // what `seedgrid status` shows, without reading every row (a second at 10^6 shards).
  std::vector<ShardRow> ShardsWithStatus(const std::string& sweep, ShardStatus status) const;
  struct StatusCount {
    std::string stage;
    int stage_index = 0;
    std::string kind;
    ShardStatus status = ShardStatus::kPending;
    int64_t count = 0;
  };
  std::vector<StatusCount> CountByStatus(const std::string& sweep) const;
  std::optional<ShardRow> Shard(const ShardId& id) const;
  // The states of a sweep's shards (no JSON parsing: what the coordinator needs at start-up,
  // ~10x quicker than Shards() on large sweeps).
  std::vector<ShardState> ShardStates(const std::string& sweep) const;
  // The highest attempt number recorded for each of a sweep's shards that has attempts.
  std::vector<std::pair<ShardId, int>> AttemptNumbers(const std::string& sweep) const;
  // Prefix lookup for `seedgrid show 3fa9`; throws UsageError when ambiguous.
  std::optional<ShardRow> FindShardByPrefix(const std::string& prefix) const;
  std::vector<AttemptRow> Attempts(const ShardId& id) const;
  std::map<std::string, double> Metrics(const ShardId& id) const;
  std::vector<MetricRow> MetricsOfSweep(const std::string& sweep,
                                        const std::string& stage = "") const;
  std::map<std::string, std::string> Provenance(const std::string& sweep) const;
  // A sweep's Slurm jobs in submission order (submitted, chain_index).
  std::vector<SlurmJobRow> SlurmJobs(const std::string& sweep) const;

  // ---- reads for `seedgrid serve` (core/registry_serve.cpp) ----
  // SQLite's PRAGMA data_version: changes whenever another connection (the coordinator)
  // commits. Costs no table read, so a server can poll it many times a second.
  int64_t DataVersion() const;
  // A sweep's launches, oldest first.
  std::vector<LaunchRow> Launches(const std::string& sweep) const;
  // CountByStatus plus, per group, the shards whose state changed at or after `since` (unix
  // seconds): one pass over the sweep's state rows.
  std::vector<StageStatusCount> CountByStatusSince(const std::string& sweep, double since) const;
  // One page of a sweep's shards (see ShardPageQuery).
  std::vector<ShardBrief> ShardPage(const ShardPageQuery& q) const;
  // Unix time of a shard's last state change (nullopt: unknown id).
  std::optional<double> ShardUpdated(const ShardId& id) const;
  // A shard's live curves, every attempt's, each thinned to at most `max_points` (evenly over
  // its rows, the newest kept). Empty on a registry older than version 7 (read-only).
  std::vector<LiveCurveRow> LiveCurves(const ShardId& id, size_t max_points) const;
  // Up to `max_shards` running shards of a sweep that have live points (plan order), each with
  // its latest attempt's curves thinned to `max_points`.
  std::vector<LiveShardRow> LiveShards(const std::string& sweep, int max_shards,
                                       size_t max_points) const;

 private:
  friend class WalCheckpointer;     // turns this connection's automatic checkpoints off and on
  friend struct RegistryInspector;  // tests: this connection's own settings (PRAGMAs)
  std::string path_;
  bool network_fs_ = false;
  std::unique_ptr<SQLite::Database> db_;
  struct Statements;
  std::unique_ptr<Statements> st_;
};

// Exclusive right to write a registry: an flock on "<registry>.lock" holding "host pid".
// A second launch on the same registry gets UsageError naming the holder.
class RunLock {
 public:
  explicit RunLock(const std::string& registry_path);  // throws UsageError when held
  ~RunLock();
  RunLock(const RunLock&) = delete;
  RunLock& operator=(const RunLock&) = delete;

 private:
  int fd_ = -1;
};

// Checkpoints a WAL registry from a thread of its own, on a connection of its own, so the
// coordinator's commits never wait for a checkpoint's copy and fsync (SQLite's automatic
// checkpoint runs inside the commit that crosses the threshold: ~100 ms stalls at 40 MiB).
// Passive checkpoints every `period` never block the writer. While one exists, `reg`'s own
// automatic checkpoints are off; the destructor stops the thread, then turns them back on.
// Does nothing on network filesystems (no WAL there).
class WalCheckpointer {
 public:
  explicit WalCheckpointer(Registry& reg,
                           std::chrono::milliseconds period = std::chrono::milliseconds(200));
  ~WalCheckpointer();  // never throws
  WalCheckpointer(const WalCheckpointer&) = delete;
  WalCheckpointer& operator=(const WalCheckpointer&) = delete;
  int64_t checkpoints() const { return checkpoints_.load(); }

 private:
  Registry& reg_;
  std::chrono::milliseconds period_;
  std::mutex mu_;
  std::condition_variable cv_;
  bool stop_ = false;
  std::atomic<int64_t> checkpoints_{0};
  std::thread thread_;
};

// statfs: NFS, Lustre, GPFS, CIFS, ... (where WAL is unsafe).
bool IsNetworkFilesystem(const std::string& path);

}  // namespace seedgrid

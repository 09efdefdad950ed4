#include "core/registry.h"

#include <fcntl.h>
#include <sqlite3.h>
#include <sys/file.h>
#include <sys/vfs.h>
#include <unistd.h>

#include <cctype>
#include <cerrno>
#include <cmath>
#include <cstdio>
#include <cstring>
#include <filesystem>
#include <limits>
#include <optional>
#include <system_error>

#include <SQLiteCpp/SQLiteCpp.h>
#include <fmt/format.h>

#include "core/sysutil.h"

namespace seedgrid {

namespace fs = std::filesystem;

namespace {

// Bump with a migration in Registry::Registry when the DDL below changes.
// 2: dropped attempts_shard and metrics_shard, which duplicated the primary keys' indexes
//    (one B-tree insert fewer per attempt row).
// 3: the coordinator's two writes per shard made cheap (measured on the development VM,
//    BENCHMARKS.md §1):
//    * a shard's mutable state (status, attempts, artifact, error, updated) in a narrow table,
//      shard_states, beside the immutable shard_specs: a state update rewrote the whole shard
//      row, params JSON and all. `shards` is a view joining the two, so every read is as
//      before, and an INSTEAD OF trigger keeps UPDATEs of its state columns working;
//    * the status CHECK as an OR chain: `status IN (...)` built an ephemeral table for the
//      list on every row written (~3 µs of each state update);
//    * seq, an explicit INTEGER PRIMARY KEY (the old implicit rowid, which VACUUM may
//      renumber), and attempts clustered by (shard_seq, n), WITHOUT ROWID: rows are appended in
//      dispatch order instead of inserted into an index in hash order (~2.4 µs per row).
//    The old rowids become the seqs.
// 4: integrity (issue 13):
//    * sweep_shards(sweep, seq, stage, stage_index): which sweeps a shard belongs to. Shard ids
//      are content addresses shared by every sweep that plans the same shard, so membership is
//      many-to-many: a second sweep that shares a shard lists it (status, report, results.h5)
//      and never computes it again. shard_specs.sweep/stage stay the sweep that recorded it
//      first (where its file lives). `shards` is one row per (sweep, shard);
//    * shard_states.stamp: the published file's fingerprint (FileStamp: inode, size, mtime,
//      ctime) taken when the shard became done. A launch compares it with a stat of the file
//      and opens only the files whose stamp changed (a file verified once is not re-read).
//    shard_specs_sweep_stage, which served the per-sweep queries, is dropped.
// 5: slurm_jobs, which `seedgrid submit` created on its own (CREATE TABLE IF NOT EXISTS, the
//    same DDL) outside the versioned schema, is part of it: a version 4 registry gets the
//    table, or keeps the one submit made, rows and all.
// 6: shard_specs.role is checked to be single, map or reduce (ShardRole's text: the readers
//    parse it into the enum), by triggers rather than a column CHECK so a version 5 registry
//    gets the rule without rebuilding its largest table; the upgrade refuses a registry whose
//    rows already break it, naming one.
// 7: live_points(shard_seq, attempt, name, step, value, t): the live curves of running shards
//    (LivePoints, core/protocol.h), for `seedgrid serve`. A new table, made by kSchema, so every
//    older registry gets it on upgrade and nothing else changes. Bounded: at most
//    Registry::kLivePointsPerCurve rows per (shard, attempt, name) (thinned evenly past it),
//    at most kLiveMaxCurves names
//    per attempt; a shard's rows are deleted when it is done (its final curves are in its file).
constexpr int kSchemaVersion = 7;

// Version 3's rebuilt tables, under a name for attempts (the migration builds it beside the
// old one).
constexpr const char* kShardTables = R"sql(
CREATE TABLE IF NOT EXISTS shard_specs(
  seq INTEGER PRIMARY KEY, id TEXT NOT NULL UNIQUE, sweep TEXT NOT NULL, stage TEXT NOT NULL,
  stage_index INTEGER NOT NULL, kind TEXT NOT NULL, params TEXT NOT NULL, axes TEXT NOT NULL,
  seed INTEGER NOT NULL, role TEXT NOT NULL, needs TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS shard_states(
  seq INTEGER PRIMARY KEY REFERENCES shard_specs(seq),
  status TEXT NOT NULL CHECK(status = 'pending' OR status = 'running' OR status = 'done' OR
                             status = 'failed' OR status = 'preempted'),
  attempts INTEGER NOT NULL, artifact TEXT NOT NULL, error TEXT NOT NULL, updated REAL NOT NULL,
  stamp INTEGER NOT NULL DEFAULT 0);
CREATE TABLE IF NOT EXISTS sweep_shards(
  sweep TEXT NOT NULL, seq INTEGER NOT NULL REFERENCES shard_specs(seq), stage TEXT NOT NULL,
  stage_index INTEGER NOT NULL, PRIMARY KEY(sweep, seq)) WITHOUT ROWID;
)sql";
std::string AttemptsDdl(std::string_view table) {
  return fmt::format(R"sql(
CREATE TABLE IF NOT EXISTS {}(
  shard TEXT NOT NULL, n INTEGER NOT NULL, rank INTEGER NOT NULL, host TEXT NOT NULL,
  gpu TEXT NOT NULL, start REAL NOT NULL, "end" REAL NOT NULL, outcome TEXT NOT NULL,
  signal INTEGER NOT NULL, exit_code INTEGER NOT NULL, error TEXT NOT NULL,
  peak_rss_kb INTEGER NOT NULL, job_id TEXT NOT NULL, shard_seq INTEGER NOT NULL,
  PRIMARY KEY(shard_seq, n)) WITHOUT ROWID;
)sql",
                     table);
}

// Timestamps: sweeps/launches ISO 8601 UTC text (read by people), attempts and shards.updated
// unix seconds REAL (written at coordinator rates, compared numerically). Runs after
// kShardTables and AttemptsDdl (and, on an older registry, the migration).
constexpr const char* kSchema = R"sql(
CREATE TABLE IF NOT EXISTS sweeps(
  name TEXT PRIMARY KEY, spec_text TEXT NOT NULL, spec_hash TEXT NOT NULL,
  out_dir TEXT NOT NULL, created TEXT NOT NULL, updated TEXT NOT NULL,
  git_commit TEXT NOT NULL, host TEXT NOT NULL);
CREATE VIEW IF NOT EXISTS shards AS
  SELECT p.seq, p.id, m.sweep, m.stage, m.stage_index, p.kind, p.params, p.axes, p.seed, p.role,
         p.needs, s.status, s.attempts, s.artifact, s.error, s.updated, s.stamp
  FROM sweep_shards m JOIN shard_specs p ON p.seq = m.seq JOIN shard_states s ON s.seq = m.seq;
CREATE TRIGGER IF NOT EXISTS shards_update INSTEAD OF UPDATE ON shards BEGIN
  UPDATE shard_states SET status = NEW.status, attempts = NEW.attempts, artifact = NEW.artifact,
                          error = NEW.error, updated = NEW.updated
  WHERE seq = OLD.seq;
END;
CREATE TABLE IF NOT EXISTS metrics(
  shard TEXT NOT NULL, name TEXT NOT NULL, value REAL, PRIMARY KEY(shard, name));
CREATE TABLE IF NOT EXISTS provenance(
  sweep TEXT NOT NULL, key TEXT NOT NULL, value TEXT NOT NULL, PRIMARY KEY(sweep, key));
CREATE TABLE IF NOT EXISTS launches(
  id INTEGER PRIMARY KEY AUTOINCREMENT, sweep TEXT NOT NULL, started TEXT NOT NULL,
  ended TEXT, host TEXT NOT NULL, pid INTEGER NOT NULL, workers INTEGER NOT NULL,
  exit_code INTEGER, job_id TEXT NOT NULL);
CREATE TRIGGER IF NOT EXISTS shard_specs_role BEFORE INSERT ON shard_specs
  WHEN NEW.role <> 'single' AND NEW.role <> 'map' AND NEW.role <> 'reduce' BEGIN
  SELECT RAISE(ABORT, 'shard_specs.role must be single, map or reduce');
END;
CREATE TRIGGER IF NOT EXISTS shard_specs_role_update BEFORE UPDATE OF role ON shard_specs
  WHEN NEW.role <> 'single' AND NEW.role <> 'map' AND NEW.role <> 'reduce' BEGIN
  SELECT RAISE(ABORT, 'shard_specs.role must be single, map or reduce');
END;
CREATE TABLE IF NOT EXISTS slurm_jobs(
  job_id TEXT PRIMARY KEY, sweep TEXT NOT NULL, submitted TEXT NOT NULL, mode TEXT NOT NULL,
  chain_index INTEGER NOT NULL, depends_on TEXT NOT NULL, nodes INTEGER NOT NULL,
  gpus_per_node INTEGER NOT NULL, workers_per_node INTEGER NOT NULL, time_limit TEXT NOT NULL,
  script TEXT NOT NULL, log TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS live_points(
  shard_seq INTEGER NOT NULL, attempt INTEGER NOT NULL, name TEXT NOT NULL, step INTEGER NOT NULL,
  value REAL NOT NULL, t REAL NOT NULL, PRIMARY KEY(shard_seq, attempt, name, step)) WITHOUT ROWID;
)sql";

#define SPEC_COLUMNS "id, sweep, stage, stage_index, kind, params, axes, seed, role, needs"
#define STATE_COLUMNS "status, attempts, artifact, error, updated"
#define SHARD_COLUMNS SPEC_COLUMNS ", status, attempts, artifact, error"
// The same from the base tables (a shard looked up by id: one row, its first sweep's names).
#define BASE_SHARD_SELECT                                                                    \
  "SELECT p.id, p.sweep, p.stage, p.stage_index, p.kind, p.params, p.axes, p.seed, p.role, " \
  "p.needs, s.status, s.attempts, s.artifact, s.error, p.seq FROM shard_specs p "            \
  "JOIN shard_states s ON s.seq = p.seq "
#define ATTEMPT_COLUMNS                                                                         \
  "shard, n, rank, host, gpu, start, \"end\", outcome, signal, exit_code, error, peak_rss_kb, " \
  "job_id"
#define SWEEP_COLUMNS "name, spec_text, spec_hash, out_dir, created, updated, git_commit, host"

// Resets a cached statement when the call using it ends, so no read transaction stays open.
class Use {
 public:
  explicit Use(SQLite::Statement& s) : s_(s) {}
  ~Use() { s_.tryReset(); }
  SQLite::Statement* operator->() { return &s_; }
  SQLite::Statement& operator*() { return s_; }

 private:
  SQLite::Statement& s_;
};

// SQLite stores NaN as NULL; metrics read back as NaN.
double ReadReal(const SQLite::Column& c) {
  return c.isNull() ? std::numeric_limits<double>::quiet_NaN() : c.getDouble();
}

SweepRow ReadSweep(SQLite::Statement& s) {
  return SweepRow{s.getColumn(0).getString(), s.getColumn(1).getString(),
                  s.getColumn(2).getString(), s.getColumn(3).getString(),
                  s.getColumn(4).getString(), s.getColumn(5).getString(),
                  s.getColumn(6).getString(), s.getColumn(7).getString()};
}

ShardRow ReadShard(SQLite::Statement& s) {
  ShardKey::Fields f;
  f.id = ShardId{s.getColumn(0).getString()};
  f.stage = s.getColumn(2).getString();
  f.kind = s.getColumn(4).getString();
  f.params_json = s.getColumn(5).getString();
  f.axes_json = s.getColumn(6).getString();
  f.seed = s.getColumn(7).getInt64();
  f.role = ParseShardRole(s.getColumn(8).getString());
  for (const auto& n : Json::parse(s.getColumn(9).getString()))
    f.needs.push_back({n.get<std::string>()});
  ShardRow r;
  // Parsed here, as before the key: a row's JSON is checked when it is read, and readers
  // (status, report) use it.
  Json params = Json::parse(f.params_json), axes = Json::parse(f.axes_json);
  r.key = ShardKey(std::move(f), std::move(params), std::move(axes));
  r.sweep = s.getColumn(1).getString();
  r.stage_index = s.getColumn(3).getInt();
  r.status = ParseShardStatus(s.getColumn(10).getString());
  r.attempts = s.getColumn(11).getInt();
  r.artifact = s.getColumn(12).getString();
  r.error = s.getColumn(13).getString();
  r.seq = s.getColumn(14).getInt64();
  return r;
}

AttemptRow ReadAttempt(SQLite::Statement& s) {
  AttemptRow a;
  a.shard = ShardId{s.getColumn(0).getString()};
  a.n = s.getColumn(1).getInt();
  a.rank = s.getColumn(2).getInt();
  a.host = s.getColumn(3).getString();
  a.gpu = s.getColumn(4).getString();
  a.start = s.getColumn(5).getDouble();
  a.end = s.getColumn(6).getDouble();
  a.outcome = ParseOutcome(s.getColumn(7).getString());
  a.signal = s.getColumn(8).getInt();
  a.exit_code = s.getColumn(9).getInt();
  a.error = s.getColumn(10).getString();
  a.peak_rss_kb = s.getColumn(11).getInt64();
  a.job_id = s.getColumn(12).getString();
  return a;
}

// Shard specs inserted per statement when a launch records its plan.
constexpr size_t kSpecRows = 32;

// INSERT of `rows` specs at once; a known id keeps its row (and its state).
std::string BulkSpecInsert(size_t rows) {
  std::string q = "INSERT OR IGNORE INTO shard_specs(" SPEC_COLUMNS ") VALUES";
  for (size_t i = 0; i < rows; ++i) q += i ? ",(?,?,?,?,?,?,?,?,?,?)" : "(?,?,?,?,?,?,?,?,?,?)";
  return q;
}

// The state rows of `rows` shards at once (all six columns: a replace is an overwrite).
std::string BulkStateReplace(size_t rows) {
  std::string q = "INSERT OR REPLACE INTO shard_states(seq, " STATE_COLUMNS ", stamp) VALUES";
  for (size_t i = 0; i < rows; ++i) q += i ? ",(?,?,?,?,?,?,?)" : "(?,?,?,?,?,?,?)";
  return q;
}

// INSERT of `rows` attempt rows at once (their shard_seq given).
std::string BulkAttemptInsert(size_t rows) {
  std::string q = "INSERT OR REPLACE INTO attempts(" ATTEMPT_COLUMNS ", shard_seq) VALUES";
  for (size_t i = 0; i < rows; ++i)
    q += i ? ",(?,?,?,?,?,?,?,?,?,?,?,?,?,?)" : "(?,?,?,?,?,?,?,?,?,?,?,?,?,?)";
  return q;
}

// Brings a registry of an older schema version (1 to kSchemaVersion - 1) to this one, in one
// transaction: the steps of each version, in order (see kSchemaVersion).
void UpgradeSchema(SQLite::Database& db, int version) {
  SQLite::Transaction tx(db);
  if (version == 1 || version == 2) {
    // Version 3's tables beside the old ones, the rows copied (the old rowids become the
    // seqs), the old tables and their indexes dropped.
    db.exec(std::string(kShardTables) + AttemptsDdl("attempts_v3"));
    db.exec("INSERT INTO shard_specs(seq, " SPEC_COLUMNS ") SELECT rowid, " SPEC_COLUMNS
            " FROM shards;"
            "INSERT INTO shard_states(seq, " STATE_COLUMNS ") SELECT rowid, " STATE_COLUMNS
            " FROM shards;"
            "INSERT INTO attempts_v3(" ATTEMPT_COLUMNS
            ", shard_seq) SELECT a.shard, a.n, a.rank, "
            "a.host, a.gpu, a.start, a.\"end\", a.outcome, a.signal, a.exit_code, a.error, "
            "a.peak_rss_kb, a.job_id, p.seq FROM attempts a JOIN shard_specs p ON p.id = a.shard;"
            "DROP TABLE attempts; DROP TABLE shards; ALTER TABLE attempts_v3 RENAME TO attempts;");
  }
  if (version == 3) {
    // Version 4: the stamp column, membership (below) and the view over it.
    db.exec(
        "ALTER TABLE shard_states ADD COLUMN stamp INTEGER NOT NULL DEFAULT 0;"
        "DROP VIEW IF EXISTS shards; DROP INDEX IF EXISTS shard_specs_sweep_stage;");
  }
  db.exec(std::string(kShardTables) + AttemptsDdl("attempts"));
  if (version >= 1 && version < 4) {
    // Every shard belongs to the sweep that recorded it (the only membership before 4).
    db.exec(
        "INSERT OR IGNORE INTO sweep_shards(sweep, seq, stage, stage_index) "
        "SELECT sweep, seq, stage, stage_index FROM shard_specs");
  }
  if (version < 6) {
    // Version 6 checks roles from now on (kSchema's triggers); the rows so far must pass too.
    SQLite::Statement bad(db,
                          "SELECT id, role FROM shard_specs WHERE role <> 'single' AND "
                          "role <> 'map' AND role <> 'reduce' LIMIT 1");
    if (bad.executeStep()) {
      throw std::runtime_error(fmt::format(
          "{}: shard {} has role '{}' (single, map or reduce); cannot upgrade to schema {}",
          db.getFilename(), bad.getColumn(0).getString(), bad.getColumn(1).getString(),
          kSchemaVersion));
    }
  }
  db.exec(kSchema);
  if (version == 1 || version == 2) {
    db.exec("DROP INDEX IF EXISTS shard_specs_sweep_stage;");
  }
  if (version == 1) {
    db.exec("DROP INDEX IF EXISTS attempts_shard; DROP INDEX IF EXISTS metrics_shard;");
  }
  db.exec(fmt::format("PRAGMA user_version={}", kSchemaVersion));
  tx.commit();
}

}  // namespace

// A statement used through SQLite's C API: SQLiteCpp binds text only from NUL-terminated
// strings, and a launch's plan is recorded from views.
class RawStatement {
 public:
  RawStatement(SQLite::Database& db, const std::string& sql) : db_(db.getHandle()) {
    Check(sqlite3_prepare_v3(db_, sql.c_str(), -1, SQLITE_PREPARE_PERSISTENT, &stmt_, nullptr));
  }
  ~RawStatement() { sqlite3_finalize(stmt_); }
  RawStatement(const RawStatement&) = delete;
  RawStatement& operator=(const RawStatement&) = delete;
  void Text(int i, std::string_view v) {
    Check(sqlite3_bind_text(stmt_, i, v.data(), static_cast<int>(v.size()), SQLITE_STATIC));
  }
  void Int(int i, int64_t v) { Check(sqlite3_bind_int64(stmt_, i, v)); }
  void Exec() {
    const int rc = sqlite3_step(stmt_);
    sqlite3_reset(stmt_);
    if (rc != SQLITE_DONE) Check(rc);
  }

 private:
  void Check(int rc) {
    if (rc != SQLITE_OK && rc != SQLITE_DONE) {
      throw SQLite::Exception(fmt::format("{} ({})", sqlite3_errmsg(db_), sqlite3_errstr(rc)), rc);
    }
  }
  sqlite3* db_;
  sqlite3_stmt* stmt_ = nullptr;
};

// Every statement the registry runs, compiled once per connection.
struct Registry::Statements {
  explicit Statements(SQLite::Database& db)
      : begin(db, "BEGIN IMMEDIATE"),
        commit(db, "COMMIT"),
        rollback(db, "ROLLBACK"),
        upsert_sweep(db, "INSERT INTO sweeps(" SWEEP_COLUMNS
                         ") VALUES(?,?,?,?,?,?,?,?) "
                         "ON CONFLICT(name) DO UPDATE SET spec_text=excluded.spec_text, "
                         "spec_hash=excluded.spec_hash, out_dir=excluded.out_dir, "
                         "updated=excluded.updated, git_commit=excluded.git_commit, "
                         "host=excluded.host"),
        insert_spec(db, BulkSpecInsert(1)),
        insert_specs(db, BulkSpecInsert(kSpecRows)),
        max_seq(db, "SELECT coalesce(max(seq), 0) FROM shard_specs"),
        insert_new_states(db,
                          "INSERT INTO shard_states(seq, " STATE_COLUMNS
                          ") "
                          "SELECT seq, 'pending', 0, '', '', ?1 FROM shard_specs WHERE seq > ?2"),
        insert_new_members(db,
                           "INSERT OR IGNORE INTO sweep_shards(sweep, seq, stage, stage_index) "
                           "SELECT sweep, seq, stage, stage_index FROM shard_specs WHERE seq > ?"),
        add_member(db,
                   "INSERT OR IGNORE INTO sweep_shards(sweep, seq, stage, stage_index) "
                   "VALUES(?,?,?,?)"),
        add_member_by_id(db,
                         "INSERT OR IGNORE INTO sweep_shards(sweep, seq, stage, stage_index) "
                         "SELECT ?1, seq, ?2, ?3 FROM shard_specs WHERE id=?4"),
        set_shard_state(
            db,
            "UPDATE shard_states SET status=?, attempts=?, artifact=?, error=?, updated=?, "
            "stamp=? WHERE seq=(SELECT seq FROM shard_specs WHERE id=?)"),
        set_shard_state_at(db,
                           "UPDATE shard_states SET status=?, attempts=?, artifact=?, error=?, "
                           "updated=?, stamp=? WHERE seq=?"),
        set_stamp(db, "UPDATE shard_states SET stamp=? WHERE seq=?"),
        // ?14, the shard's seq, is looked up from ?1, its id, when 0.
        add_attempts(db, BulkAttemptInsert(kBulkRows)),
        set_states(db, BulkStateReplace(kBulkRows)),
        add_attempt(db, "INSERT OR REPLACE INTO attempts(" ATTEMPT_COLUMNS
                        ", shard_seq) VALUES(?1,?,?,?,?,?,?,?,?,?,?,?,?,"
                        "coalesce(nullif(?14, 0), (SELECT seq FROM shard_specs WHERE id=?1)))"),
        clear_metrics(db, "DELETE FROM metrics WHERE shard=?"),
        insert_metric(db, "INSERT OR REPLACE INTO metrics(shard, name, value) VALUES(?,?,?)"),
        set_provenance(db, "INSERT OR REPLACE INTO provenance(sweep, key, value) VALUES(?,?,?)"),
        begin_launch(db,
                     "INSERT INTO launches(sweep, started, host, pid, workers, job_id) "
                     "VALUES(?,?,?,?,?,?)"),
        end_launch(db, "UPDATE launches SET ended=?, exit_code=? WHERE id=?"),
        recover_orphans(
            db,
            "UPDATE shard_states SET status='pending', updated=?1 WHERE status='running' "
            "AND seq IN (SELECT seq FROM sweep_shards WHERE sweep=?2)"),
        sweeps(db, "SELECT " SWEEP_COLUMNS " FROM sweeps ORDER BY name"),
        sweep(db, "SELECT " SWEEP_COLUMNS " FROM sweeps WHERE name=?"),
        shards_of_sweep(
            db, "SELECT " SHARD_COLUMNS ", seq FROM shards WHERE sweep=? ORDER BY stage_index, id"),
        shards_of_stage(
            db, "SELECT " SHARD_COLUMNS ", seq FROM shards WHERE sweep=? AND stage=? ORDER BY id"),
        shard(db, BASE_SHARD_SELECT "WHERE p.id=?"),
        shards_with_status(
            db, "SELECT " SHARD_COLUMNS
                ", seq FROM shards WHERE sweep=? AND status=? ORDER BY stage_index, seq"),
        count_shards(db,
                     "SELECT m.stage, min(m.stage_index), min(p.kind), s.status, count(*) "
                     "FROM sweep_shards m JOIN shard_specs p ON p.seq = m.seq "
                     "JOIN shard_states s ON s.seq = m.seq WHERE m.sweep=? "
                     "GROUP BY m.stage, s.status"),
        shard_states(
            db,
            "SELECT id, status, attempts, artifact, error, seq, updated, stamp FROM shards "
            "WHERE sweep=?"),
        shards_by_prefix(db, BASE_SHARD_SELECT "WHERE p.id>=? AND p.id<? ORDER BY p.id LIMIT 11"),
        attempt_numbers(
            db,
            "SELECT p.id, max(a.n) FROM sweep_shards m JOIN shard_specs p ON p.seq = m.seq "
            "JOIN attempts a ON a.shard_seq = m.seq WHERE m.sweep=? GROUP BY m.seq"),
        attempts(db, "SELECT " ATTEMPT_COLUMNS
                     " FROM attempts "
                     "WHERE shard_seq=(SELECT seq FROM shard_specs WHERE id=?) ORDER BY n"),
        metrics(db, "SELECT name, value FROM metrics WHERE shard=?"),
        metrics_of_sweep(db,
                         "SELECT m.shard, m.name, m.value FROM metrics m JOIN shards s "
                         "ON s.id=m.shard WHERE s.sweep=? ORDER BY m.shard, m.name"),
        metrics_of_stage(db,
                         "SELECT m.shard, m.name, m.value FROM metrics m JOIN shards s "
                         "ON s.id=m.shard WHERE s.sweep=? AND s.stage=? "
                         "ORDER BY m.shard, m.name"),
        provenance(db, "SELECT key, value FROM provenance WHERE sweep=?") {}

  SQLite::Statement begin, commit, rollback, upsert_sweep;
  RawStatement insert_spec, insert_specs;
  SQLite::Statement max_seq, insert_new_states, insert_new_members, add_member, add_member_by_id,
      set_shard_state, set_shard_state_at, set_stamp, add_attempts, set_states, add_attempt,
      clear_metrics, insert_metric, set_provenance, begin_launch, end_launch, recover_orphans;
  SQLite::Statement sweeps, sweep, shards_of_sweep, shards_of_stage, shard, shards_with_status,
      count_shards, shard_states, shards_by_prefix, attempt_numbers, attempts, metrics,
      metrics_of_sweep, metrics_of_stage, provenance;
};

Registry::Registry(const std::string& path, Mode mode) : path_(path) {
  fs::path dir = fs::path(path).parent_path();
  if (dir.empty()) dir = ".";
  if (mode == Mode::kReadOnly) {
    if (!fs::exists(path)) {
      throw UsageError(
          fmt::format("no registry at {} (run a sweep first, or pass --registry)", path));
    }
  } else {
    std::error_code ec;
    fs::create_directories(dir, ec);
    if (ec)
      throw UsageError(fmt::format("cannot create directory {}: {}", dir.string(), ec.message()));
  }
  // No allocation statistics: they take a global mutex on every SQLite malloc (~5 % of the
  // coordinator's time). Must precede SQLite's initialisation; harmless (SQLITE_MISUSE) after.
  static const bool memstatus_off = [] {
    return sqlite3_config(SQLITE_CONFIG_MEMSTATUS, 0) == SQLITE_OK;
  }();
  (void)memstatus_off;
  network_fs_ = IsNetworkFilesystem(dir.string());
  const int busy_ms = network_fs_ ? 30000 : 5000;
  try {
    db_ = std::make_unique<SQLite::Database>(
        path,
        // NOMUTEX: a Registry is used by one thread; SQLite's per-call mutexes cost ~10 % of
        // the coordinator's registry time.
        (mode == Mode::kWrite ? SQLite::OPEN_READWRITE | SQLite::OPEN_CREATE
                              : SQLite::OPEN_READONLY) |
            SQLite::OPEN_NOMUTEX,
        busy_ms);
    int version = db_->execAndGet("PRAGMA user_version").getInt();
    if (version > kSchemaVersion) {
      throw UsageError(fmt::format(
          "registry {} has schema version {}, newer than this seedgrid ({}); upgrade seedgrid",
          path, version, kSchemaVersion));
    }
    if (mode == Mode::kWrite) {
      // WAL needs shared memory between processes, which network filesystems do not provide.
      db_->exec(network_fs_ ? "PRAGMA journal_mode=DELETE" : "PRAGMA journal_mode=WAL");
      db_->exec(network_fs_ ? "PRAGMA synchronous=FULL" : "PRAGMA synchronous=NORMAL");
      // The writer updates shard rows in hash order, i.e. on random pages: keep them cached
      // (64 MiB) and let the WAL grow to ~40 MiB between checkpoints, so a batch of updates
      // does not re-read pages or wait on a checkpoint's fsync every other commit.
      db_->exec("PRAGMA cache_size=-65536");
      if (!network_fs_) db_->exec("PRAGMA wal_autocheckpoint=10000");
      if (version < kSchemaVersion) UpgradeSchema(*db_, version);
    } else if (version == 0) {
      throw UsageError(fmt::format("{} is not a seedgrid registry (no schema)", path));
    }
    st_ = std::make_unique<Statements>(*db_);
  } catch (const SQLite::Exception& e) {
    throw UsageError(fmt::format("cannot open registry {}: {}", path, e.what()));
  }
}

Registry::~Registry() = default;

Registry::Batch::Batch(Registry& r) : r_(r) { Use(r_.st_->begin)->exec(); }

Registry::Batch::~Batch() {
  if (done_) return;
  try {
    Use(r_.st_->rollback)->exec();
  } catch (...) {
    // The connection rolls back on its own when it closes; nothing more to do here.
  }
}

void Registry::Batch::Commit() {
  Use(r_.st_->commit)->exec();
  done_ = true;
}

void Registry::UpsertSweep(const SweepRow& s) {
  std::string now = NowIso8601Utc();
  Use q(st_->upsert_sweep);
  q->bind(1, s.name);
  q->bind(2, s.spec_text);
  q->bind(3, s.spec_hash);
  q->bind(4, s.out_dir);
  q->bind(5, s.created.empty() ? now : s.created);
  q->bind(6, s.updated.empty() ? now : s.updated);
  q->bind(7, s.git_commit);
  q->bind(8, s.host);
  q->exec();
}

void Registry::InsertShards(const std::vector<ShardRow>& shards) {
  std::vector<ShardSpecRow> rows;
  rows.reserve(shards.size());
  for (const auto& r : shards) rows.push_back({r.key, r.sweep, r.stage_index});
  std::optional<Batch> own;
  if (sqlite3_get_autocommit(db_->getHandle())) own.emplace(*this);
  InsertShardSpecs(rows);
  // Rows that were known already (another sweep's) join this sweep too.
  for (const auto& r : shards) {
    Use q(st_->add_member_by_id);
    q->bind(1, r.sweep);
    q->bind(2, r.key.stage());
    q->bind(3, r.stage_index);
    q->bindNoCopy(4, r.key.id().hex);
    q->exec();
  }
  if (own) own->Commit();
}

void Registry::AddMembers(const std::string& sweep, std::span<const Member> members) {
  for (const auto& m : members) {
    Use q(st_->add_member);
    q->bindNoCopy(1, sweep);
    q->bind(2, m.seq);
    q->bindNoCopy(3, m.stage);
    q->bind(4, m.stage_index);
    q->exec();
  }
}

void Registry::InsertShardSpecs(std::span<const ShardSpecRow> shards) {
  // One transaction for the lot unless the caller already opened one.
  std::optional<Batch> own;
  if (sqlite3_get_autocommit(db_->getHandle())) own.emplace(*this);
  int64_t before = 0;
  {
    Use q(st_->max_seq);
    if (q->executeStep()) before = q->getColumn(0).getInt64();
  }
  // The needs' JSON of the rows bound to the statement being run (bound as views).
  std::string needs[kSpecRows];
  auto bind = [&needs](RawStatement& q, int p, size_t k, const ShardSpecRow& r) {
    const ShardKey& key = r.key;
    needs[k] = key.needs_json();
    q.Text(p, key.id().hex);
    q.Text(p + 1, r.sweep);
    q.Text(p + 2, key.stage());
    q.Int(p + 3, r.stage_index);
    q.Text(p + 4, key.kind());
    q.Text(p + 5, key.params_json());
    q.Text(p + 6, key.axes_json());
    q.Int(p + 7, key.seed());
    q.Text(p + 8, ToString(key.role()));
    q.Text(p + 9, needs[k]);
  };
  // Specs kSpecRows to a statement (a launch records up to millions), then one pending state
  // for each new one (their seqs are the ones past the largest before), in one statement.
  size_t i = 0;
  for (; i + kSpecRows <= shards.size(); i += kSpecRows) {
    for (size_t k = 0; k < kSpecRows; ++k)
      bind(st_->insert_specs, static_cast<int>(1 + 10 * k), k, shards[i + k]);
    st_->insert_specs.Exec();
  }
  for (; i < shards.size(); ++i) {
    bind(st_->insert_spec, 1, 0, shards[i]);
    st_->insert_spec.Exec();
  }
  {
    Use q(st_->insert_new_states);
    q->bind(1, UnixNow());
    q->bind(2, before);
    q->exec();
  }
  // New shards belong to the sweep that recorded them; known ones keep their memberships
  // (a caller adds the others with AddMembers).
  Use q(st_->insert_new_members);
  q->bind(1, before);
  q->exec();
  if (own) own->Commit();
}

namespace {
// A state's five columns (STATE_COLUMNS) and its stamp as the parameters from `first` on.
void BindShardState(SQLite::Statement& q, int first, ShardStatus status, int attempts,
                    const std::string& artifact, const std::string& error, double updated,
                    int64_t stamp) {
  q.bindNoCopy(first, ToString(status).data());  // a NUL-terminated literal
  q.bind(first + 1, attempts);
  q.bindNoCopy(first + 2, artifact);
  q.bindNoCopy(first + 3, error);
  q.bind(first + 4, updated > 0 ? updated : UnixNow());
  q.bind(first + 5, stamp);
}
}  // namespace

void Registry::SetShardState(const ShardId& id, ShardStatus status, int attempts,
                             const std::string& artifact, const std::string& error, int64_t stamp) {
  Use q(st_->set_shard_state);
  BindShardState(*q, 1, status, attempts, artifact, error, 0, stamp);
  q->bindNoCopy(7, id.hex);
  if (q->exec() == 0) {
    throw std::invalid_argument(fmt::format("SetShardState: no shard {} in {}", id.hex, path_));
  }
}

void Registry::SetShardStateAt(int64_t seq, ShardStatus status, int attempts,
                               const std::string& artifact, const std::string& error,
                               double updated, int64_t stamp) {
  Use q(st_->set_shard_state_at);
  BindShardState(*q, 1, status, attempts, artifact, error, updated, stamp);
  q->bind(7, static_cast<int64_t>(seq));
  if (q->exec() == 0) {
    throw std::invalid_argument(
        fmt::format("SetShardStateAt: no shard with seq {} in {}", seq, path_));
  }
}

void Registry::SetShardStamp(int64_t seq, int64_t stamp) {
  Use q(st_->set_stamp);
  q->bind(1, stamp);
  q->bind(2, seq);
  q->exec();
}

namespace {
// One attempt row as the 14 parameters from `first` on (ATTEMPT_COLUMNS, shard_seq).
void BindAttempt(SQLite::Statement& q, int first, const AttemptRow& a) {
  q.bindNoCopy(first, a.shard.hex);
  q.bind(first + 1, a.n);
  q.bind(first + 2, a.rank);
  q.bindNoCopy(first + 3, a.host);
  q.bindNoCopy(first + 4, a.gpu);
  q.bind(first + 5, a.start);
  q.bind(first + 6, a.end);
  q.bindNoCopy(first + 7, ToString(a.outcome).data());  // a NUL-terminated literal
  q.bind(first + 8, a.signal);
  q.bind(first + 9, a.exit_code);
  q.bindNoCopy(first + 10, a.error);
  q.bind(first + 11, a.peak_rss_kb);
  q.bindNoCopy(first + 12, a.job_id);
  q.bind(first + 13, a.shard_seq);
}
}  // namespace

void Registry::SetShardStatesAt(std::span<const ShardState> states) {
  while (states.size() >= kBulkRows) {
    Use q(st_->set_states);
    for (size_t i = 0; i < kBulkRows; ++i) {
      const ShardState& s = states[i];
      const int p = static_cast<int>(1 + 7 * i);
      q->bind(p, s.seq);
      BindShardState(*q, p + 1, s.status, s.attempts, s.artifact, s.error, s.updated, s.stamp);
    }
    q->exec();
    states = states.subspan(kBulkRows);
  }
  for (const auto& s : states) {
    SetShardStateAt(s.seq, s.status, s.attempts, s.artifact, s.error, s.updated, s.stamp);
  }
}

void Registry::AddAttempt(const AttemptRow& a) {
  Use q(st_->add_attempt);
  BindAttempt(*q, 1, a);
  q->exec();
}

void Registry::AddAttempts(std::span<const AttemptRow> rows) {
  while (rows.size() >= kBulkRows) {
    Use q(st_->add_attempts);
    for (size_t i = 0; i < kBulkRows; ++i) {
      if (rows[i].shard_seq <= 0)
        throw std::invalid_argument("AddAttempts: a row without shard_seq");
      BindAttempt(*q, static_cast<int>(1 + 14 * i), rows[i]);
    }
    q->exec();
    rows = rows.subspan(kBulkRows);
  }
  for (const auto& a : rows) AddAttempt(a);
}

void Registry::SetMetrics(const ShardId& id,
                          const std::vector<std::pair<std::string, double>>& metrics) {
  std::optional<Batch> own;
  if (sqlite3_get_autocommit(db_->getHandle())) own.emplace(*this);
  {
    Use q(st_->clear_metrics);
    q->bindNoCopy(1, id.hex);
    q->exec();
  }
  for (const auto& [name, value] : metrics) {
    Use q(st_->insert_metric);
    q->bindNoCopy(1, id.hex);
    q->bindNoCopy(2, name);
    q->bind(3, value);  // NaN is stored as NULL
    q->exec();
  }
  if (own) own->Commit();
}

void Registry::SetProvenance(const std::string& sweep, const std::string& key,
                             const std::string& value) {
  Use q(st_->set_provenance);
  q->bind(1, sweep);
  q->bind(2, key);
  q->bind(3, value);
  q->exec();
}

int64_t Registry::BeginLaunch(const std::string& sweep, const std::string& host, int64_t pid,
                              int workers, const std::string& job_id) {
  Use q(st_->begin_launch);
  q->bind(1, sweep);
  q->bind(2, NowIso8601Utc());
  q->bind(3, host);
  q->bind(4, pid);
  q->bind(5, workers);
  q->bind(6, job_id);
  q->exec();
  return db_->getLastInsertRowid();
}

void Registry::EndLaunch(int64_t launch, int exit_code) {
  Use q(st_->end_launch);
  q->bind(1, NowIso8601Utc());
  q->bind(2, exit_code);
  q->bind(3, launch);
  q->exec();
}

int Registry::RecoverOrphans(const std::string& sweep) {
  Use q(st_->recover_orphans);
  q->bind(1, UnixNow());
  q->bind(2, sweep);
  return q->exec();
}

std::vector<SweepRow> Registry::Sweeps() const {
  std::vector<SweepRow> out;
  Use q(st_->sweeps);
  while (q->executeStep()) out.push_back(ReadSweep(st_->sweeps));
  return out;
}

std::optional<SweepRow> Registry::Sweep(const std::string& name) const {
  Use q(st_->sweep);
  q->bind(1, name);
  if (!q->executeStep()) return std::nullopt;
  return ReadSweep(st_->sweep);
}

std::vector<ShardRow> Registry::Shards(const std::string& sweep, const std::string& stage) const {
  SQLite::Statement& s = stage.empty() ? st_->shards_of_sweep : st_->shards_of_stage;
  Use q(s);
  q->bind(1, sweep);
  if (!stage.empty()) q->bind(2, stage);
  std::vector<ShardRow> out;
  while (q->executeStep()) out.push_back(ReadShard(s));
  return out;
}

std::vector<ShardRow> Registry::ShardsWithStatus(const std::string& sweep,
                                                 ShardStatus status) const {
  Use q(st_->shards_with_status);
  q->bind(1, sweep);
  q->bindNoCopy(2, ToString(status).data());
  std::vector<ShardRow> out;
  while (q->executeStep()) out.push_back(ReadShard(st_->shards_with_status));
  return out;
}

std::vector<Registry::StatusCount> Registry::CountByStatus(const std::string& sweep) const {
  Use q(st_->count_shards);
  q->bind(1, sweep);
  std::vector<StatusCount> out;
  while (q->executeStep()) {
    out.push_back({q->getColumn(0).getString(), q->getColumn(1).getInt(),
                   q->getColumn(2).getString(), ParseShardStatus(q->getColumn(3).getString()),
                   q->getColumn(4).getInt64()});
  }
  return out;
}

std::optional<ShardRow> Registry::Shard(const ShardId& id) const {
  Use q(st_->shard);
  q->bind(1, id.hex);
  if (!q->executeStep()) return std::nullopt;
  return ReadShard(st_->shard);
}

std::vector<ShardState> Registry::ShardStates(const std::string& sweep) const {
  Use q(st_->shard_states);
  q->bind(1, sweep);
  std::vector<ShardState> out;
  while (q->executeStep()) {
    ShardState& s = out.emplace_back();
    s.id = ShardId{q->getColumn(0).getString()};
    s.status = ParseShardStatus(q->getColumn(1).getString());
    s.attempts = q->getColumn(2).getInt();
    s.artifact = q->getColumn(3).getString();
    s.error = q->getColumn(4).getString();
    s.seq = q->getColumn(5).getInt64();
    s.updated = q->getColumn(6).getDouble();
    s.stamp = q->getColumn(7).getInt64();
  }
  return out;
}

std::vector<std::pair<ShardId, int>> Registry::AttemptNumbers(const std::string& sweep) const {
  Use q(st_->attempt_numbers);
  q->bind(1, sweep);
  std::vector<std::pair<ShardId, int>> out;
  while (q->executeStep())
    out.emplace_back(ShardId{q->getColumn(0).getString()}, q->getColumn(1).getInt());
  return out;
}

std::optional<ShardRow> Registry::FindShardByPrefix(const std::string& prefix) const {
  std::string p;
  for (char c : prefix) {
    char l = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
    if (!std::isxdigit(static_cast<unsigned char>(l))) {
      throw UsageError(fmt::format("'{}' is not a shard id prefix (hex digits expected)", prefix));
    }
    p += l;
  }
  if (p.empty()) throw UsageError("empty shard id prefix");
  Use q(st_->shards_by_prefix);
  q->bind(1, p);
  q->bind(2, p + "g");  // ids are lowercase hex: every id with prefix p sorts below p+"g"
  std::vector<ShardRow> found;
  while (q->executeStep()) found.push_back(ReadShard(st_->shards_by_prefix));
  if (found.empty()) return std::nullopt;
  if (found.size() == 1) return found.front();
  std::string list;
  for (size_t i = 0; i < found.size() && i < 10; ++i) {
    list += fmt::format("\n  {} ({}/{} seed {})", found[i].key.id().hex, found[i].sweep,
                        found[i].key.stage(), found[i].key.seed());
  }
  throw UsageError(fmt::format("shard prefix '{}' is ambiguous; candidates:{}{}", prefix, list,
                               found.size() > 10 ? "\n  ..." : ""));
}

std::vector<AttemptRow> Registry::Attempts(const ShardId& id) const {
  Use q(st_->attempts);
  q->bind(1, id.hex);
  std::vector<AttemptRow> out;
  while (q->executeStep()) out.push_back(ReadAttempt(st_->attempts));
  return out;
}

std::map<std::string, double> Registry::Metrics(const ShardId& id) const {
  Use q(st_->metrics);
  q->bind(1, id.hex);
  std::map<std::string, double> out;
  while (q->executeStep()) out[q->getColumn(0).getString()] = ReadReal(q->getColumn(1));
  return out;
}

std::vector<MetricRow> Registry::MetricsOfSweep(const std::string& sweep,
                                                const std::string& stage) const {
  SQLite::Statement& s = stage.empty() ? st_->metrics_of_sweep : st_->metrics_of_stage;
  Use q(s);
  q->bind(1, sweep);
  if (!stage.empty()) q->bind(2, stage);
  std::vector<MetricRow> out;
  while (q->executeStep()) {
    out.push_back(MetricRow{ShardId{s.getColumn(0).getString()}, s.getColumn(1).getString(),
                            ReadReal(s.getColumn(2))});
  }
  return out;
}

std::map<std::string, std::string> Registry::Provenance(const std::string& sweep) const {
  Use q(st_->provenance);
  q->bind(1, sweep);
  std::map<std::string, std::string> out;
  while (q->executeStep()) out[q->getColumn(0).getString()] = q->getColumn(1).getString();
  return out;
}

// slurm_jobs' statements are prepared when used, not with the others: a read-only connection
// to a registry older than version 5 has no such table, and submit is no hot path.
#define SLURM_JOB_COLUMNS                                                           \
  "job_id, sweep, submitted, mode, chain_index, depends_on, nodes, gpus_per_node, " \
  "workers_per_node, time_limit, script, log"

void Registry::AddSlurmJobs(std::span<const SlurmJobRow> jobs) {
  SQLite::Statement q(*db_, "INSERT OR REPLACE INTO slurm_jobs(" SLURM_JOB_COLUMNS
                            ") VALUES(?,?,?,?,?,?,?,?,?,?,?,?)");
  for (const auto& j : jobs) {
    q.bind(1, j.job_id);
    q.bind(2, j.sweep);
    q.bind(3, j.submitted);
    q.bind(4, j.mode);
    q.bind(5, j.chain_index);
    q.bind(6, j.depends_on);
    q.bind(7, j.nodes);
    q.bind(8, j.gpus_per_node);
    q.bind(9, j.workers_per_node);
    q.bind(10, j.time_limit);
    q.bind(11, j.script);
    q.bind(12, j.log);
    q.exec();
    q.reset();
  }
}

std::vector<SlurmJobRow> Registry::SlurmJobs(const std::string& sweep) const {
  SQLite::Statement q(*db_, "SELECT " SLURM_JOB_COLUMNS
                            " FROM slurm_jobs WHERE sweep=? ORDER BY submitted, chain_index");
  q.bind(1, sweep);
  std::vector<SlurmJobRow> out;
  while (q.executeStep()) {
    SlurmJobRow j;
    j.job_id = q.getColumn(0).getString();
    j.sweep = q.getColumn(1).getString();
    j.submitted = q.getColumn(2).getString();
    j.mode = q.getColumn(3).getString();
    j.chain_index = q.getColumn(4).getInt();
    j.depends_on = q.getColumn(5).getString();
    j.nodes = q.getColumn(6).getInt();
    j.gpus_per_node = q.getColumn(7).getInt();
    j.workers_per_node = q.getColumn(8).getInt();
    j.time_limit = q.getColumn(9).getString();
    j.script = q.getColumn(10).getString();
    j.log = q.getColumn(11).getString();
    out.push_back(std::move(j));
  }
  return out;
}

// ---- RunLock ----

RunLock::RunLock(const std::string& registry_path) {
  const std::string lock_path = registry_path + ".lock";
  std::error_code ec;
  fs::path dir = fs::path(registry_path).parent_path();
  if (!dir.empty()) fs::create_directories(dir, ec);  // open() below reports what fails
  fd_ = ::open(lock_path.c_str(), O_RDWR | O_CREAT | O_CLOEXEC, 0644);
  if (fd_ < 0) {
    throw UsageError(fmt::format("cannot open lock file {}: {}", lock_path, std::strerror(errno)));
  }
  if (::flock(fd_, LOCK_EX | LOCK_NB) != 0) {
    int err = errno;
    char buf[512] = {};
    ssize_t n = ::pread(fd_, buf, sizeof(buf) - 1, 0);
    ::close(fd_);
    fd_ = -1;
    if (err != EWOULDBLOCK) {
      throw UsageError(fmt::format("cannot lock {}: {}", lock_path, std::strerror(err)));
    }
    char host[256] = {}, started[64] = {};
    long long pid = 0;
    if (n > 0 && std::sscanf(buf, "%255s %lld %63s", host, &pid, started) >= 2) {
      throw UsageError(fmt::format(
          "registry {} is in use by seedgrid pid {} on {} (started {}); wait for it or stop it",
          registry_path, pid, host, started[0] ? started : "unknown"));
    }
    throw UsageError(
        fmt::format("registry {} is in use by another seedgrid process; wait for it or stop it",
                    registry_path));
  }
  std::string who = fmt::format("{} {} {}\n", Hostname(), ::getpid(), NowIso8601Utc());
  if (::ftruncate(fd_, 0) != 0 ||
      ::pwrite(fd_, who.data(), who.size(), 0) != static_cast<ssize_t>(who.size())) {
    int err = errno;
    ::close(fd_);
    fd_ = -1;
    throw UsageError(fmt::format("cannot write lock file {}: {}", lock_path, std::strerror(err)));
  }
}

RunLock::~RunLock() {
  // The file stays (unlinking it would let a newcomer lock a fresh inode while a third
  // process still waits on the old one); emptying it marks it free for people reading it.
  if (fd_ < 0) return;
  [[maybe_unused]] int rc = ::ftruncate(fd_, 0);
  ::close(fd_);  // releases the flock
}

// ---- filesystem detection ----

WalCheckpointer::WalCheckpointer(Registry& reg, std::chrono::milliseconds period)
    : reg_(reg), period_(period) {
  if (reg_.on_network_fs()) return;
  reg_.db_->exec("PRAGMA wal_autocheckpoint=0");
  thread_ = std::thread([this] {
    try {
      SQLite::Database db(reg_.path(), SQLite::OPEN_READWRITE | SQLite::OPEN_NOMUTEX, 5000);
      std::unique_lock<std::mutex> lock(mu_);
      while (!stop_) {
        cv_.wait_for(lock, period_, [this] { return stop_; });
        if (stop_) break;
        lock.unlock();
        // PASSIVE: copies what no reader needs, never waits for the writer or readers.
        sqlite3_wal_checkpoint_v2(db.getHandle(), nullptr, SQLITE_CHECKPOINT_PASSIVE, nullptr,
                                  nullptr);
        checkpoints_.fetch_add(1);
        lock.lock();
      }
    } catch (const std::exception& e) {
      std::fprintf(stderr, "warning: registry checkpoint thread stopped: %s\n", e.what());
    }
  });
}

WalCheckpointer::~WalCheckpointer() {
  if (!thread_.joinable()) return;
  {
    std::lock_guard<std::mutex> lock(mu_);
    stop_ = true;
  }
  cv_.notify_all();
  thread_.join();
  try {
    reg_.db_->exec("PRAGMA wal_autocheckpoint=10000");
  } catch (const std::exception&) {
  }
}

bool IsNetworkFilesystem(const std::string& path) {
  struct statfs st {};
  if (::statfs(path.empty() ? "." : path.c_str(), &st) != 0) return false;
  switch (static_cast<uint32_t>(st.f_type)) {
    case 0x6969u:      // NFS
    case 0x0BD00BD0u:  // Lustre
    case 0x47504653u:  // GPFS
    case 0xFF534D42u:  // CIFS
    case 0xFE534D42u:  // SMB2
    case 0x517Bu:      // SMB
    case 0x19830326u:  // BeeGFS
    case 0x00C36400u:  // Ceph
    case 0x65735546u:  // FUSE (sshfs, many cluster filesystems)
      return true;
    default: return false;
  }
}

}  // namespace seedgrid

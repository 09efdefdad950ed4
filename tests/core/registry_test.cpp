#include "core/registry.h"

#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <cmath>
#include <ctime>
#include <filesystem>
#include <fstream>
#include <limits>
#include <map>
#include <thread>

#include <SQLiteCpp/SQLiteCpp.h>
#include <fmt/format.h>
#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include "core/sysutil.h"

namespace seedgrid {

// Reads settings of a Registry's own connection (busy_timeout, wal_autocheckpoint are per
// connection: a second connection cannot see them).
struct RegistryInspector {
  static int Pragma(Registry& reg, const std::string& name) {
    return reg.db_->execAndGet("PRAGMA " + name).getInt();
  }
};

namespace {

namespace fs = std::filesystem;
using ::testing::HasSubstr;
using ::testing::Not;

class RegistryTest : public ::testing::Test {
 protected:
  void SetUp() override {
    std::string tmpl = (fs::temp_directory_path() / "seedgrid-registry-XXXXXX").string();
    ASSERT_NE(::mkdtemp(tmpl.data()), nullptr);
    dir_ = tmpl;
    path_ = (fs::path(dir_) / "runs" / "registry.sqlite").string();
  }
  void TearDown() override { fs::remove_all(dir_); }

  static ShardRow MakeShard(const std::string& hex, const std::string& stage = "base",
                            int64_t seed = 1) {
    ShardRow r;
    r.key = ShardKey({.id = ShardId{hex},
                      .stage = stage,
                      .kind = "pretrain",
                      .seed = seed,
                      .role = ShardRole::kMap,
                      .needs = {ShardId{"00000000000000aa"}, ShardId{"00000000000000bb"}}},
                     Json{{"lr", 0.001}, {"layers", 2}, {"name", "tiny"}}, Json{{"lr", 0.001}});
    r.sweep = "demo";
    r.stage_index = stage == "base" ? 0 : 1;
    r.status = ShardStatus::kDone;  // InsertShards must ignore this: new rows are pending
    r.attempts = 7;
    return r;
  }

  // A connection of the test's own on the registry file (Registry has no raw SQL access):
  // read-only unless the test writes behind the registry's back.
  std::unique_ptr<SQLite::Database> Sql(bool write = false) const {
    return std::make_unique<SQLite::Database>(
        path_, write ? SQLite::OPEN_READWRITE : SQLite::OPEN_READONLY, 5000);
  }

  std::string dir_;
  std::string path_;
};

TEST_F(RegistryTest, RoundTripsSweeps) {
  Registry reg(path_, Registry::Mode::kWrite);
  SweepRow s{
      "demo",     "stages: []\n", "abc123", "runs", "2024-01-01T00:00:00Z", "2024-01-01T00:00:00Z",
      "deadbeef", "node1"};
  reg.UpsertSweep(s);
  auto got = reg.Sweep("demo");
  ASSERT_TRUE(got);
  EXPECT_EQ(got->spec_text, s.spec_text);
  EXPECT_EQ(got->spec_hash, "abc123");
  EXPECT_EQ(got->out_dir, "runs");
  EXPECT_EQ(got->created, "2024-01-01T00:00:00Z");
  EXPECT_EQ(got->git_commit, "deadbeef");
  EXPECT_EQ(got->host, "node1");

  // A re-upsert changes everything but `created`.
  s.spec_hash = "def456";
  s.created = "2030-01-01T00:00:00Z";
  s.updated = "2030-01-02T00:00:00Z";
  s.host = "node2";
  reg.UpsertSweep(s);
  got = reg.Sweep("demo");
  EXPECT_EQ(got->spec_hash, "def456");
  EXPECT_EQ(got->created, "2024-01-01T00:00:00Z");
  EXPECT_EQ(got->updated, "2030-01-02T00:00:00Z");
  EXPECT_EQ(got->host, "node2");

  // Empty timestamps are filled with now (ISO 8601 UTC).
  reg.UpsertSweep(SweepRow{"b", "", "", "", "", "", "", ""});
  auto b = reg.Sweep("b");
  ASSERT_TRUE(b);
  EXPECT_EQ(b->created.size(), 20u);
  EXPECT_EQ(b->created.back(), 'Z');
  EXPECT_EQ(b->created[10], 'T');

  auto all = reg.Sweeps();
  ASSERT_EQ(all.size(), 2u);
  EXPECT_EQ(all[0].name, "b");
  EXPECT_EQ(all[1].name, "demo");
  EXPECT_FALSE(reg.Sweep("nope"));
}

TEST_F(RegistryTest, RoundTripsShardsAndKeepsExistingState) {
  Registry reg(path_, Registry::Mode::kWrite);
  reg.InsertShards({MakeShard("1111111111111111"), MakeShard("2222222222222222", "eval", 2)});
  auto s = reg.Shard(ShardId{"1111111111111111"});
  ASSERT_TRUE(s);
  EXPECT_EQ(s->sweep, "demo");
  EXPECT_EQ(s->key.stage(), "base");
  EXPECT_EQ(s->stage_index, 0);
  EXPECT_EQ(s->key.kind(), "pretrain");
  EXPECT_EQ(s->key.params(), (Json{{"lr", 0.001}, {"layers", 2}, {"name", "tiny"}}));
  EXPECT_EQ(s->key.axes(), (Json{{"lr", 0.001}}));
  EXPECT_EQ(s->key.seed(), 1);
  EXPECT_EQ(s->key.role(), ShardRole::kMap);
  EXPECT_EQ(s->key.needs(), (std::vector<ShardId>{{"00000000000000aa"}, {"00000000000000bb"}}));
  EXPECT_EQ(s->status, ShardStatus::kPending);
  EXPECT_EQ(s->attempts, 0);
  EXPECT_EQ(s->artifact, "");

  reg.SetShardState(ShardId{"1111111111111111"}, ShardStatus::kFailed, 3, "demo/base/x.h5",
                    "boom: out of memory");
  reg.InsertShards({MakeShard("1111111111111111"), MakeShard("3333333333333333")});
  s = reg.Shard(ShardId{"1111111111111111"});
  EXPECT_EQ(s->status, ShardStatus::kFailed);
  EXPECT_EQ(s->attempts, 3);
  EXPECT_EQ(s->artifact, "demo/base/x.h5");
  EXPECT_EQ(s->error, "boom: out of memory");

  auto all = reg.Shards("demo");
  ASSERT_EQ(all.size(), 3u);
  EXPECT_EQ(all[0].key.id().hex, "1111111111111111");
  EXPECT_EQ(all[1].key.id().hex, "3333333333333333");
  EXPECT_EQ(all[2].key.id().hex, "2222222222222222");  // stage_index 1 sorts last
  auto eval = reg.Shards("demo", "eval");
  ASSERT_EQ(eval.size(), 1u);
  EXPECT_EQ(eval[0].key.seed(), 2);
  EXPECT_TRUE(reg.Shards("other").empty());
  EXPECT_FALSE(reg.Shard(ShardId{"ffffffffffffffff"}));
  EXPECT_THROW(reg.SetShardState(ShardId{"ffffffffffffffff"}, ShardStatus::kDone, 1, "", ""),
               std::invalid_argument);
}

TEST_F(RegistryTest, BulkWritesMatchOneRowWrites) {
  // The coordinator's hot path writes kBulkRows rows to a statement; what reads back must be
  // what one-row writes give, across a bulk chunk and a remainder.
  Registry reg(path_, Registry::Mode::kWrite);
  const size_t n = 2 * Registry::kBulkRows + 3;
  std::vector<ShardRow> shards;
  for (size_t i = 0; i < n; ++i) shards.push_back(MakeShard(fmt::format("{:016x}", 0xa000 + i)));
  reg.InsertShards(shards);
  std::vector<AttemptRow> rows;
  std::vector<ShardState> states;
  for (size_t i = 0; i < n; ++i) {
    auto row = reg.Shard(shards[i].key.id());
    ASSERT_TRUE(row);
    AttemptRow a{shards[i].key.id(),
                 1,
                 static_cast<int>(1 + i % 3),
                 "node" + std::to_string(i),
                 "cuda:0",
                 100.0 + i,
                 200.5 + i,
                 i % 2 ? Outcome::kOk : Outcome::kCrash,
                 i % 2 ? 0 : 11,
                 0,
                 i % 2 ? "" : "segv " + std::to_string(i),
                 static_cast<int64_t>(1000 + i),
                 "77"};
    a.shard_seq = row->seq;
    rows.push_back(a);
    states.push_back({shards[i].key.id(), row->seq,
                      i % 2 ? ShardStatus::kDone : ShardStatus::kPending, 1,
                      i % 2 ? "demo/base/" + shards[i].key.id().hex + ".h5" : "",
                      i % 2 ? "" : "segv", 300.0 + i});
  }
  // A shard twice in one chunk: the later state wins, as it would one row at a time.
  states[1] = states[0];
  states[1].status = ShardStatus::kFailed;
  states[1].attempts = 3;
  reg.AddAttempts(rows);
  reg.SetShardStatesAt(states);
  for (size_t i = 0; i < n; ++i) {
    auto got = reg.Attempts(shards[i].key.id());
    ASSERT_EQ(got.size(), 1u) << i;
    EXPECT_EQ(got[0].rank, rows[i].rank);
    EXPECT_EQ(got[0].host, rows[i].host);
    EXPECT_DOUBLE_EQ(got[0].end, rows[i].end);
    EXPECT_EQ(got[0].outcome, rows[i].outcome);
    EXPECT_EQ(got[0].signal, rows[i].signal);
    EXPECT_EQ(got[0].error, rows[i].error);
    EXPECT_EQ(got[0].peak_rss_kb, rows[i].peak_rss_kb);
    if (i <= 1) continue;  // shard 0 got state 1 as well: checked below
    auto s = reg.Shard(shards[i].key.id());
    EXPECT_EQ(s->status, states[i].status) << i;
    EXPECT_EQ(s->artifact, states[i].artifact);
    EXPECT_EQ(s->error, states[i].error);
  }
  EXPECT_EQ(reg.Shard(shards[0].key.id())->status, ShardStatus::kFailed);
  EXPECT_EQ(reg.Shard(shards[0].key.id())->attempts, 3);
  EXPECT_EQ(reg.Shard(shards[1].key.id())->status, ShardStatus::kPending);  // never written
  EXPECT_EQ(reg.Shard(shards[1].key.id())->attempts, 0);
  EXPECT_DOUBLE_EQ(
      Sql()
          ->execAndGet(fmt::format("SELECT updated FROM shards WHERE seq={}", states[n - 1].seq))
          .getDouble(),
      300.0 + n - 1);
  // Bulk attempt rows must name their shard's seq.
  rows.resize(Registry::kBulkRows);
  for (auto& r : rows) r.n = 2;
  rows[3].shard_seq = 0;
  EXPECT_THROW(reg.AddAttempts(rows), std::invalid_argument);
}

TEST_F(RegistryTest, CountsByStageAndStatusAndListsOneStatus) {
  // What `seedgrid status` reads instead of every row.
  Registry reg(path_, Registry::Mode::kWrite);
  reg.InsertShards({MakeShard("1111111111111111"), MakeShard("2222222222222222"),
                    MakeShard("3333333333333333", "eval", 2),
                    MakeShard("4444444444444444", "eval", 3)});
  reg.SetShardState(ShardId{"2222222222222222"}, ShardStatus::kFailed, 3, "", "boom");
  reg.SetShardState(ShardId{"4444444444444444"}, ShardStatus::kFailed, 1, "", "bang");
  reg.SetShardState(ShardId{"3333333333333333"}, ShardStatus::kDone, 1, "x.h5", "");
  std::map<std::pair<std::string, ShardStatus>, int64_t> got;
  for (const auto& c : reg.CountByStatus("demo")) {
    got[{c.stage, c.status}] = c.count;
    EXPECT_EQ(c.kind, "pretrain");
    EXPECT_EQ(c.stage_index, c.stage == "base" ? 0 : 1);
  }
  EXPECT_EQ(got, (std::map<std::pair<std::string, ShardStatus>, int64_t>{
                     {{"base", ShardStatus::kPending}, 1},
                     {{"base", ShardStatus::kFailed}, 1},
                     {{"eval", ShardStatus::kDone}, 1},
                     {{"eval", ShardStatus::kFailed}, 1}}));
  auto failed = reg.ShardsWithStatus("demo", ShardStatus::kFailed);
  ASSERT_EQ(failed.size(), 2u);
  EXPECT_EQ(failed[0].key.id().hex, "2222222222222222");  // plan order: stage, then seq
  EXPECT_EQ(failed[0].error, "boom");
  EXPECT_EQ(failed[1].key.id().hex, "4444444444444444");
  EXPECT_EQ(failed[1].key.params(), (Json{{"lr", 0.001}, {"layers", 2}, {"name", "tiny"}}));
  EXPECT_TRUE(reg.CountByStatus("other").empty());
}

TEST_F(RegistryTest, RoundTripsAttemptsMetricsProvenanceLaunches) {
  Registry reg(path_, Registry::Mode::kWrite);
  const ShardId id{"1111111111111111"};
  reg.InsertShards({MakeShard(id.hex)});
  AttemptRow a{id,
               1,
               3,
               "gpu-node-7",
               "cuda:1",
               1700000000.25,
               1700000100.5,
               Outcome::kMemory,
               9,
               137,
               "killed: RSS over limit",
               123456789012,
               "4242_7"};
  reg.AddAttempt(a);
  AttemptRow b = a;
  b.n = 2;
  b.outcome = Outcome::kOk;
  b.signal = 0;
  b.exit_code = 0;
  b.error = "";
  reg.AddAttempt(b);
  auto attempts = reg.Attempts(id);
  ASSERT_EQ(attempts.size(), 2u);
  const AttemptRow& got = attempts[0];
  EXPECT_EQ(got.shard, id);
  EXPECT_EQ(got.n, 1);
  EXPECT_EQ(got.rank, 3);
  EXPECT_EQ(got.host, "gpu-node-7");
  EXPECT_EQ(got.gpu, "cuda:1");
  EXPECT_DOUBLE_EQ(got.start, 1700000000.25);
  EXPECT_DOUBLE_EQ(got.end, 1700000100.5);
  EXPECT_EQ(got.outcome, Outcome::kMemory);
  EXPECT_EQ(got.signal, 9);
  EXPECT_EQ(got.exit_code, 137);
  EXPECT_EQ(got.error, "killed: RSS over limit");
  EXPECT_EQ(got.peak_rss_kb, 123456789012);
  EXPECT_EQ(got.job_id, "4242_7");
  EXPECT_EQ(attempts[1].n, 2);
  EXPECT_EQ(attempts[1].outcome, Outcome::kOk);

  const double inf = std::numeric_limits<double>::infinity();
  reg.SetMetrics(id, {{"loss", 0.5}, {"acc", 0.75}, {"diverged", std::nan("")}, {"big", inf}});
  auto m = reg.Metrics(id);
  ASSERT_EQ(m.size(), 4u);
  EXPECT_EQ(m["loss"], 0.5);
  EXPECT_EQ(m["acc"], 0.75);
  EXPECT_TRUE(std::isnan(m["diverged"]));
  EXPECT_EQ(m["big"], inf);
  // SetMetrics replaces the whole set.
  reg.SetMetrics(id, {{"loss", 0.25}});
  m = reg.Metrics(id);
  ASSERT_EQ(m.size(), 1u);
  EXPECT_EQ(m["loss"], 0.25);

  reg.InsertShards({MakeShard("2222222222222222", "eval")});
  reg.SetMetrics(ShardId{"2222222222222222"}, {{"acc", 1.0}, {"loss", 2.0}});
  auto rows = reg.MetricsOfSweep("demo");
  ASSERT_EQ(rows.size(), 3u);
  EXPECT_EQ(rows[0].shard, id);
  EXPECT_EQ(rows[1].shard.hex, "2222222222222222");
  EXPECT_EQ(rows[1].name, "acc");
  EXPECT_EQ(rows[2].value, 2.0);
  EXPECT_EQ(reg.MetricsOfSweep("demo", "eval").size(), 2u);
  EXPECT_EQ(reg.MetricsOfSweep("demo", "base").size(), 1u);

  reg.SetProvenance("demo", "hdf5", "1.10.8");
  reg.SetProvenance("demo", "torch", "1.13.1");
  reg.SetProvenance("demo", "torch", "2.1.0");
  reg.SetProvenance("other", "torch", "x");
  auto prov = reg.Provenance("demo");
  EXPECT_EQ(prov, (std::map<std::string, std::string>{{"hdf5", "1.10.8"}, {"torch", "2.1.0"}}));

  int64_t l1 = reg.BeginLaunch("demo", "node1", 1234, 8, "99");
  int64_t l2 = reg.BeginLaunch("demo", "node1", 1235, 4, "");
  EXPECT_GT(l2, l1);
  reg.EndLaunch(l1, 3);
  auto db = Sql();
  SQLite::Statement q(*db,
                      "SELECT sweep, host, pid, workers, job_id, exit_code, ended, started "
                      "FROM launches WHERE id=?");
  q.bind(1, l1);
  ASSERT_TRUE(q.executeStep());
  EXPECT_EQ(q.getColumn(0).getString(), "demo");
  EXPECT_EQ(q.getColumn(1).getString(), "node1");
  EXPECT_EQ(q.getColumn(2).getInt64(), 1234);
  EXPECT_EQ(q.getColumn(3).getInt(), 8);
  EXPECT_EQ(q.getColumn(4).getString(), "99");
  EXPECT_EQ(q.getColumn(5).getInt(), 3);
  EXPECT_EQ(q.getColumn(6).getString().back(), 'Z');
  EXPECT_EQ(q.getColumn(7).getString().back(), 'Z');
}

TEST_F(RegistryTest, BatchCommitsOrRollsBack) {
  Registry reg(path_, Registry::Mode::kWrite);
  reg.InsertShards({MakeShard("1111111111111111")});
  const ShardId id{"1111111111111111"};
  try {
    Registry::Batch batch(reg);
    reg.SetShardState(id, ShardStatus::kRunning, 1, "", "");
    reg.SetProvenance("demo", "k", "v");
    throw std::runtime_error("coordinator died");
  } catch (const std::runtime_error&) {
  }
  EXPECT_EQ(reg.Shard(id)->status, ShardStatus::kPending);
  EXPECT_TRUE(reg.Provenance("demo").empty());
  {
    Registry::Batch batch(reg);
    reg.SetShardState(id, ShardStatus::kDone, 1, "a.h5", "");
    batch.Commit();
  }
  EXPECT_EQ(reg.Shard(id)->status, ShardStatus::kDone);
  // A failed write inside a batch leaves the registry usable for the next batch.
  {
    Registry::Batch batch(reg);
    EXPECT_THROW(reg.SetShardState(ShardId{"ffffffffffffffff"}, ShardStatus::kDone, 1, "", ""),
                 std::invalid_argument);
  }
  Registry::Batch batch(reg);
  reg.SetShardState(id, ShardStatus::kFailed, 2, "", "x");
  batch.Commit();
  EXPECT_EQ(reg.Shard(id)->status, ShardStatus::kFailed);
}

TEST_F(RegistryTest, ReadOnlyOpenWhileWriterIsActive) {
  Registry writer(path_, Registry::Mode::kWrite);
  EXPECT_FALSE(writer.on_network_fs());
  writer.InsertShards({MakeShard("1111111111111111")});
  Registry::Batch open_batch(writer);
  writer.SetShardState(ShardId{"1111111111111111"}, ShardStatus::kRunning, 1, "", "");

  Registry reader(path_, Registry::Mode::kReadOnly);
  auto s = reader.Shard(ShardId{"1111111111111111"});
  ASSERT_TRUE(s);
  EXPECT_EQ(s->status, ShardStatus::kPending);  // the open batch is invisible
  EXPECT_THROW(reader.SetProvenance("demo", "k", "v"), SQLite::Exception);

  open_batch.Commit();
  EXPECT_EQ(reader.Shard(ShardId{"1111111111111111"})->status, ShardStatus::kRunning);
}

TEST_F(RegistryTest, ReadOnlyNeverCreatesTheFile) {
  try {
    Registry reader(path_, Registry::Mode::kReadOnly);
    FAIL() << "opened a missing registry";
  } catch (const UsageError& e) {
    EXPECT_EQ(std::string(e.what()),
              "no registry at " + path_ + " (run a sweep first, or pass --registry)");
  }
  EXPECT_FALSE(fs::exists(path_));
  // A read-only open after the writer has gone (no -wal/-shm left) also works.
  { Registry writer(path_, Registry::Mode::kWrite); }
  Registry reader(path_, Registry::Mode::kReadOnly);
  EXPECT_TRUE(reader.Sweeps().empty());
}

TEST_F(RegistryTest, CheckpointThreadTakesOverTheWalAndHandsItBack) {
  Registry reg(path_, Registry::Mode::kWrite);
  EXPECT_GT(RegistryInspector::Pragma(reg, "wal_autocheckpoint"), 0);
  {
    WalCheckpointer ckpt(reg, std::chrono::milliseconds(10));
    // While it runs, a commit never checkpoints by itself (it would stall dispatch)...
    EXPECT_EQ(RegistryInspector::Pragma(reg, "wal_autocheckpoint"), 0);
    std::vector<ShardRow> rows;
    for (int i = 0; i < 2000; ++i) rows.push_back(MakeShard(fmt::format("{:016x}", i + 1)));
    {
      Registry::Batch batch(reg);
      reg.InsertShards(rows);
      batch.Commit();
    }
    // ...the thread does: every frame of the WAL ends up in the database file.
    auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(10);
    int64_t seen = ckpt.checkpoints();
    while (ckpt.checkpoints() < seen + 2 && std::chrono::steady_clock::now() < deadline) {
      std::this_thread::sleep_for(std::chrono::milliseconds(5));
    }
    ASSERT_GE(ckpt.checkpoints(), seen + 2);
    auto db = Sql(true);
    SQLite::Statement q(*db, "PRAGMA wal_checkpoint(PASSIVE)");
    ASSERT_TRUE(q.executeStep());
    EXPECT_EQ(q.getColumn(0).getInt(), 0);                        // not busy
    EXPECT_EQ(q.getColumn(1).getInt(), q.getColumn(2).getInt());  // all frames copied
  }
  EXPECT_GT(RegistryInspector::Pragma(reg, "wal_autocheckpoint"), 0);
  Registry reader(path_, Registry::Mode::kReadOnly);
  EXPECT_TRUE(reader.Shard(ShardId{"00000000000007d0"}));
}

TEST_F(RegistryTest, SchemaCreationIsIdempotent) {
  {
    Registry reg(path_, Registry::Mode::kWrite);
    reg.InsertShards({MakeShard("1111111111111111")});
  }
  Registry reg(path_, Registry::Mode::kWrite);
  EXPECT_TRUE(reg.Shard(ShardId{"1111111111111111"}));
  EXPECT_EQ(Sql()->execAndGet("PRAGMA user_version").getInt(), 7);
  EXPECT_EQ(Sql()->execAndGet("PRAGMA journal_mode").getString(), "wal");
  EXPECT_EQ(RegistryInspector::Pragma(reg, "busy_timeout"), 5000);
  EXPECT_EQ(Sql()
                ->execAndGet("SELECT count(*) FROM sqlite_master WHERE type='index' AND name IN "
                             "('shard_specs_sweep_stage','metrics_shard','attempts_shard')")
                .getInt(),
            0);
}

// A registry as seedgrid versions 1 and 2 wrote it: the status checked with IN (...) (an
// ephemeral table per row written), shards keyed by an implicit rowid, attempts by (shard, n)
// in hash order; two shards (rowids 7 and 9) and three attempts. Version 1 also had two
// indexes that duplicated primary keys.
void WriteOldRegistry(const std::string& path, int version) {
  fs::create_directories(fs::path(path).parent_path());
  SQLite::Database db(path, SQLite::OPEN_READWRITE | SQLite::OPEN_CREATE);
  db.exec(
      "CREATE TABLE sweeps(name TEXT PRIMARY KEY, spec_text TEXT NOT NULL, spec_hash TEXT NOT "
      "NULL, "
      "out_dir TEXT NOT NULL, created TEXT NOT NULL, updated TEXT NOT NULL, git_commit TEXT NOT "
      "NULL, "
      "host TEXT NOT NULL);"
      "CREATE TABLE shards(id TEXT PRIMARY KEY, sweep TEXT NOT NULL, stage TEXT NOT NULL, "
      "stage_index INTEGER NOT NULL, kind TEXT NOT NULL, params TEXT NOT NULL, axes TEXT NOT NULL, "
      "seed INTEGER NOT NULL, role TEXT NOT NULL, needs TEXT NOT NULL, status TEXT NOT NULL "
      "CHECK(status IN ('pending','running','done','failed','preempted')), attempts INTEGER NOT "
      "NULL, "
      "artifact TEXT NOT NULL, error TEXT NOT NULL, updated REAL NOT NULL);"
      "CREATE INDEX shards_sweep_stage ON shards(sweep, stage);"
      "CREATE TABLE attempts(shard TEXT NOT NULL, n INTEGER NOT NULL, rank INTEGER NOT NULL, "
      "host TEXT NOT NULL, gpu TEXT NOT NULL, start REAL NOT NULL, \"end\" REAL NOT NULL, "
      "outcome TEXT NOT NULL, signal INTEGER NOT NULL, exit_code INTEGER NOT NULL, error TEXT NOT "
      "NULL, "
      "peak_rss_kb INTEGER NOT NULL, job_id TEXT NOT NULL, PRIMARY KEY(shard, n));"
      "CREATE TABLE metrics(shard TEXT NOT NULL, name TEXT NOT NULL, value REAL, PRIMARY "
      "KEY(shard, name));"
      "CREATE TABLE provenance(sweep TEXT NOT NULL, key TEXT NOT NULL, value TEXT NOT NULL, "
      "PRIMARY KEY(sweep, key));"
      "CREATE TABLE launches(id INTEGER PRIMARY KEY AUTOINCREMENT, sweep TEXT NOT NULL, "
      "started TEXT NOT NULL, ended TEXT, host TEXT NOT NULL, pid INTEGER NOT NULL, "
      "workers INTEGER NOT NULL, exit_code INTEGER, job_id TEXT NOT NULL);"
      "INSERT INTO shards(rowid, id, sweep, stage, stage_index, kind, params, axes, seed, role, "
      "needs, "
      "status, attempts, artifact, error, updated) VALUES "
      "(7, '1111111111111111', 'demo', 'base', 0, 'chaos', '{}', '{}', 0, 'single', '[]', 'done', "
      "1, "
      "'demo/base/1111111111111111.h5', '', 1.0),"
      "(9, '2222222222222222', 'demo', 'base', 0, 'chaos', '{}', '{}', 1, 'single', '[]', "
      "'failed', 3, "
      "'', 'boom', 2.0);"
      "INSERT INTO attempts VALUES('2222222222222222', 1, 1, 'h', '', 1.0, 2.0, 'error', 0, 0, "
      "'boom', 5, ''),"
      "('2222222222222222', 2, 2, 'h', '', 3.0, 4.0, 'crash', 11, 0, 'segv', 6, ''),"
      "('1111111111111111', 1, 1, 'h', '', 1.0, 2.0, 'ok', 0, 0, '', 7, '');"
      "");
  if (version == 1) {
    db.exec(
        "CREATE INDEX attempts_shard ON attempts(shard); CREATE INDEX metrics_shard ON "
        "metrics(shard)");
  }
  db.exec(fmt::format("PRAGMA user_version={}", version));
}

TEST_F(RegistryTest, MigratesVersion1RegistriesKeepingTheirRows) {
  WriteOldRegistry(path_, 1);
  Registry reg(path_, Registry::Mode::kWrite);
  EXPECT_EQ(Sql()->execAndGet("PRAGMA user_version").getInt(), 7);
  EXPECT_EQ(reg.Shards("demo").size(), 2u);  // members of the sweep that recorded them
  EXPECT_TRUE(reg.Shard(ShardId{"1111111111111111"}));
  EXPECT_EQ(reg.Attempts(ShardId{"2222222222222222"}).size(), 2u);
  EXPECT_EQ(Sql()
                ->execAndGet("SELECT count(*) FROM sqlite_master WHERE type='index' AND name IN "
                             "('metrics_shard','attempts_shard')")
                .getInt(),
            0);
}

TEST_F(RegistryTest, MigratesVersion2RegistriesKeepingRowsAndAttempts) {
  WriteOldRegistry(path_, 2);
  Registry reg(path_, Registry::Mode::kWrite);
  EXPECT_EQ(Sql()->execAndGet("PRAGMA user_version").getInt(), 7);
  auto sql = [&](const std::string& name) {
    return Sql()
        ->execAndGet("SELECT type || ': ' || sql FROM sqlite_master WHERE name='" + name + "'")
        .getString();
  };
  EXPECT_THAT(sql("shards"), HasSubstr("view: "));
  EXPECT_THAT(sql("shard_states"), Not(HasSubstr(" IN (")));
  EXPECT_THAT(sql("shard_states"), HasSubstr("status = 'preempted'"));
  EXPECT_THAT(sql("attempts"), HasSubstr("WITHOUT ROWID"));
  EXPECT_EQ(Sql()->execAndGet("SELECT count(*) FROM sqlite_master WHERE name LIKE '%_v3'").getInt(),
            0);
  EXPECT_EQ(Sql()
                ->execAndGet("SELECT count(*) FROM sqlite_master WHERE type='index' AND "
                             "tbl_name='shard_specs' AND name='shard_specs_sweep_stage'")
                .getInt(),
            0);
  EXPECT_EQ(reg.Shards("demo").size(), 2u);
  EXPECT_EQ(reg.ShardStates("demo").front().stamp, 0);
  // Rows, states and keys survive: the old rowids are the seqs, attempts point at them.
  auto s = reg.Shard(ShardId{"2222222222222222"});
  ASSERT_TRUE(s);
  EXPECT_EQ(s->status, ShardStatus::kFailed);
  EXPECT_EQ(s->attempts, 3);
  EXPECT_EQ(s->error, "boom");
  EXPECT_EQ(s->seq, 9);
  EXPECT_EQ(reg.Shard(ShardId{"1111111111111111"})->seq, 7);
  auto att = reg.Attempts(ShardId{"2222222222222222"});
  ASSERT_EQ(att.size(), 2u);
  EXPECT_EQ(att[1].outcome, Outcome::kCrash);
  EXPECT_EQ(att[1].signal, 11);
  EXPECT_EQ(reg.Attempts(ShardId{"1111111111111111"}).size(), 1u);
  // The check still holds, through the view too; new rows get fresh seqs; attempts find their
  // shard by id.
  EXPECT_THROW(Sql(true)->exec("UPDATE shards SET status='bogus'"), SQLite::Exception);
  EXPECT_THROW(Sql(true)->exec("UPDATE shard_states SET status='bogus'"), SQLite::Exception);
  Sql(true)->exec("UPDATE shards SET status='pending', error='' WHERE id='2222222222222222'");
  EXPECT_EQ(reg.Shard(ShardId{"2222222222222222"})->status, ShardStatus::kPending);
  EXPECT_EQ(reg.Shard(ShardId{"2222222222222222"})->attempts, 3);
  reg.InsertShards({MakeShard("3333333333333333")});
  EXPECT_EQ(reg.Shard(ShardId{"3333333333333333"})->seq, 10);
  reg.SetShardStateAt(9, ShardStatus::kDone, 4, "a.h5", "", 1.7e9);
  EXPECT_EQ(reg.Shard(ShardId{"2222222222222222"})->status, ShardStatus::kDone);
  EXPECT_DOUBLE_EQ(Sql()->execAndGet("SELECT updated FROM shards WHERE seq=9").getDouble(), 1.7e9);
  AttemptRow a;
  a.shard = ShardId{"3333333333333333"};
  a.n = 1;
  reg.AddAttempt(a);  // shard_seq 0: looked up
  EXPECT_EQ(
      Sql()->execAndGet("SELECT shard_seq FROM attempts WHERE shard='3333333333333333'").getInt(),
      10);
  a.shard = ShardId{"4444444444444444"};  // no such shard
  EXPECT_THROW(reg.AddAttempt(a), SQLite::Exception);
}

// A registry as seedgrid version 3 wrote it (shard_specs + shard_states, no membership, no
// stamps): the DDL of that version, verbatim.
void WriteVersion3Registry(const std::string& path) {
  fs::create_directories(fs::path(path).parent_path());
  SQLite::Database db(path, SQLite::OPEN_READWRITE | SQLite::OPEN_CREATE);
  db.exec(R"sql(
CREATE TABLE shard_specs(
  seq INTEGER PRIMARY KEY, id TEXT NOT NULL UNIQUE, sweep TEXT NOT NULL, stage TEXT NOT NULL,
  stage_index INTEGER NOT NULL, kind TEXT NOT NULL, params TEXT NOT NULL, axes TEXT NOT NULL,
  seed INTEGER NOT NULL, role TEXT NOT NULL, needs TEXT NOT NULL);
CREATE TABLE shard_states(
  seq INTEGER PRIMARY KEY REFERENCES shard_specs(seq),
  status TEXT NOT NULL CHECK(status = 'pending' OR status = 'running' OR status = 'done' OR
                             status = 'failed' OR status = 'preempted'),
  attempts INTEGER NOT NULL, artifact TEXT NOT NULL, error TEXT NOT NULL, updated REAL NOT NULL);
CREATE TABLE attempts(
  shard TEXT NOT NULL, n INTEGER NOT NULL, rank INTEGER NOT NULL, host TEXT NOT NULL,
  gpu TEXT NOT NULL, start REAL NOT NULL, "end" REAL NOT NULL, outcome TEXT NOT NULL,
  signal INTEGER NOT NULL, exit_code INTEGER NOT NULL, error TEXT NOT NULL,
  peak_rss_kb INTEGER NOT NULL, job_id TEXT NOT NULL, shard_seq INTEGER NOT NULL,
  PRIMARY KEY(shard_seq, n)) WITHOUT ROWID;
CREATE TABLE sweeps(
  name TEXT PRIMARY KEY, spec_text TEXT NOT NULL, spec_hash TEXT NOT NULL,
  out_dir TEXT NOT NULL, created TEXT NOT NULL, updated TEXT NOT NULL,
  git_commit TEXT NOT NULL, host TEXT NOT NULL);
CREATE INDEX shard_specs_sweep_stage ON shard_specs(sweep, stage);
CREATE VIEW shards AS
  SELECT p.seq, p.id, p.sweep, p.stage, p.stage_index, p.kind, p.params, p.axes, p.seed, p.role,
         p.needs, s.status, s.attempts, s.artifact, s.error, s.updated
  FROM shard_specs p JOIN shard_states s ON s.seq = p.seq;
CREATE TRIGGER shards_update INSTEAD OF UPDATE ON shards BEGIN
  UPDATE shard_states SET status = NEW.status, attempts = NEW.attempts, artifact = NEW.artifact,
                          error = NEW.error, updated = NEW.updated
  WHERE seq = OLD.seq;
END;
CREATE TABLE metrics(shard TEXT NOT NULL, name TEXT NOT NULL, value REAL, PRIMARY KEY(shard, name));
CREATE TABLE provenance(sweep TEXT NOT NULL, key TEXT NOT NULL, value TEXT NOT NULL, PRIMARY KEY(sweep, key));
CREATE TABLE launches(
  id INTEGER PRIMARY KEY AUTOINCREMENT, sweep TEXT NOT NULL, started TEXT NOT NULL,
  ended TEXT, host TEXT NOT NULL, pid INTEGER NOT NULL, workers INTEGER NOT NULL,
  exit_code INTEGER, job_id TEXT NOT NULL);
INSERT INTO shard_specs VALUES
  (1, '1111111111111111', 'demo', 'base', 0, 'chaos', '{}', '{}', 0, 'single', '[]'),
  (2, '2222222222222222', 'demo', 'eval', 1, 'chaos', '{}', '{}', 0, 'single', '[]');
INSERT INTO shard_states VALUES (1, 'done', 1, 'demo/base/1111111111111111.h5', '', 1.0),
                                (2, 'failed', 2, '', 'boom', 2.0);
INSERT INTO attempts VALUES ('2222222222222222', 1, 1, 'h', '', 1.0, 2.0, 'error', 0, 0, 'boom', 5, '', 2);
PRAGMA user_version=3;
)sql");
}

TEST_F(RegistryTest, MigratesVersion3RegistriesToMembershipAndStamps) {
  WriteVersion3Registry(path_);
  Registry reg(path_, Registry::Mode::kWrite);
  EXPECT_EQ(Sql()->execAndGet("PRAGMA user_version").getInt(), 7);
  auto rows = reg.Shards("demo");
  ASSERT_EQ(rows.size(), 2u);
  EXPECT_EQ(rows[1].key.stage(), "eval");
  EXPECT_EQ(rows[1].stage_index, 1);
  EXPECT_EQ(rows[0].status, ShardStatus::kDone);
  EXPECT_EQ(reg.Attempts(ShardId{"2222222222222222"}).size(), 1u);
  for (const auto& st : reg.ShardStates("demo")) EXPECT_EQ(st.stamp, 0);
  // The view and its trigger were rebuilt: updates through it still work.
  Sql(true)->exec("UPDATE shards SET status='pending' WHERE id='2222222222222222'");
  EXPECT_EQ(reg.Shard(ShardId{"2222222222222222"})->status, ShardStatus::kPending);
  reg.SetShardStamp(1, 42);
  EXPECT_EQ(reg.ShardStates("demo").front().stamp, 42);
}

// Version 4 as this session's seedgrid wrote it: version 5's DDL without slurm_jobs, or with
// the slurm_jobs table `seedgrid submit` used to create itself (same DDL), rows included.
void DowngradeToVersion4(const std::string& path, bool submit_made_table) {
  SQLite::Database db(path, SQLite::OPEN_READWRITE);
  db.exec("DROP TABLE slurm_jobs");
  db.exec("DROP TRIGGER shard_specs_role; DROP TRIGGER shard_specs_role_update");
  if (submit_made_table) {
    db.exec(R"sql(
CREATE TABLE IF NOT EXISTS slurm_jobs(
  job_id TEXT PRIMARY KEY, sweep TEXT NOT NULL, submitted TEXT NOT NULL, mode TEXT NOT NULL,
  chain_index INTEGER NOT NULL, depends_on TEXT NOT NULL, nodes INTEGER NOT NULL,
  gpus_per_node INTEGER NOT NULL, workers_per_node INTEGER NOT NULL, time_limit TEXT NOT NULL,
  script TEXT NOT NULL, log TEXT NOT NULL))sql");
    db.exec(
        "INSERT INTO slurm_jobs VALUES('100', 'demo', '2026-01-01T00:00:00Z', 'run', 0, '', 2, 4, "
        "4, '1:00:00', '/s/demo.sbatch', '/s/job-100.out')");
  }
  db.exec("PRAGMA user_version=4");
}

TEST_F(RegistryTest, MigratesVersion4RegistriesToSlurmJobs) {
  for (bool submit_made_table : {false, true}) {
    fs::remove_all(fs::path(path_).parent_path());
    {
      Registry reg(path_, Registry::Mode::kWrite);
      reg.InsertShards({MakeShard("1111111111111111")});
    }
    DowngradeToVersion4(path_, submit_made_table);
    {
      // A reader of this version opens a version 4 registry as it is (no migration).
      Registry reader(path_, Registry::Mode::kReadOnly);
      EXPECT_EQ(reader.Shards("demo").size(), 1u);
    }
    EXPECT_EQ(Sql()->execAndGet("PRAGMA user_version").getInt(), 4);
    Registry reg(path_, Registry::Mode::kWrite);
    EXPECT_EQ(Sql()->execAndGet("PRAGMA user_version").getInt(), 7);
    EXPECT_EQ(reg.Shards("demo").size(), 1u);
    EXPECT_EQ(Sql()->execAndGet("SELECT count(*) FROM sweep_shards").getInt(), 1);
    auto jobs = reg.SlurmJobs("demo");
    ASSERT_EQ(jobs.size(), submit_made_table ? 1u : 0u);
    if (submit_made_table) {
      EXPECT_EQ(jobs[0].job_id, "100");
      EXPECT_EQ(jobs[0].gpus_per_node, 4);
      EXPECT_EQ(jobs[0].log, "/s/job-100.out");
    }
    SlurmJobRow next{"101", "demo", "2026-01-02T00:00:00Z", "resume",        1, "100", 1, 0,
                     2,     "30",   "/s/demo.sbatch",       "/s/job-101.out"};
    reg.AddSlurmJobs(std::span(&next, 1));
    EXPECT_EQ(reg.SlurmJobs("demo").back().depends_on, "100");
  }
}

// Version 5: version 6's DDL without the role triggers.
void DowngradeToVersion5(const std::string& path) {
  SQLite::Database db(path, SQLite::OPEN_READWRITE);
  db.exec("DROP TRIGGER shard_specs_role; DROP TRIGGER shard_specs_role_update");
  db.exec("PRAGMA user_version=5");
}

TEST_F(RegistryTest, MigratesVersion5RegistriesToCheckedRoles) {
  {
    Registry reg(path_, Registry::Mode::kWrite);
    ShardRow reduce = MakeShard("2222222222222222", "eval");
    reduce.key = ShardKey([&] {
      auto f = reduce.key.fields();
      f.role = ShardRole::kReduce;
      return f;
    }());
    reg.InsertShards({MakeShard("1111111111111111"), reduce});
  }
  DowngradeToVersion5(path_);
  {
    Registry reader(path_, Registry::Mode::kReadOnly);  // read as it is
    EXPECT_EQ(reader.Shards("demo").size(), 2u);
  }
  // Before the triggers, a version 5 file took any text.
  Sql(true)->exec(
      "INSERT INTO shard_specs VALUES(9, '9999999999999999', 'demo', 'base', 0, "
      "'pretrain', '{}', '{}', 0, 'single', '[]')");
  Registry reg(path_, Registry::Mode::kWrite);
  EXPECT_EQ(Sql()->execAndGet("PRAGMA user_version").getInt(), 7);
  auto rows = reg.Shards("demo");
  ASSERT_EQ(rows.size(), 2u);
  EXPECT_EQ(rows[0].key.role(), ShardRole::kMap);
  EXPECT_EQ(rows[1].key.role(), ShardRole::kReduce);
  // From now on no writer can store a role that is none of ShardRole's.
  EXPECT_THROW(Sql(true)->exec("INSERT INTO shard_specs VALUES(10, 'aaaaaaaaaaaaaaaa', 'demo', "
                               "'base', 0, 'pretrain', '{}', '{}', 0, 'Map', '[]')"),
               SQLite::Exception);
  EXPECT_THROW(Sql(true)->exec("UPDATE shard_specs SET role = 'mapper' WHERE seq = 9"),
               SQLite::Exception);
  Sql(true)->exec("UPDATE shard_specs SET role = 'reduce' WHERE seq = 9");
}

TEST_F(RegistryTest, RefusesToMigrateAVersion5RegistryWithAnUnknownRole) {
  { Registry reg(path_, Registry::Mode::kWrite); }
  DowngradeToVersion5(path_);
  Sql(true)->exec(
      "INSERT INTO shard_specs VALUES(1, '1111111111111111', 'demo', 'base', 0, "
      "'pretrain', '{}', '{}', 0, 'mapper', '[]')");
  try {
    Registry reg(path_, Registry::Mode::kWrite);
    FAIL() << "migrated a registry with role 'mapper'";
  } catch (const std::exception& e) {
    EXPECT_THAT(e.what(), HasSubstr("shard 1111111111111111 has role 'mapper'"));
  }
  EXPECT_EQ(Sql()->execAndGet("PRAGMA user_version").getInt(), 5);  // rolled back whole
}

TEST_F(RegistryTest, RecordsSlurmJobsBySweepInSubmissionOrder) {
  Registry reg(path_, Registry::Mode::kWrite);
  std::vector<SlurmJobRow> jobs = {
      {"7", "demo", "2026-01-01T00:00:00Z", "run", 0, "", 2, 4, 4, "1:00:00", "/s/a", "/s/7"},
      {"8", "demo", "2026-01-01T00:00:00Z", "run", 1, "7", 2, 4, 4, "1:00:00", "/s/a", "/s/8"},
      {"9", "other", "2026-01-01T00:00:00Z", "rerun", 0, "", 1, 0, 1, "5", "/s/b", "/s/9"}};
  reg.AddSlurmJobs(jobs);
  auto demo = reg.SlurmJobs("demo");
  ASSERT_EQ(demo.size(), 2u);
  EXPECT_EQ(demo[0].job_id, "7");
  EXPECT_EQ(demo[1].chain_index, 1);
  EXPECT_EQ(demo[1].depends_on, "7");
  EXPECT_EQ(demo[1].workers_per_node, 4);
  EXPECT_EQ(demo[1].time_limit, "1:00:00");
  EXPECT_EQ(reg.SlurmJobs("other").at(0).mode, "rerun");
  EXPECT_TRUE(reg.SlurmJobs("none").empty());
  jobs[0].log = "/s/7-again";  // a known id is replaced
  reg.AddSlurmJobs(std::span(jobs.data(), 1));
  EXPECT_EQ(reg.SlurmJobs("demo").at(0).log, "/s/7-again");
}

// Issue 13, point 3: a shard id is a content address; a second sweep that plans the same shard
// lists it (status counts, shard lists, metrics) without a second row or a second state.
TEST_F(RegistryTest, SweepsShareShardsManyToMany) {
  Registry reg(path_, Registry::Mode::kWrite);
  reg.InsertShards({MakeShard("1111111111111111"), MakeShard("2222222222222222")});
  reg.SetShardState(ShardId{"1111111111111111"}, ShardStatus::kDone, 1,
                    "demo/base/1111111111111111.h5", "", 77);
  reg.SetMetrics(ShardId{"1111111111111111"}, {{"loss", 0.5}});
  ShardRow shared = MakeShard("1111111111111111", "train");
  shared.sweep = "other";
  ShardRow own = MakeShard("3333333333333333", "train");
  own.sweep = "other";
  reg.InsertShards({shared, own});
  auto other = reg.Shards("other");
  ASSERT_EQ(other.size(), 2u);
  EXPECT_EQ(other[0].key.id().hex, "1111111111111111");
  EXPECT_EQ(other[0].key.stage(), "train");  // this sweep's stage name
  EXPECT_EQ(other[0].status, ShardStatus::kDone);
  EXPECT_EQ(reg.Shards("demo").size(), 2u);
  EXPECT_EQ(reg.MetricsOfSweep("other").size(), 1u);
  int64_t done = 0;
  for (const auto& c : reg.CountByStatus("other"))
    done += c.status == ShardStatus::kDone ? c.count : 0;
  EXPECT_EQ(done, 1);
  // One row per shard: lookups by id and prefix are not ambiguous.
  EXPECT_EQ(reg.Shard(ShardId{"1111111111111111"})->sweep, "demo");
  EXPECT_TRUE(reg.FindShardByPrefix("1111"));
  EXPECT_EQ(Sql()->execAndGet("SELECT count(*) FROM shard_specs").getInt(), 3);
  // Membership added by seq (the launch's path) is idempotent.
  const int64_t seq = reg.Shard(ShardId{"2222222222222222"})->seq;
  Registry::Member m{seq, "train", 0};
  reg.AddMembers("other", std::span(&m, 1));
  reg.AddMembers("other", std::span(&m, 1));
  EXPECT_EQ(reg.Shards("other").size(), 3u);
  for (const auto& st : reg.ShardStates("other")) {
    if (st.id.hex == "1111111111111111") EXPECT_EQ(st.stamp, 77);
  }
  // A state written once is every member sweep's state.
  reg.SetShardState(ShardId{"1111111111111111"}, ShardStatus::kPending, 1, "", "damaged");
  EXPECT_EQ(reg.ShardsWithStatus("demo", ShardStatus::kPending).size(), 2u);
  EXPECT_EQ(reg.ShardsWithStatus("other", ShardStatus::kPending).size(), 3u);
}

TEST_F(RegistryTest, RejectsNewerSchemaAndForeignFiles) {
  {
    Registry reg(path_, Registry::Mode::kWrite);
    Sql(true)->exec("PRAGMA user_version=99");
  }
  EXPECT_THROW(Registry(path_, Registry::Mode::kWrite), UsageError);
  EXPECT_THROW(Registry(path_, Registry::Mode::kReadOnly), UsageError);

  const std::string junk = dir_ + "/junk.sqlite";
  std::ofstream(junk) << "this is not a database, just some text long enough to matter......";
  try {
    Registry reg(junk, Registry::Mode::kReadOnly);
    FAIL();
  } catch (const UsageError& e) {
    EXPECT_THAT(e.what(), HasSubstr(junk));
  }
}

TEST_F(RegistryTest, RecoverOrphans) {
  Registry reg(path_, Registry::Mode::kWrite);
  reg.InsertShards({MakeShard("1111111111111111"), MakeShard("2222222222222222"),
                    MakeShard("3333333333333333")});
  reg.SetShardState(ShardId{"1111111111111111"}, ShardStatus::kRunning, 1, "", "");
  reg.SetShardState(ShardId{"2222222222222222"}, ShardStatus::kRunning, 0, "", "");
  reg.SetShardState(ShardId{"3333333333333333"}, ShardStatus::kDone, 1, "x.h5", "");
  EXPECT_EQ(reg.RecoverOrphans("other"), 0);
  EXPECT_EQ(reg.RecoverOrphans("demo"), 2);
  EXPECT_EQ(reg.Shard(ShardId{"1111111111111111"})->status, ShardStatus::kPending);
  EXPECT_EQ(reg.Shard(ShardId{"1111111111111111"})->attempts, 1);
  EXPECT_EQ(reg.Shard(ShardId{"2222222222222222"})->status, ShardStatus::kPending);
  EXPECT_EQ(reg.Shard(ShardId{"3333333333333333"})->status, ShardStatus::kDone);
  EXPECT_EQ(reg.RecoverOrphans("demo"), 0);
}

TEST_F(RegistryTest, FindShardByPrefix) {
  Registry reg(path_, Registry::Mode::kWrite);
  reg.InsertShards({MakeShard("3fa9000000000001"), MakeShard("3fa9000000000002"),
                    MakeShard("3fb0000000000000"), MakeShard("ffffffffffffffff")});
  EXPECT_EQ(reg.FindShardByPrefix("3fb")->key.id().hex, "3fb0000000000000");
  EXPECT_EQ(reg.FindShardByPrefix("3FB")->key.id().hex, "3fb0000000000000");
  EXPECT_EQ(reg.FindShardByPrefix("ffff")->key.id().hex, "ffffffffffffffff");
  EXPECT_EQ(reg.FindShardByPrefix("3fa9000000000002")->key.id().hex, "3fa9000000000002");
  EXPECT_FALSE(reg.FindShardByPrefix("0"));
  EXPECT_FALSE(reg.FindShardByPrefix("3fa90000000000021"));
  try {
    reg.FindShardByPrefix("3fa");
    FAIL() << "ambiguous prefix accepted";
  } catch (const UsageError& e) {
    EXPECT_THAT(e.what(), HasSubstr("ambiguous"));
    EXPECT_THAT(e.what(), HasSubstr("3fa9000000000001"));
    EXPECT_THAT(e.what(), HasSubstr("3fa9000000000002"));
    EXPECT_THAT(e.what(), ::testing::Not(HasSubstr("3fb0000000000000")));
  }
  EXPECT_THROW(reg.FindShardByPrefix(""), UsageError);
  EXPECT_THROW(reg.FindShardByPrefix("3f%"), UsageError);
}

TEST_F(RegistryTest, RunLockRefusesSecondHolderAcrossProcesses) {
  int ready[2], release[2];
  ASSERT_EQ(::pipe(ready), 0);
  ASSERT_EQ(::pipe(release), 0);
  pid_t child = ::fork();
  ASSERT_GE(child, 0);
  if (child == 0) {
    ::close(ready[0]);
    ::close(release[1]);
    try {
      RunLock lock(path_);
      char c = 'y';
      if (::write(ready[1], &c, 1) != 1) _exit(2);
      if (::read(release[0], &c, 1) != 1) _exit(3);
    } catch (...) {
      _exit(4);
    }
    _exit(0);
  }
  ::close(ready[1]);
  ::close(release[0]);
  char c = 0;
  ASSERT_EQ(::read(ready[0], &c, 1), 1) << "child could not take the free lock";
  try {
    RunLock second(path_);
    FAIL() << "second RunLock acquired while the child holds it";
  } catch (const UsageError& e) {
    EXPECT_THAT(e.what(), HasSubstr("registry " + path_ + " is in use by seedgrid pid " +
                                    std::to_string(child) + " on " + Hostname()));
    EXPECT_THAT(e.what(), HasSubstr("started 20"));
    EXPECT_THAT(e.what(), HasSubstr("wait for it or stop it"));
  }
  ASSERT_EQ(::write(release[1], &c, 1), 1);
  int status = 0;
  ::waitpid(child, &status, 0);
  ASSERT_TRUE(WIFEXITED(status) && WEXITSTATUS(status) == 0);

  // Released by the holder's exit: ours now, and a second one in this process is refused.
  RunLock mine(path_);
  std::ifstream f(path_ + ".lock");
  std::string host;
  long pid = 0;
  f >> host >> pid;
  EXPECT_EQ(host, Hostname());
  EXPECT_EQ(pid, ::getpid());
  EXPECT_THROW(RunLock again(path_), UsageError);
  ::close(ready[0]);
  ::close(release[1]);
}

TEST_F(RegistryTest, IsNetworkFilesystemFalseOnTmp) {
  EXPECT_FALSE(IsNetworkFilesystem("/tmp"));
  EXPECT_FALSE(IsNetworkFilesystem(dir_));
}

// Design guard: the coordinator writes ~100k rows/s inside batches; statements must be cached.
TEST_F(RegistryTest, BatchedStateAndAttemptWritesAreFast) {
  Registry reg(path_, Registry::Mode::kWrite);
  constexpr int kShards = 20000;
  std::vector<ShardRow> shards;
  for (int i = 0; i < kShards; ++i) {
    char hex[17];
    std::snprintf(hex, sizeof(hex), "%016x", i);
    shards.push_back(MakeShard(hex));
  }
  reg.InsertShards(shards);
  // CPU time, so that other jobs on a shared machine do not make the guard flaky.
  auto cpu = [] {
    timespec ts{};
    ::clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &ts);
    return static_cast<double>(ts.tv_sec) + 1e-9 * static_cast<double>(ts.tv_nsec);
  };
  const double c0 = cpu();
  auto t0 = std::chrono::steady_clock::now();
  for (int b = 0; b < kShards; b += 1000) {
    Registry::Batch batch(reg);
    for (int i = b; i < b + 1000; ++i) {
      const ShardId& id = shards[static_cast<size_t>(i)].key.id();
      reg.SetShardState(id, ShardStatus::kDone, 1, "demo/base/" + id.hex + ".h5", "");
      reg.AddAttempt(AttemptRow{id, 1, 1 + i % 8, "node1", "cuda:0", 1.0, 2.0, Outcome::kOk, 0, 0,
                                "", 1024, "77"});
    }
    batch.Commit();
  }
  const double wall = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  const double secs = cpu() - c0;
  EXPECT_LT(secs, 1.0) << kShards << " SetShardState+AddAttempt took " << secs << " s CPU, " << wall
                       << " s wall";
  RecordProperty("cpu_seconds", std::to_string(secs));
  RecordProperty("wall_seconds", std::to_string(wall));
  EXPECT_EQ(Sql()->execAndGet("SELECT count(*) FROM attempts").getInt(), kShards);
  EXPECT_EQ(Sql()->execAndGet("SELECT count(*) FROM shards WHERE status='done'").getInt(), kShards);
}

// Version 6: version 7's DDL without live_points.
void DowngradeToVersion6(const std::string& path) {
  SQLite::Database db(path, SQLite::OPEN_READWRITE);
  db.exec("DROP TABLE live_points");
  db.exec("PRAGMA user_version=6");
}

TEST_F(RegistryTest, MigratesVersion6RegistriesToLiveCurves) {
  {
    Registry reg(path_, Registry::Mode::kWrite);
    reg.InsertShards({MakeShard("1111111111111111")});
  }
  DowngradeToVersion6(path_);
  const ShardId id{"1111111111111111"};
  {
    // `seedgrid serve` reads a version 6 registry (its coordinator not upgraded yet) as it is:
    // no live curves, no error.
    Registry reader(path_, Registry::Mode::kReadOnly);
    EXPECT_TRUE(reader.LiveCurves(id, 10).empty());
    EXPECT_TRUE(reader.LiveShards("demo", 8, 10).empty());
    EXPECT_EQ(reader.Shards("demo").size(), 1u);
  }
  Registry reg(path_, Registry::Mode::kWrite);
  EXPECT_EQ(Sql()->execAndGet("PRAGMA user_version").getInt(), 7);
  EXPECT_EQ(reg.Shards("demo").size(), 1u);  // rows kept
  const int64_t seq = reg.Shard(id)->seq;
  reg.SetShardStateAt(seq, ShardStatus::kRunning, 0, "", "");
  const std::vector<int64_t> steps{0, 1, 2};
  const std::vector<double> values{3, 2, 1};
  reg.AddLivePoints(seq, 1, "train/loss", steps, values, 10);
  auto shards = reg.LiveShards("demo", 8, 10);
  ASSERT_EQ(shards.size(), 1u);
  EXPECT_EQ(shards[0].id, id.hex);
  ASSERT_EQ(shards[0].curves.size(), 1u);
  EXPECT_EQ(shards[0].curves[0].values, values);
}

// Bounded: past kLivePointsPerCurve rows a curve is thinned to about half, evenly over its steps
// (however often it was thinned before), its newest kept; a reader thins further to what a page
// draws.
TEST_F(RegistryTest, LiveCurvesStayBoundedAndEvenlyThinned) {
  Registry reg(path_, Registry::Mode::kWrite);
  reg.InsertShards({MakeShard("1111111111111111")});
  const ShardId id{"1111111111111111"};
  const int64_t seq = reg.Shard(id)->seq;
  const int64_t n = 3 * Registry::kLivePointsPerCurve;
  for (int64_t s0 = 0; s0 < n; s0 += 50) {  // 50 points a message, as a feed sends them
    std::vector<int64_t> steps;
    std::vector<double> values;
    for (int64_t s = s0; s < s0 + 50; ++s) {
      steps.push_back(s);
      values.push_back(static_cast<double>(s) * 2);
    }
    reg.AddLivePoints(seq, 1, "loss", steps, values, 1);
  }
  reg.AddLivePoints(seq, 2, "loss", std::vector<int64_t>{0}, std::vector<double>{5}, 2);
  const int64_t rows =
      Sql()->execAndGet("SELECT count(*) FROM live_points WHERE attempt = 1").getInt64();
  EXPECT_LE(rows, Registry::kLivePointsPerCurve);
  EXPECT_GE(rows, Registry::kLivePointsPerCurve / 2);
  auto curves = reg.LiveCurves(id, 100);
  ASSERT_EQ(curves.size(), 2u);  // both attempts
  const auto& c = curves[0];
  EXPECT_EQ(c.attempt, 1);
  EXPECT_LE(c.steps.size(), 100u);
  EXPECT_GE(c.steps.size(), 50u);
  EXPECT_EQ(c.steps.front(), 0);
  EXPECT_EQ(c.steps.back(), n - 1);
  // Evenly spread: no gap more than a few times the mean.
  const double mean = static_cast<double>(n) / static_cast<double>(c.steps.size());
  for (size_t i = 1; i < c.steps.size(); ++i) {
    EXPECT_EQ(c.values[i], 2.0 * static_cast<double>(c.steps[i]));
    EXPECT_LT(static_cast<double>(c.steps[i] - c.steps[i - 1]), 4 * mean);
  }
  EXPECT_EQ(curves[1].attempt, 2);
  reg.DropLivePoints(seq);
  EXPECT_TRUE(reg.LiveCurves(id, 100).empty());
}

}  // namespace
}  // namespace seedgrid

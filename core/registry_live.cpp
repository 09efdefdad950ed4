// Live curves in the registry (live_points, schema version 7; core/registry.h). Written by the
// coordinator's RegistryWriter inside its batches, at most once a second per running shard
// (core/protocol.h: LivePoints), so the statements are prepared per call rather than cached
// for the hot path; read by `seedgrid serve`.
#include <SQLiteCpp/SQLiteCpp.h>

#include <algorithm>

#include "core/registry.h"

namespace seedgrid {
namespace {

bool HasLiveTable(SQLite::Database& db) {
  return db.execAndGet(
               "SELECT count(*) FROM sqlite_master WHERE type='table' AND "
               "name='live_points'")
             .getInt() > 0;
}

// A curve over its bound thinned to about half of it, evenly over its steps: one row kept per
// bucket of `width` steps (the first), and the newest. Buckets by step, not every other row:
// rows thinned before (the oldest part) stay as they are, so repeated thinning keeps the curve
// evenly spread instead of ever sparser toward its start.
void ThinCurve(SQLite::Database& db, int64_t seq, int attempt, const std::string& name,
               int64_t min_step, int64_t max_step) {
  const int64_t width = (max_step - min_step) / (Registry::kLivePointsPerCurve / 2) + 1;
  SQLite::Statement q(db,
                      "DELETE FROM live_points WHERE shard_seq=?1 AND attempt=?2 AND name=?3 AND "
                      "step <> ?5 AND step NOT IN (SELECT min(step) FROM live_points WHERE "
                      "shard_seq=?1 AND attempt=?2 AND name=?3 GROUP BY (step - ?4) / ?6)");
  q.bind(1, seq);
  q.bind(2, attempt);
  q.bind(3, name);
  q.bind(4, min_step);
  q.bind(5, max_step);
  q.bind(6, width);
  q.exec();
}

// Reads (attempt, name, step, value, t) rows ordered by attempt, name, step into curves, each
// thinned to `max_points` by an even stride over its rows (the newest kept).
std::vector<LiveCurveRow> ReadCurves(SQLite::Statement& q, size_t max_points) {
  std::vector<LiveCurveRow> out;
  while (q.executeStep()) {
    const int attempt = q.getColumn(0).getInt();
    const std::string name = q.getColumn(1).getString();
    if (out.empty() || out.back().attempt != attempt || out.back().name != name) {
      out.push_back(LiveCurveRow{attempt, name, {}, {}, 0});
    }
    LiveCurveRow& c = out.back();
    c.steps.push_back(q.getColumn(2).getInt64());
    c.values.push_back(q.getColumn(3).getDouble());
    c.t = std::max(c.t, q.getColumn(4).getDouble());
  }
  max_points = std::max<size_t>(max_points, 2);
  for (auto& c : out) {
    const size_t n = c.steps.size();
    if (n <= max_points) continue;
    const size_t stride = (n + max_points - 2) / (max_points - 1);
    size_t k = 0;
    for (size_t i = 0; i + 1 < n; i += stride, ++k) {
      c.steps[k] = c.steps[i];
      c.values[k] = c.values[i];
    }
    c.steps[k] = c.steps[n - 1];
    c.values[k] = c.values[n - 1];
    c.steps.resize(k + 1);
    c.values.resize(k + 1);
  }
  return out;
}

}  // namespace

void Registry::AddLivePoints(int64_t seq, int attempt, const std::string& name,
                             std::span<const int64_t> steps, std::span<const double> values,
                             double t) {
  SQLite::Statement q(*db_,
                      "INSERT OR REPLACE INTO live_points(shard_seq, attempt, name, step, value, "
                      "t) VALUES(?,?,?,?,?,?)");
  for (size_t i = 0; i < steps.size() && i < values.size(); ++i) {
    q.bind(1, seq);
    q.bind(2, attempt);
    q.bind(3, name);
    q.bind(4, steps[i]);
    q.bind(5, values[i]);
    q.bind(6, t);
    q.exec();
    q.reset();
  }
  SQLite::Statement count(*db_,
                          "SELECT count(*), min(step), max(step) FROM live_points WHERE "
                          "shard_seq=? AND attempt=? AND name=?");
  count.bind(1, seq);
  count.bind(2, attempt);
  count.bind(3, name);
  count.executeStep();
  if (count.getColumn(0).getInt64() > kLivePointsPerCurve) {
    ThinCurve(*db_, seq, attempt, name, count.getColumn(1).getInt64(),
              count.getColumn(2).getInt64());
  }
}

void Registry::DropLivePoints(int64_t seq) {
  SQLite::Statement q(*db_, "DELETE FROM live_points WHERE shard_seq=?");
  q.bind(1, seq);
  q.exec();
}

// The distinct shard_seqs of live_points by skip-scan: from each one to the next through the
// primary key, one seek per shard that has points (a DISTINCT would read every row).
constexpr const char* kLiveSeqs =
    "WITH RECURSIVE d(seq) AS (SELECT min(shard_seq) FROM live_points UNION ALL "
    "SELECT (SELECT min(shard_seq) FROM live_points WHERE shard_seq > d.seq) FROM d "
    "WHERE d.seq IS NOT NULL) ";

std::vector<int64_t> Registry::LiveSeqs() const {
  if (!HasLiveTable(*db_)) return {};
  SQLite::Statement q(*db_, std::string(kLiveSeqs) + "SELECT seq FROM d WHERE seq IS NOT NULL");
  std::vector<int64_t> out;
  while (q.executeStep()) out.push_back(q.getColumn(0).getInt64());
  return out;
}

std::vector<LiveCurveRow> Registry::LiveCurves(const ShardId& id, size_t max_points) const {
  if (!HasLiveTable(*db_)) return {};
  SQLite::Statement q(*db_,
                      "SELECT l.attempt, l.name, l.step, l.value, l.t FROM live_points l "
                      "WHERE l.shard_seq = (SELECT seq FROM shard_specs WHERE id=?) "
                      "ORDER BY l.attempt, l.name, l.step");
  q.bind(1, id.hex);
  return ReadCurves(q, max_points);
}

std::vector<LiveShardRow> Registry::LiveShards(const std::string& sweep, int max_shards,
                                               size_t max_points) const {
  if (!HasLiveTable(*db_)) return {};
  // live_points holds rows of running and failed shards only (a done shard's are dropped): the
  // shards with points are few, whatever the sweep's size, found by skip-scan (kLiveSeqs); each
  // is checked for membership and status.
  SQLite::Statement shards(*db_, std::string(kLiveSeqs) +
                                     "SELECT d.seq, p.id, m.stage, (SELECT max(attempt) FROM "
                                     "live_points WHERE shard_seq = d.seq) FROM d "
                                     "JOIN sweep_shards m ON m.sweep=?1 AND m.seq=d.seq "
                                     "JOIN shard_states s ON s.seq=d.seq AND s.status='running' "
                                     "JOIN shard_specs p ON p.seq=d.seq ORDER BY d.seq LIMIT ?2");
  shards.bind(1, sweep);
  shards.bind(2, max_shards);
  std::vector<LiveShardRow> out;
  std::vector<int> attempts;
  while (shards.executeStep()) {
    out.push_back(LiveShardRow{shards.getColumn(0).getInt64(),
                               shards.getColumn(1).getString(),
                               shards.getColumn(2).getString(),
                               {}});
    attempts.push_back(shards.getColumn(3).getInt());
  }
  SQLite::Statement q(*db_,
                      "SELECT attempt, name, step, value, t FROM live_points WHERE shard_seq=? "
                      "AND attempt=? ORDER BY name, step");
  for (size_t i = 0; i < out.size(); ++i) {
    q.bind(1, out[i].seq);
    q.bind(2, attempts[i]);
    out[i].curves = ReadCurves(q, max_points);
    q.reset();
  }
  return out;
}

}  // namespace seedgrid

// Registry reads for `seedgrid serve` (declared in core/registry.h). Kept apart from
// registry.cpp: the statements are prepared per call (a web request), not cached for the
// coordinator's hot path, and every one is an aggregate or a bounded page, so a page of a
// 10^6-shard sweep never reads a million rows into memory.
#include <SQLiteCpp/SQLiteCpp.h>

#include "core/registry.h"

namespace seedgrid {

int64_t Registry::DataVersion() const { return db_->execAndGet("PRAGMA data_version").getInt64(); }

std::vector<LaunchRow> Registry::Launches(const std::string& sweep) const {
  SQLite::Statement q(*db_,
                      "SELECT id, sweep, started, coalesce(ended, ''), host, pid, workers, "
                      "exit_code, job_id FROM launches WHERE sweep=? ORDER BY id");
  q.bind(1, sweep);
  std::vector<LaunchRow> out;
  while (q.executeStep()) {
    LaunchRow l;
    l.id = q.getColumn(0).getInt64();
    l.sweep = q.getColumn(1).getString();
    l.started = q.getColumn(2).getString();
    l.ended = q.getColumn(3).getString();
    l.host = q.getColumn(4).getString();
    l.pid = q.getColumn(5).getInt64();
    l.workers = q.getColumn(6).getInt();
    if (!q.getColumn(7).isNull()) l.exit_code = q.getColumn(7).getInt();
    l.job_id = q.getColumn(8).getString();
    out.push_back(std::move(l));
  }
  return out;
}

std::vector<StageStatusCount> Registry::CountByStatusSince(const std::string& sweep,
                                                           double since) const {
  // The kind is the stage's (every shard of a stage has it): read once per group from the
  // group's first member, not joined for each of a million rows.
  SQLite::Statement q(*db_,
                      "SELECT g.stage, g.stage_index, "
                      "(SELECT kind FROM shard_specs WHERE seq = g.first_seq), g.status, g.n, "
                      "g.recent FROM (SELECT m.stage AS stage, min(m.stage_index) AS stage_index, "
                      "min(m.seq) AS first_seq, s.status AS status, count(*) AS n, "
                      "sum(s.updated >= ?2) AS recent FROM sweep_shards m "
                      "JOIN shard_states s ON s.seq = m.seq WHERE m.sweep = ?1 "
                      "GROUP BY m.stage, s.status) g ORDER BY g.stage_index, g.status");
  q.bind(1, sweep);
  q.bind(2, since);
  std::vector<StageStatusCount> out;
  while (q.executeStep()) {
    StageStatusCount c;
    c.stage = q.getColumn(0).getString();
    c.stage_index = q.getColumn(1).getInt();
    c.kind = q.getColumn(2).getString();
    c.status = q.getColumn(3).getString();
    c.count = q.getColumn(4).getInt64();
    c.recent = q.getColumn(5).getInt64();
    out.push_back(std::move(c));
  }
  return out;
}

std::vector<ShardBrief> Registry::ShardPage(const ShardPageQuery& pq) const {
  // Walks sweep_shards' primary key (sweep, seq) from after_seq: the filters cost only the
  // rows they skip, and LIMIT stops the walk.
  SQLite::Statement q(*db_,
                      "SELECT m.seq, p.id, m.stage, s.status, s.attempts, s.error, s.updated, "
                      "p.params, p.axes FROM sweep_shards m JOIN shard_states s ON s.seq = m.seq "
                      "JOIN shard_specs p ON p.seq = m.seq "
                      "WHERE m.sweep = ?1 AND m.seq > ?2 AND (?3 = '' OR m.stage = ?3) "
                      "AND (?4 = '' OR s.status = ?4) ORDER BY m.seq LIMIT ?5");
  q.bind(1, pq.sweep);
  q.bind(2, pq.after_seq);
  q.bind(3, pq.stage);
  q.bind(4, pq.status);
  q.bind(5, pq.limit);
  std::vector<ShardBrief> out;
  while (q.executeStep()) {
    ShardBrief b;
    b.seq = q.getColumn(0).getInt64();
    b.id = q.getColumn(1).getString();
    b.stage = q.getColumn(2).getString();
    b.status = q.getColumn(3).getString();
    b.attempts = q.getColumn(4).getInt();
    b.error = q.getColumn(5).getString();
    b.updated = q.getColumn(6).getDouble();
    b.params_json = q.getColumn(7).getString();
    b.axes_json = q.getColumn(8).getString();
    out.push_back(std::move(b));
  }
  return out;
}

std::optional<double> Registry::ShardUpdated(const ShardId& id) const {
  SQLite::Statement q(*db_,
                      "SELECT s.updated FROM shard_specs p JOIN shard_states s ON s.seq = p.seq "
                      "WHERE p.id = ?");
  q.bind(1, id.hex);
  if (!q.executeStep()) return std::nullopt;
  return q.getColumn(0).getDouble();
}

}  // namespace seedgrid

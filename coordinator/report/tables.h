// From registry rows to seed-aggregated tables: the part of a report that needs no file but the
// registry, and the part the 10,000-shard benchmark times.
//
// A table is one stage's shards grouped by their axes (ShardRow::axes: grid/zip values, own and
// inherited through needs) except the seed, or by the keys the user names. In each group:
//   expected = every shard of the group in the registry, whatever its status;
//   present  = done shards that recorded the metric as a finite number;
//   missing  = the others, each with its seed and why (failed, running, pending, preempted,
//              "no metric", "not finite"). A group with anything missing is incomplete and every
//              output format says so: nothing is dropped silently.
// Stages with a reduce shard are tabulated over their reduce shards: map shards hold partial
// accumulators, not results. Which metrics a table shows by default is the kind's
// (KindConfig::report, read from the kind registry the sweep was loaded with).
#pragma once

#include <cstdint>
#include <map>
#include <string>
#include <utility>
#include <vector>

#include "coordinator/report/stats.h"
#include "core/kinds.h"
#include "core/registry.h"

namespace seedgrid::report {

// Everything a report reads from the registry, read once.
struct SweepData {
  struct Stage {
    std::string name;
    std::string kind;
    int index = 0;
    std::vector<size_t> shards;  // indices into SweepData::shards
  };
  SweepRow sweep;
  std::string registry_dir;  // shard artifacts are relative to it
  std::vector<ShardRow> shards;
  // Per shard (parallel to `shards`): its metrics sorted by name.
  std::vector<std::vector<std::pair<std::string, double>>> metrics;
  std::vector<Stage> stages;            // in stage order
  const KindRegistry* kinds = nullptr;  // the kinds' report defaults (figures, metrics)

  const Stage* FindStage(const std::string& name) const;
  const double* Metric(size_t shard, const std::string& name) const;  // nullptr when absent
  // The kind's config; nullptr for a kind this build does not know (no defaults).
  const KindConfig* Kind(const std::string& name) const;
  std::string ArtifactPath(
      size_t shard) const;  // absolute or registry-relative resolved; "" if none
};

// Throws UsageError naming the known sweeps when `sweep` is not in the registry. `kinds` must
// outlive the result.
SweepData LoadSweep(const Registry& registry, const std::string& sweep,
                    const KindRegistry& kinds = AllKinds());

// What one table shows. Empty metrics: the kind's defaults; empty group_by: every axis but seed.
// Metric names may end in '*' to select by prefix ("retained.*").
struct TableRequest {
  std::string stage;
  std::vector<std::string> metrics;
  std::vector<std::string> group_by;
};

struct MissingSeed {
  int64_t seed = 0;
  ShardId shard;
  std::string reason;
};

struct Cell {
  Summary summary;
  size_t expected = 0;
  std::vector<int64_t> seeds;  // present seeds, ascending, parallel to `values`
  std::vector<double> values;
  std::vector<MissingSeed> missing;
  bool complete() const { return missing.empty(); }
};

struct Group {
  std::vector<Json> key;  // one value per StageTable::keys
  std::string label;      // "adapter=lora, lora.rank=2" ("all shards" without keys)
  std::vector<size_t> shards;
  std::vector<Cell> cells;  // one per StageTable::metrics
  bool complete = true;
};

struct StageTable {
  std::string id;  // unique file stem within a report
  std::string stage;
  std::string kind;
  std::vector<std::string> keys;
  std::vector<std::string> metrics;
  std::vector<Group> groups;
  std::map<std::string, size_t> status_counts;  // over the tabulated shards
  bool reduce_only = false;
  size_t incomplete_groups() const;
};

// Metrics a table of a stage of `kind` shows by default, of the sorted `available`: the kind's
// KindReport::metrics in order (prefixes ending in '*' expand by name), then the rest by name
// unless the kind shows only its own (KindReport::only_these) and some of them are available.
// A null kind: every available metric.
std::vector<std::string> DefaultMetrics(const KindConfig* kind,
                                        const std::vector<std::string>& available);

// Builds one table. Appends a problem (unknown stage, unknown metric, unknown group-by key) to
// `problems` instead of throwing, so that every problem can be reported at once; returns a
// table without groups in that case.
StageTable BuildTable(const SweepData& data, const TableRequest& request,
                      std::vector<std::string>& problems);

// Names of the metrics recorded by the stage's tabulated rows, sorted.
std::vector<std::string> StageMetrics(const SweepData& data, const std::string& stage);
// Whether some tabulated row of the stage has `key` as an axis, a dotted param path, or it is
// "seed".
bool StageHasKey(const SweepData& data, const std::string& stage, const std::string& key);
// Whether a metric name matches a request (an exact name, or a prefix ending in '*').
bool MetricMatches(const std::string& request, const std::string& name);

// A stage's rows (reduce shards when it has them) grouped by every axis but the seed, as
// figures draw them: one line or panel per group.
std::vector<Group> ConfigGroups(const SweepData& data, const std::string& stage);

// The rows a stage's tables and figures use: its reduce shards when it has any, else all.
std::vector<size_t> TabulatedRows(const SweepData::Stage& stage, const SweepData& data);

// A row's value of a group key: the seed, an axis, or a dotted param path (null when absent).
Json KeyValue(const ShardRow& row, const std::string& key);

// Text of a group-key value: strings as they are, everything else as JSON.
std::string KeyText(const Json& value);

}  // namespace seedgrid::report

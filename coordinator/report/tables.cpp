#include "coordinator/report/tables.h"

#include <algorithm>
#include <cmath>
#include <filesystem>
#include <set>
#include <unordered_map>

#include <fmt/format.h>
#include <fmt/ranges.h>

namespace seedgrid::report {

namespace fs = std::filesystem;

const SweepData::Stage* SweepData::FindStage(const std::string& name) const {
  for (const auto& s : stages) {
    if (s.name == name) return &s;
  }
  return nullptr;
}

const double* SweepData::Metric(size_t shard, const std::string& name) const {
  const auto& m = metrics[shard];
  auto it = std::lower_bound(m.begin(), m.end(), name,
                             [](const auto& kv, const std::string& n) { return kv.first < n; });
  return it != m.end() && it->first == name ? &it->second : nullptr;
}

const KindConfig* SweepData::Kind(const std::string& name) const {
  return kinds ? kinds->Find(name) : nullptr;
}

std::string SweepData::ArtifactPath(size_t shard) const {
  const std::string& a = shards[shard].artifact;
  if (a.empty()) return "";
  fs::path p(a);
  return p.is_absolute() ? a : (fs::path(registry_dir) / p).lexically_normal().string();
}

SweepData LoadSweep(const Registry& registry, const std::string& sweep, const KindRegistry& kinds) {
  SweepData d;
  d.kinds = &kinds;
  auto row = registry.Sweep(sweep);
  if (!row) {
    std::vector<std::string> names;
    for (const auto& s : registry.Sweeps()) names.push_back(s.name);
    throw UsageError(
        fmt::format("unknown sweep '{}' in {} (sweeps: {})", sweep, registry.path(),
                    names.empty() ? "none" : fmt::format("{}", fmt::join(names, ", "))));
  }
  d.sweep = *row;
  d.registry_dir = fs::absolute(fs::path(registry.path())).parent_path().string();
  d.shards = registry.Shards(sweep);
  std::stable_sort(d.shards.begin(), d.shards.end(), [](const ShardRow& a, const ShardRow& b) {
    return a.stage_index < b.stage_index;
  });
  std::unordered_map<std::string, size_t> by_id;
  by_id.reserve(d.shards.size());
  for (size_t i = 0; i < d.shards.size(); ++i) by_id.emplace(d.shards[i].key.id().hex, i);
  d.metrics.resize(d.shards.size());
  for (auto& m : registry.MetricsOfSweep(sweep)) {
    auto it = by_id.find(m.shard.hex);
    if (it != by_id.end()) d.metrics[it->second].emplace_back(std::move(m.name), m.value);
  }
  for (auto& m : d.metrics) std::sort(m.begin(), m.end());
  for (size_t i = 0; i < d.shards.size(); ++i) {
    const ShardRow& s = d.shards[i];
    if (d.stages.empty() || d.stages.back().name != s.key.stage()) {
      d.stages.push_back({s.key.stage(), s.key.kind(), s.stage_index, {}});
    }
    d.stages.back().shards.push_back(i);
  }
  return d;
}

size_t StageTable::incomplete_groups() const {
  return std::count_if(groups.begin(), groups.end(), [](const Group& g) { return !g.complete; });
}

std::vector<std::string> DefaultMetrics(const KindConfig* kind,
                                        const std::vector<std::string>& available) {
  std::vector<std::string> out;
  auto add = [&](const std::string& m) {
    if (std::find(out.begin(), out.end(), m) == out.end()) out.push_back(m);
  };
  if (kind) {
    for (const auto& want : kind->report.metrics) {
      for (const auto& m : available) {
        if (MetricMatches(want, m)) add(m);
      }
    }
    if (kind->report.only_these && !out.empty()) return out;
  }
  for (const auto& m : available) add(m);
  return out;
}

std::string KeyText(const Json& value) {
  if (value.is_string()) return value.get<std::string>();
  if (value.is_null()) return "—";
  return value.dump();
}

namespace {

const Json* ParamAt(const Json& params, const std::string& dotted) {
  const Json* j = &params;
  size_t start = 0;
  while (start <= dotted.size()) {
    size_t dot = dotted.find('.', start);
    std::string part =
        dotted.substr(start, dot == std::string::npos ? std::string::npos : dot - start);
    if (!j->is_object()) return nullptr;
    auto it = j->find(part);
    if (it == j->end()) return nullptr;
    j = &*it;
    if (dot == std::string::npos) return j;
    start = dot + 1;
  }
  return nullptr;
}

}  // namespace

Json KeyValue(const ShardRow& row, const std::string& key) {
  if (key == "seed") return row.key.seed();
  if (auto it = row.key.axes().find(key); it != row.key.axes().end()) return *it;
  const Json* p = ParamAt(row.key.params(), key);
  return p ? *p : Json();
}

namespace {

bool HasKey(const ShardRow& row, const std::string& key) {
  return key == "seed" || row.key.axes().contains(key) || ParamAt(row.key.params(), key) != nullptr;
}

std::string StatusReason(ShardStatus s) { return std::string(ToString(s)); }

// The keys rows are grouped by: every axis but the seed, or the request's (each checked).
void ChooseKeys(StageTable& t, const SweepData& data, const std::vector<size_t>& rows,
                const TableRequest& request, std::vector<std::string>& problems) {
  if (request.group_by.empty()) {
    std::set<std::string> keys;
    for (size_t i : rows) {
      for (const auto& [k, v] : data.shards[i].key.axes().items()) {
        if (k != "seed") keys.insert(k);
      }
    }
    t.keys.assign(keys.begin(), keys.end());
  } else {
    std::set<std::string> axes;
    for (size_t i : rows) {
      for (const auto& [k, v] : data.shards[i].key.axes().items()) axes.insert(k);
    }
    for (const auto& k : request.group_by) {
      bool found = std::any_of(rows.begin(), rows.end(),
                               [&](size_t i) { return HasKey(data.shards[i], k); });
      if (!found) {
        problems.push_back(fmt::format(
            "stage '{}' has no axis or param '{}' to group by (axes: {}; or seed, or a dotted "
            "param path)",
            t.stage, k, axes.empty() ? "none" : fmt::format("{}", fmt::join(axes, ", "))));
      } else if (std::find(t.keys.begin(), t.keys.end(), k) == t.keys.end()) {
        t.keys.push_back(k);
      }
    }
  }
}

// The metrics shown: exact names or prefixes ("retained.*"), the kind's defaults otherwise.
void ChooseMetrics(StageTable& t, const SweepData& data, const std::vector<size_t>& rows,
                   const TableRequest& request, std::vector<std::string>& problems) {
  std::vector<std::string> available;
  {
    std::set<std::string> names;
    for (size_t i : rows) {
      for (const auto& [name, v] : data.metrics[i]) names.insert(name);
    }
    available.assign(names.begin(), names.end());
  }
  std::vector<std::string> wanted =
      request.metrics.empty() ? DefaultMetrics(data.Kind(t.kind), available) : request.metrics;
  for (const auto& w : wanted) {
    std::vector<std::string> matched;
    if (w.ends_with('*')) {
      for (const auto& m : available) {
        if (MetricMatches(w, m)) matched.push_back(m);
      }
    } else if (std::binary_search(available.begin(), available.end(), w) || available.empty()) {
      matched.push_back(w);  // with no metric recorded yet (nothing done), names are taken on trust
    }
    if (matched.empty() && !available.empty()) {
      problems.push_back(fmt::format("stage '{}' has no metric '{}' (metrics: {})", t.stage, w,
                                     fmt::join(available, ", ")));
    }
    for (auto& m : matched) {
      if (std::find(t.metrics.begin(), t.metrics.end(), m) == t.metrics.end())
        t.metrics.push_back(m);
    }
  }
}

// One group per distinct key, in key order.
void GroupRows(StageTable& t, const SweepData& data, const std::vector<size_t>& rows) {
  std::map<std::vector<Json>, size_t> index;
  for (size_t i : rows) {
    std::vector<Json> key;
    key.reserve(t.keys.size());
    for (const auto& k : t.keys) key.push_back(KeyValue(data.shards[i], k));
    auto [it, inserted] = index.try_emplace(std::move(key), 0);
    if (inserted) {
      it->second = t.groups.size();
      t.groups.push_back({it->first, "", {}, {}, true});
    }
    t.groups[it->second].shards.push_back(i);
  }
  std::vector<Group> ordered;
  ordered.reserve(t.groups.size());
  for (auto& [key, gi] : index) ordered.push_back(std::move(t.groups[gi]));
  t.groups = std::move(ordered);
}

// Each group's label, seeds in order, and a cell per metric (values, or why a seed is missing).
void FillCells(StageTable& t, const SweepData& data) {
  for (auto& g : t.groups) {
    std::vector<std::string> parts;
    for (size_t k = 0; k < t.keys.size(); ++k) parts.push_back(t.keys[k] + "=" + KeyText(g.key[k]));
    g.label = parts.empty() ? "all shards" : fmt::format("{}", fmt::join(parts, ", "));
    std::sort(g.shards.begin(), g.shards.end(), [&](size_t a, size_t b) {
      return std::pair(data.shards[a].key.seed(), a) < std::pair(data.shards[b].key.seed(), b);
    });
    for (size_t i : g.shards) g.complete &= data.shards[i].status == ShardStatus::kDone;
    g.cells.resize(t.metrics.size());
    for (size_t m = 0; m < t.metrics.size(); ++m) {
      Cell& c = g.cells[m];
      c.expected = g.shards.size();
      for (size_t i : g.shards) {
        const ShardRow& s = data.shards[i];
        const double* v = s.status == ShardStatus::kDone ? data.Metric(i, t.metrics[m]) : nullptr;
        if (s.status != ShardStatus::kDone) {
          c.missing.push_back({s.key.seed(), s.key.id(), StatusReason(s.status)});
        } else if (!v) {
          c.missing.push_back({s.key.seed(), s.key.id(), "no metric"});
        } else if (!std::isfinite(*v)) {
          c.missing.push_back({s.key.seed(), s.key.id(), fmt::format("not finite ({})", *v)});
        } else {
          c.seeds.push_back(s.key.seed());
          c.values.push_back(*v);
        }
      }
      c.summary = Summarize(c.values);
      g.complete &= c.complete();
    }
  }
}

}  // namespace

StageTable BuildTable(const SweepData& data, const TableRequest& request,
                      std::vector<std::string>& problems) {
  StageTable t;
  t.stage = request.stage;
  t.id = request.stage;
  const SweepData::Stage* stage = data.FindStage(request.stage);
  if (!stage) {
    std::vector<std::string> names;
    for (const auto& s : data.stages) names.push_back(s.name);
    problems.push_back(fmt::format("sweep '{}' has no stage '{}' (stages: {})", data.sweep.name,
                                   request.stage, fmt::join(names, ", ")));
    return t;
  }
  t.kind = stage->kind;

  // 1. The rows: reduce shards when the stage has them.
  std::vector<size_t> rows = TabulatedRows(*stage, data);
  for (size_t i : stage->shards) t.reduce_only |= data.shards[i].key.role() == ShardRole::kReduce;
  for (size_t i : rows) ++t.status_counts[std::string(ToString(data.shards[i].status))];

  ChooseKeys(t, data, rows, request, problems);
  ChooseMetrics(t, data, rows, request, problems);
  GroupRows(t, data, rows);
  FillCells(t, data);
  return t;
}

std::vector<Group> ConfigGroups(const SweepData& data, const std::string& stage) {
  std::vector<std::string> ignored;
  std::vector<Group> groups = BuildTable(data, {stage, {}, {}}, ignored).groups;
  for (auto& g : groups) {
    if (g.key.empty()) g.label = stage;  // one config: name the line after the stage
  }
  return groups;
}

std::vector<size_t> TabulatedRows(const SweepData::Stage& stage, const SweepData& data) {
  bool reduce = false;
  for (size_t i : stage.shards) reduce |= data.shards[i].key.role() == ShardRole::kReduce;
  std::vector<size_t> rows;
  for (size_t i : stage.shards) {
    if (!reduce || data.shards[i].key.role() == ShardRole::kReduce) rows.push_back(i);
  }
  return rows;
}

std::vector<std::string> StageMetrics(const SweepData& data, const std::string& stage) {
  const SweepData::Stage* s = data.FindStage(stage);
  if (!s) return {};
  std::set<std::string> names;
  for (size_t i : TabulatedRows(*s, data)) {
    for (const auto& [name, v] : data.metrics[i]) names.insert(name);
  }
  return {names.begin(), names.end()};
}

bool StageHasKey(const SweepData& data, const std::string& stage, const std::string& key) {
  const SweepData::Stage* s = data.FindStage(stage);
  if (!s) return false;
  for (size_t i : TabulatedRows(*s, data)) {
    if (HasKey(data.shards[i], key)) return true;
  }
  return false;
}

bool MetricMatches(const std::string& request, const std::string& name) {
  if (request.ends_with('*'))
    return name.starts_with(std::string_view(request).substr(0, request.size() - 1));
  return request == name;
}

}  // namespace seedgrid::report

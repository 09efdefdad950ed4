// Expansion: a parsed SweepSpec -> the Plan's shards (rules at the top of core/spec.h).
#include <algorithm>
#include <unordered_map>

#include <fmt/format.h>

#include "core/spec.h"
#include "core/spec/params.h"
#include "core/spec/shard_id.h"
#include "core/spec/text.h"

namespace seedgrid {

using namespace spec_detail;

namespace {

// Calls f(digits) for every combination of digits[i] in [0, radix[i]), the last digit fastest.
template <class F>
void ForEachCombination(const std::vector<size_t>& radix, F&& f) {
  for (size_t r : radix) {
    if (r == 0) return;
  }
  std::vector<size_t> d(radix.size(), 0);
  while (true) {
    f(d);
    size_t i = radix.size();
    while (true) {
      if (i == 0) return;
      --i;
      if (++d[i] < radix[i]) break;
      d[i] = 0;
    }
  }
}

uint64_t MulSat(uint64_t a, uint64_t b) {
  uint64_t r;
  return __builtin_mul_overflow(a, b, &r) ? UINT64_MAX : r;
}
uint64_t AddSat(uint64_t a, uint64_t b) {
  uint64_t r;
  return __builtin_add_overflow(a, b, &r) ? UINT64_MAX : r;
}

// What ExpandSpec settles before it builds a shard: kinds, needs, stage order and counts.
struct Layout {
  std::vector<const KindConfig*> kind;
  std::vector<std::vector<size_t>> needs;
  std::vector<size_t> order;  // each stage after the stages it needs (spec order first)
  uint64_t total = 0;
};

// Long (~80 lines) for one reason: resolving needs, ordering stages and counting shards are
// three passes over the same per-stage arrays, read in that order.
Layout LayOut(const SweepSpec& spec, const KindRegistry& kinds, size_t max_shards) {
  const size_t n = spec.stages.size();
  auto where = [&](const StageSpec& s) { return fmt::format("{}:{}", spec.source_path, s.line); };
  std::vector<std::string> problems;
  Layout l;
  std::vector<const KindConfig*>& kind = l.kind;
  std::vector<std::vector<size_t>>& needs = l.needs;
  kind.resize(n);
  needs.resize(n);
  for (size_t i = 0; i < n; ++i) {
    const StageSpec& st = spec.stages[i];
    kind[i] = kinds.Find(st.kind);
    if (!kind[i]) problems.push_back(fmt::format("{}: unknown kind '{}'", where(st), st.kind));
    for (const auto& need : st.needs) {
      size_t j = 0;
      while (j < n && spec.stages[j].name != need) ++j;
      if (j == n || j == i) {
        problems.push_back(fmt::format("{}: stage '{}' needs '{}', which is not another stage",
                                       where(st), st.name, need));
      } else {
        needs[i].push_back(j);
      }
    }
  }
  if (!problems.empty()) throw SpecError(problems);
  std::vector<size_t>& order = l.order;
  std::vector<bool> placed(n, false);
  while (order.size() < n) {
    size_t i = 0;
    for (; i < n; ++i) {
      if (placed[i]) continue;
      if (std::all_of(needs[i].begin(), needs[i].end(), [&](size_t j) { return placed[j]; })) {
        break;
      }
    }
    if (i == n) {
      throw SpecError({fmt::format("{}: the stages' needs form a cycle", spec.source_path)});
    }
    placed[i] = true;
    order.push_back(i);
  }

  // Count before building anything, so that a 10^12-shard grid fails at once.
  auto own_seeds = [&](const StageSpec& st) -> std::vector<int64_t> {
    return st.seeds.empty() ? std::vector<int64_t>{0} : st.seeds;
  };
  auto inherits_seed = [&](size_t i) { return !spec.stages[i].seeds_given && !needs[i].empty(); };
  std::vector<uint64_t> outputs(n, 0), count(n, 0);
  uint64_t& total = l.total;
  for (size_t i : order) {
    const StageSpec& st = spec.stages[i];
    uint64_t c = inherits_seed(i) ? 1 : own_seeds(st).size();
    for (const auto& a : st.grid) c = MulSat(c, a.values.size());
    if (!st.zip.empty()) c = MulSat(c, st.zip[0].values.size());
    for (size_t j : needs[i]) c = MulSat(c, outputs[j]);
    const bool reduce = st.shards > 1 && kind[i]->has_reduce;
    outputs[i] = reduce ? c : MulSat(c, std::max(st.shards, 1));
    count[i] = MulSat(c, std::max(st.shards, 1) + (reduce ? 1 : 0));
    total = AddSat(total, count[i]);
  }
  if (total > max_shards) {
    std::vector<std::string> parts;
    size_t biggest = order[0];
    for (size_t i : order) {
      parts.push_back(fmt::format("{} {}", spec.stages[i].name,
                                  count[i] == UINT64_MAX ? "> 2^64" : std::to_string(count[i])));
      if (count[i] > count[biggest]) biggest = i;
    }
    throw SpecError({fmt::format(
        "{}: the sweep expands to {} shards ({}), more than max_shards = {}; reduce seeds, axes or "
        "shards",
        where(spec.stages[biggest]), total == UINT64_MAX ? "over 2^64" : std::to_string(total),
        Join(parts), max_shards)});
  }

  return l;
}

}  // namespace

uint64_t CountShards(const SweepSpec& spec, const KindRegistry& kinds, size_t max_shards) {
  return LayOut(spec, kinds, max_shards).total;
}

// Kept whole (~120 lines): `emit` and the nested loops over needs × seeds × grid × zip × shards
// share the plan, the duplicate index and each stage's outputs; the loops read as the rules at
// the top of core/spec.h, in the same order.
Plan ExpandSpec(const SweepSpec& spec, const KindRegistry& kinds, size_t max_shards) {
  const size_t n = spec.stages.size();
  auto where = [&](const StageSpec& s) { return fmt::format("{}:{}", spec.source_path, s.line); };
  std::vector<std::string> problems;
  const Layout l = LayOut(spec, kinds, max_shards);
  const auto& kind = l.kind;
  const auto& needs = l.needs;
  const auto& order = l.order;
  const uint64_t total = l.total;
  auto own_seeds = [&](const StageSpec& st) -> std::vector<int64_t> {
    return st.seeds.empty() ? std::vector<int64_t>{0} : st.seeds;
  };
  auto inherits_seed = [&](size_t i) { return !spec.stages[i].seeds_given && !needs[i].empty(); };

  Plan plan;
  plan.spec = spec;
  plan.shards.reserve(total);
  std::unordered_map<std::string, size_t> seen;
  seen.reserve(total);
  std::vector<std::vector<size_t>> outs(n);  // indices into plan.shards
  auto emit = [&](size_t i, Json params, int64_t seed, std::vector<ShardId> need_ids,
                  const Json& axes, ShardRole role) {
    const StageSpec& st = spec.stages[i];
    ShardKey::Fields f;
    f.params_json = CanonicalJson(params);
    f.axes_json = CanonicalJson(axes);
    if (kind[i]->unhashed_params.empty()) {
      f.id = ShardIdOf(st.kind, f.params_json, seed, need_ids, CodeTag());
    } else {  // where things are on this machine is not what is computed (KindConfig)
      Json hashed = params;
      for (const auto& key : kind[i]->unhashed_params) hashed.erase(key);
      f.id = ShardIdOf(st.kind, CanonicalJson(hashed), seed, need_ids, CodeTag());
    }
    f.stage = st.name;
    f.kind = st.kind;
    f.seed = seed;
    f.role = role;
    f.needs = std::move(need_ids);
    ShardPlan s;
    s.key = ShardKey(std::move(f), std::move(params), axes);
    s.stage_index = static_cast<int>(i);
    s.resources = st.resources;
    auto [it, fresh] = seen.emplace(s.key.id().hex, plan.shards.size());
    if (!fresh && problems.size() < 20) {
      const ShardPlan& other = plan.shards[it->second];
      problems.push_back(fmt::format(
          "{}: stage '{}' repeats shard {} of stage '{}' (same kind, params, seed and needs)",
          where(st), st.name, s.key.id().hex, other.key.stage()));
    }
    plan.shards.push_back(std::move(s));
    return plan.shards.size() - 1;
  };

  for (size_t i : order) {
    const StageSpec& st = spec.stages[i];
    const bool reduce = st.shards > 1 && kind[i]->has_reduce;
    std::vector<size_t> need_radix, grid_radix;
    for (size_t j : needs[i]) need_radix.push_back(outs[j].size());
    for (const auto& a : st.grid) grid_radix.push_back(a.values.size());
    const size_t zip_rows = st.zip.empty() ? 1 : st.zip[0].values.size();

    ForEachCombination(need_radix, [&](const std::vector<size_t>& pick) {
      std::vector<const ShardPlan*> from;
      std::vector<ShardId> need_ids;
      for (size_t k = 0; k < pick.size(); ++k) {
        from.push_back(&plan.shards[outs[needs[i][k]][pick[k]]]);
        need_ids.push_back(from.back()->key.id());
      }
      std::vector<int64_t> seeds =
          inherits_seed(i) ? std::vector<int64_t>{from[0]->key.seed()} : own_seeds(st);
      for (int64_t seed : seeds) {
        ForEachCombination(grid_radix, [&](const std::vector<size_t>& g) {
          for (size_t z = 0; z < zip_rows; ++z) {
            Json params = st.params;
            Json axes = Json::object();
            for (size_t a = 0; a < st.grid.size(); ++a) {
              ApplyAxis(params, st.grid[a].key, st.grid[a].values[g[a]]);
              axes[st.grid[a].key] = st.grid[a].values[g[a]];
            }
            for (const auto& a : st.zip) {
              ApplyAxis(params, a.key, a.values[z]);
              axes[a.key] = a.values[z];
            }
            for (const ShardPlan* o : from) {
              for (const auto& [k, v] : o->key.axes().items()) {
                if (!axes.contains(k)) {
                  axes[k] = v;
                } else if (axes[k] != v) {
                  axes[o->key.stage() + ":" + k] = v;
                }
              }
            }
            if (st.shards <= 1) {
              outs[i].push_back(emit(i, params, seed, need_ids, axes, ShardRole::kSingle));
              continue;
            }
            std::vector<ShardId> map_ids;
            for (int s = 0; s < st.shards; ++s) {
              Json p = params;
              p["shard_index"] = s;
              p["shard_count"] = st.shards;
              size_t at = emit(i, std::move(p), seed, need_ids, axes,
                               reduce ? ShardRole::kMap : ShardRole::kSingle);
              map_ids.push_back(plan.shards[at].key.id());
              if (!reduce) outs[i].push_back(at);
            }
            if (reduce) {
              Json p = params;
              p["role"] = "reduce";
              p["shard_count"] = st.shards;
              outs[i].push_back(emit(i, std::move(p), seed, map_ids, axes, ShardRole::kReduce));
            }
          }
        });
      }
    });
  }
  if (!problems.empty()) throw SpecError(problems);
  return plan;
}

}  // namespace seedgrid

// Expansion: a parsed SweepSpec -> the Plan's shards (rules at the top of core/spec.h), and one
// more rule, the token cache (docs/data.md): a shard whose params.data.source is "text" also
// needs a shard of kind `tokens`, whose params ({format, data, data_dir}) the tokens kind's
// resolve hook derives from the shard's `data` (only what tokenization reads, so every stage,
// config and seed naming the same text needs the same one). Those shards form one implicit
// stage, `tokens` (`tokens_` when the spec has a stage of that name), appended to Plan::spec's
// stages; a registry without the kind adds none. Tokenizing is CPU work: the implicit stage and
// its shards ask for no GPU (TokensResources). (Stated here rather than in core/spec.h, which
// LibTorch translation units include.)
#include <algorithm>
#include <optional>
#include <unordered_map>
#include <unordered_set>

#include <fmt/format.h>

#include "core/spec.h"
#include "core/spec/params.h"
#include "core/spec/shard_id.h"
#include "core/spec/text.h"

namespace seedgrid {

using namespace spec_detail;

namespace {

constexpr char kTokensKind[] = "tokens";  // the token cache's kind (experiments/tokens/)

// The resources of the implicit tokens stage: the defaults (3 attempts, no timeout, an executor
// of its own), but 0 GPUs per rank, since the shard only reads text and writes ids.
Resources TokensResources() {
  Resources r;
  r.gpus = 0;
  return r;
}

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

namespace {

// Adds shards to a plan: derives each id, keeps the index that finds a repeated shard, and
// folds a config into the earlier shard of its stage that it is (KindConfig::inapplicable).
class ShardEmitter {
 public:
  ShardEmitter(const SweepSpec& spec, const std::vector<const KindConfig*>& kind, Plan& plan,
               const KindConfig* tokens)
      : spec_(spec), kind_(kind), plan_(plan), tokens_(tokens) {
    seen_.reserve(plan.shards.capacity());
    tokens_stage = kTokensKind;
    while (spec.FindStage(tokens_stage)) tokens_stage += "_";
  }

  // The token cache a shard of stage i with `params` reads (the rule atop this file): the id of the
  // tokens shard its text makes, emitted the first time; none when it reads no text.
  std::optional<ShardId> TokenCache(size_t i, const Json& params) {
    const StageSpec& st = spec_.stages[i];
    if (!tokens_ || !tokens_->resolve || st.kind == kTokensKind || !params.contains("data") ||
        !params["data"].is_object() || params["data"].value("source", "") != "text")
      return std::nullopt;
    Json tp = {
        {"format", ""}, {"data", params["data"]}, {"data_dir", params.value("data_dir", "")}};
    for (const auto& p : tokens_->resolve(tp, {}))
      problems.push_back(fmt::format("{}:{}: stage '{}': token cache: {}", spec_.source_path,
                                     st.line, st.name, p));
    if (tp.value("format", "").empty()) return std::nullopt;
    ShardKey::Fields f;
    f.params_json = CanonicalJson(tp);
    Json hashed = tp;
    for (const auto& key : tokens_->unhashed_params) hashed.erase(key);
    f.id = ShardIdOf(kTokensKind, CanonicalJson(hashed), 0, {}, CodeTag());
    auto [it, fresh] = seen_.emplace(f.id.hex, plan_.shards.size());
    if (!fresh) return f.id;  // named before: one cache
    f.axes_json = "{}";
    f.stage = tokens_stage;
    f.kind = kTokensKind;
    ShardPlan s;
    s.key = ShardKey(std::move(f), std::move(tp), Json::object());
    s.stage_index = static_cast<int>(spec_.stages.size());
    s.resources = TokensResources();
    plan_.shards.push_back(std::move(s));
    tokens_emitted = true;
    return plan_.shards.back().key.id();
  }

  struct Emitted {
    size_t index;  // into plan.shards
    bool fresh;    // false: the config is the shard at `index`
  };

  // `own_axes`: the config's axes as the spec gives them; `reset`: ResetInapplicable changed
  // its params.
  Emitted Emit(size_t i, Json params, int64_t seed, std::vector<ShardId> need_ids, const Json& axes,
               ShardRole role, const Json& own_axes, bool reset) {
    const StageSpec& st = spec_.stages[i];
    ShardKey::Fields f;
    f.params_json = CanonicalJson(params);
    f.axes_json = CanonicalJson(axes);
    if (kind_[i]->unhashed_params.empty()) {
      f.id = ShardIdOf(st.kind, f.params_json, seed, need_ids, CodeTag());
    } else {  // where things are on this machine is not what is computed (KindConfig)
      Json hashed = params;
      for (const auto& key : kind_[i]->unhashed_params) hashed.erase(key);
      f.id = ShardIdOf(st.kind, CanonicalJson(hashed), seed, need_ids, CodeTag());
    }
    auto [it, fresh] = seen_.emplace(f.id.hex, plan_.shards.size());
    if (!fresh) {
      const ShardPlan& other = plan_.shards[it->second];
      if (other.stage_index == static_cast<int>(i) && (reset || reset_.count(it->second))) {
        plan_.collapsed.push_back({st.name, seed, role, own_axes, other.key.id()});
        return {it->second, false};
      }
      if (problems.size() < 20) {
        problems.push_back(fmt::format(
            "{}:{}: stage '{}' repeats shard {} of stage '{}' (same kind, params, seed and needs)",
            spec_.source_path, st.line, st.name, f.id.hex, other.key.stage()));
      }
    }
    if (reset) reset_.insert(plan_.shards.size());
    f.stage = st.name;
    f.kind = st.kind;
    f.seed = seed;
    f.role = role;
    f.needs = std::move(need_ids);
    ShardPlan s;
    s.key = ShardKey(std::move(f), std::move(params), axes);
    s.stage_index = static_cast<int>(i);
    s.resources = st.resources;
    plan_.shards.push_back(std::move(s));
    return {plan_.shards.size() - 1, true};
  }

  std::vector<std::string> problems;
  std::string tokens_stage;     // the implicit stage of the tokens shards
  bool tokens_emitted = false;  // some shard reads text

 private:
  const SweepSpec& spec_;
  const std::vector<const KindConfig*>& kind_;
  Plan& plan_;
  const KindConfig* tokens_;
  std::unordered_map<std::string, size_t> seen_;
  std::unordered_set<size_t> reset_;  // shards whose params ResetInapplicable changed
};

// One configuration of stage i (its params and own axes, grid and zip applied): its shard, or
// its map shards and reduce; the stage's outputs among them go to `outs`.
void EmitConfig(ShardEmitter& emitter, const Plan& plan, size_t i, const KindConfig& kind,
                Json params, Json axes, int64_t seed, const std::vector<ShardId>& need_ids,
                const std::vector<const ShardPlan*>& from, std::vector<size_t>& outs) {
  const StageSpec& st = plan.spec.stages[i];
  const Json own_axes = axes;
  const bool reset = ResetInapplicable(kind, params, axes);
  for (const ShardPlan* o : from) {
    for (const auto& [k, v] : o->key.axes().items()) {
      if (!axes.contains(k)) {
        axes[k] = v;
      } else if (axes[k] != v) {
        axes[o->key.stage() + ":" + k] = v;
      }
    }
  }
  std::vector<ShardId> needs = need_ids;  // `from` is not read past here: emitting may move it
  if (auto cache = emitter.TokenCache(i, params)) needs.push_back(*cache);
  if (st.shards <= 1) {
    auto e =
        emitter.Emit(i, std::move(params), seed, needs, axes, ShardRole::kSingle, own_axes, reset);
    if (e.fresh) outs.push_back(e.index);
    return;
  }
  const bool reduce = kind.has_reduce;
  std::vector<ShardId> map_ids;
  for (int s = 0; s < st.shards; ++s) {
    Json p = params;
    p["shard_index"] = s;
    p["shard_count"] = st.shards;
    auto e = emitter.Emit(i, std::move(p), seed, needs, axes,
                          reduce ? ShardRole::kMap : ShardRole::kSingle, own_axes, reset);
    map_ids.push_back(plan.shards[e.index].key.id());
    if (!reduce && e.fresh) outs.push_back(e.index);
  }
  if (reduce) {
    Json p = std::move(params);
    p["role"] = "reduce";
    p["shard_count"] = st.shards;
    auto e =
        emitter.Emit(i, std::move(p), seed, map_ids, axes, ShardRole::kReduce, own_axes, reset);
    if (e.fresh) outs.push_back(e.index);
  }
}

}  // namespace

// The nested loops over needs × seeds × grid × zip read as the rules at the top of core/spec.h,
// in the same order; EmitConfig makes each configuration's shards.
Plan ExpandSpec(const SweepSpec& spec, const KindRegistry& kinds, size_t max_shards) {
  const Layout l = LayOut(spec, kinds, max_shards);
  auto own_seeds = [&](const StageSpec& st) -> std::vector<int64_t> {
    return st.seeds.empty() ? std::vector<int64_t>{0} : st.seeds;
  };
  auto inherits_seed = [&](size_t i) { return !spec.stages[i].seeds_given && !l.needs[i].empty(); };

  Plan plan;
  plan.spec = spec;
  plan.shards.reserve(l.total);
  ShardEmitter emitter(spec, l.kind, plan, kinds.Find(kTokensKind));
  std::vector<std::vector<size_t>> outs(spec.stages.size());  // indices into plan.shards
  for (size_t i : l.order) {
    const StageSpec& st = spec.stages[i];
    std::vector<size_t> need_radix, grid_radix;
    for (size_t j : l.needs[i]) need_radix.push_back(outs[j].size());
    for (const auto& a : st.grid) grid_radix.push_back(a.values.size());
    const size_t zip_rows = st.zip.empty() ? 1 : st.zip[0].values.size();

    ForEachCombination(need_radix, [&](const std::vector<size_t>& pick) {
      // Pointers into plan.shards, taken again before each config: a token cache emitted by
      // one config grows plan.shards past its reserve.
      std::vector<const ShardPlan*> from;
      const auto point = [&] {
        from.clear();
        for (size_t k = 0; k < pick.size(); ++k)
          from.push_back(&plan.shards[outs[l.needs[i][k]][pick[k]]]);
      };
      point();
      std::vector<ShardId> need_ids;
      for (const ShardPlan* p : from) need_ids.push_back(p->key.id());
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
            point();
            EmitConfig(emitter, plan, i, *l.kind[i], std::move(params), std::move(axes), seed,
                       need_ids, from, outs[i]);
          }
        });
      }
    });
  }
  if (!emitter.problems.empty()) throw SpecError(emitter.problems);
  if (emitter.tokens_emitted) {  // the implicit stage, after the spec's (core/spec.h)
    StageSpec tokens;
    tokens.name = emitter.tokens_stage;
    tokens.kind = kTokensKind;
    tokens.params = Json::object();
    tokens.resources = TokensResources();
    plan.spec.stages.push_back(std::move(tokens));
  }
  return plan;
}

}  // namespace seedgrid

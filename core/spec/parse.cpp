// The spec parser: the located tree (after overrides) -> a checked SweepSpec, every problem
// reported at once.
#include <algorithm>
#include <cerrno>
#include <climits>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <functional>
#include <map>
#include <set>
#include <sstream>

#include <fmt/format.h>

#include "core/spec.h"
#include "core/spec/overrides.h"
#include "core/spec/params.h"
#include "core/spec/report_section.h"
#include "core/spec/text.h"
#include "core/spec/yaml_tree.h"

namespace seedgrid {

using namespace spec_detail;

namespace {

std::vector<std::string> KeysOf(const Json& object) {
  std::vector<std::string> keys;
  for (const auto& [k, v] : object.items()) keys.push_back(k);
  return keys;
}

bool IsValidName(std::string_view s) {
  return AllOf(s, "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789_.-") &&
         s[0] != '.' && s[0] != '-';
}

const std::vector<std::string> kTopKeys = {"name", "out", "stages", "report"};
const std::vector<std::string> kStageKeys = {"kind", "params", "seeds",  "grid",
                                             "zip",  "needs",  "shards", "resources"};
const std::vector<std::string> kResourceKeys = {"timeout", "grace",     "ranks",       "gpus",
                                                "memory",  "isolation", "max_attempts"};

struct StageAux {
  Loc loc;
  Loc name_loc;
  std::vector<Loc> need_locs;
};

class Parser {
 public:
  Parser(Problems& p, const KindRegistry& kinds, std::string_view file)
      : p_(p), kinds_(kinds), file_(file) {}

  void Run(const Node& root, SweepSpec& spec) {
    const Node* stages = root.Get("stages");
    const bool shorthand = stages == nullptr;
    for (const auto& e : root.map) {
      if (std::count(kTopKeys.begin(), kTopKeys.end(), e.key)) continue;
      if (std::count(kStageKeys.begin(), kStageKeys.end(), e.key)) {
        if (!shorthand) {
          p_.Add(e.key_loc, fmt::format("'{}' at the top level is the single-stage shorthand; with "
                                        "'stages', put it inside a stage",
                                        e.key));
        }
        continue;
      }
      std::vector<std::string> accepted = kTopKeys;
      accepted.insert(accepted.end(), kStageKeys.begin(), kStageKeys.end());
      UnknownKey(e, "top-level ", accepted);
    }

    if (const Node* n = root.Get("name")) {
      if (auto s = Text(*n, "name")) {
        if (IsValidName(*s)) {
          spec.name = *s;
        } else {
          p_.Add(n->loc, fmt::format("name '{}': use letters, digits, '_', '-' and '.' only", *s));
        }
      }
    } else {
      std::string stem = std::filesystem::path(file_).stem().string();
      spec.name = IsValidName(stem) ? stem : "sweep";
    }
    if (const Node* n = root.Get("out")) {
      if (auto s = Text(*n, "out")) spec.out = *s;
    }
    std::vector<ReportStageRef> report_refs;
    if (const Node* n = root.Get("report")) ParseReportSection(*n, spec.report, report_refs, p_);

    std::vector<StageAux> aux;
    if (shorthand) {
      if (!root.Get("kind")) {
        p_.Add(root.loc,
               "no stages: give a 'stages' list, or a top-level 'kind' for a single-stage "
               "sweep");
      } else {
        ParseStage(root, true, root.Get("name") ? spec.name : "main", spec, aux);
      }
    } else if (!stages->Is(Node::Type::kSeq) || stages->seq.empty()) {
      p_.Add(stages->loc, "stages: expected a non-empty list of stages, got " +
                              (stages->Is(Node::Type::kSeq) ? "an empty list" : Describe(*stages)));
    } else {
      for (const auto& s : stages->seq) {
        if (!s.Is(Node::Type::kMap)) {
          p_.Add(s.loc, "a stage must be a map (name, kind, params, ...), got " + Describe(s));
          continue;
        }
        ParseStage(s, false, "", spec, aux);
      }
    }
    CheckNeeds(spec, aux);
    CheckReportStages(report_refs, spec, kinds_, p_);
  }

 private:
  // `what`: "top-level " or "stage 'a': " or "stage 'a': resources: ".
  void UnknownKey(const Entry& e, std::string_view what, const std::vector<std::string>& accepted) {
    p_.Add(e.key_loc, fmt::format("{}unknown key '{}'{} (accepted: {})", what, e.key,
                                  Suggest(e.key, accepted), Join(accepted)));
  }

  std::optional<std::string> Text(const Node& n, std::string_view what) {
    if (n.Is(Node::Type::kScalar) && !n.text.empty()) return n.text;
    p_.Add(n.loc, fmt::format("{}: expected a string, got {}", what, Describe(n)));
    return std::nullopt;
  }

  std::optional<int64_t> Int(const Node& n, std::string_view what, int64_t lo, int64_t hi) {
    auto v = Resolve(n, &p_);
    if (!v) return std::nullopt;
    if (v->is_number_integer() && v->get<int64_t>() >= lo && v->get<int64_t>() <= hi) {
      return v->get<int64_t>();
    }
    p_.Add(n.loc,
           fmt::format("{}: expected an integer in [{}, {}], got {}", what, lo, hi, Describe(n)));
    return std::nullopt;
  }

  // Checks a spec value against the kind's default at `path`. Returns the normalised value (for a
  // map: only the keys given, a patch to merge over the default), nullopt after a problem.
  // `open`: keys the default does not list are accepted as they are (KindConfig::open_params,
  // at the top level only).
  std::optional<Json> CheckParam(const Json& def, const Node& n, const std::string& path,
                                 bool open = false) {
    if (def.is_null()) return ToJson(n, p_);
    if (def.is_object()) {
      if (!n.Is(Node::Type::kMap)) {
        p_.Add(n.loc, fmt::format("{}: expected a map, got {}", path, Describe(n)));
        return std::nullopt;
      }
      Json patch = Json::object();
      for (const auto& e : n.map) {
        auto it = def.find(e.key);
        if (it == def.end() && open) {
          if (auto v = ToJson(e.value, p_)) patch[e.key] = std::move(*v);
          continue;
        }
        if (it == def.end()) {
          auto keys = KeysOf(def);
          p_.Add(e.key_loc, fmt::format("{}.{}: unknown param{} (accepted: {})", path, e.key,
                                        Suggest(e.key, keys), keys.empty() ? "none" : Join(keys)));
          continue;
        }
        if (auto v = CheckParam(*it, e.value, path + "." + e.key)) patch[e.key] = std::move(*v);
      }
      return patch;
    }
    auto v = ToJson(n, p_);
    if (!v) return std::nullopt;
    if (def.is_number_float() && v->is_number()) return Json(v->get<double>());
    if (def.is_number_integer() ? v->is_number_integer() : def.type() == v->type()) return v;
    bool quote = def.is_string() && n.Is(Node::Type::kScalar);
    p_.Add(n.loc, fmt::format("{}: expected {}, got {}{}", path, TypeName(def), Show(*v),
                              quote ? " (quote it to pass a string)" : ""));
    return std::nullopt;
  }

  // The kind's default at a dotted axis key; nullptr after a problem.
  const Json* DefaultAt(const KindConfig& kind, const std::string& key, const Loc& loc,
                        std::string_view what) {
    const Json* cur = &kind.defaults;
    std::string under;
    for (const auto& seg : Split(key, '.')) {
      if (cur->is_null()) return cur;  // a free-form param: anything below it goes
      if (!cur->is_object()) {
        p_.Add(loc, fmt::format("{} '{}': param '{}' is {}, it has no '{}'", what, key, under,
                                TypeName(*cur), seg));
        return nullptr;
      }
      auto it = cur->find(seg);
      if (!seg.empty() && it == cur->end() && kind.open_params && cur == &kind.defaults) {
        static const Json kAny;  // an open kind's own param: anything goes
        return &kAny;
      }
      if (seg.empty() || it == cur->end()) {
        auto keys = KeysOf(*cur);
        p_.Add(loc, fmt::format("{} '{}': unknown param{} (accepted{}: {})", what, key,
                                Suggest(seg, keys), under.empty() ? "" : " under '" + under + "'",
                                keys.empty() ? "none" : Join(keys)));
        return nullptr;
      }
      under += (under.empty() ? "" : ".") + seg;
      cur = &*it;
    }
    return cur;
  }

  // grid or zip. `value_locs` gets each value's location (for validate problems).
  std::vector<Axis> ParseAxes(const Node* n, std::string_view what, const std::string& who,
                              const KindConfig* kind, std::vector<std::vector<Loc>>& value_locs) {
    std::vector<Axis> axes;
    if (!n || n->Is(Node::Type::kNull)) return axes;
    if (!n->Is(Node::Type::kMap)) {
      p_.Add(n->loc, fmt::format("{}: {}: expected a map of param path -> list of values, got {}",
                                 who, what, Describe(*n)));
      return axes;
    }
    for (const auto& e : n->map) {
      const std::string label = fmt::format("{}: {}", who, what);
      if (!e.value.Is(Node::Type::kSeq)) {
        p_.Add(e.value.loc, fmt::format("{} '{}': expected a list of values, got {}", label, e.key,
                                        Describe(e.value)));
        continue;
      }
      if (e.value.seq.empty()) {
        p_.Add(e.value.loc,
               fmt::format("{} '{}': empty axis (give at least one value)", label, e.key));
        continue;
      }
      const Json* def = kind ? DefaultAt(*kind, e.key, e.key_loc, label) : nullptr;
      if (kind && !def) continue;
      Axis axis{e.key, {}, e.key_loc.line};
      std::vector<Loc> locs;
      std::set<std::string> distinct;
      bool ok = true;
      for (size_t i = 0; i < e.value.seq.size(); ++i) {
        const Node& v = e.value.seq[i];
        auto j =
            def ? CheckParam(*def, v, fmt::format("{} '{}'[{}]", label, e.key, i)) : ToJson(v, p_);
        if (!j) {
          ok = false;
          continue;
        }
        if (!distinct.insert(j->dump()).second) {
          p_.Add(v.loc, fmt::format("{} '{}': value {} appears twice", label, e.key, j->dump()));
          ok = false;
          continue;
        }
        axis.values.push_back(std::move(*j));
        locs.push_back(v.loc);
      }
      if (!ok) continue;
      axes.push_back(std::move(axis));
      value_locs.push_back(std::move(locs));
    }
    return axes;
  }

  void ParseSeeds(const Node& n, const std::string& who, StageSpec& st) {
    constexpr int64_t kMax = static_cast<int64_t>(kDefaultMaxShards);
    const std::string what = who + ": seeds";
    st.seeds_given = true;
    st.seeds.clear();
    if (n.Is(Node::Type::kScalar)) {
      if (auto c = Int(n, what + " (a count n means 0..n-1)", 1, kMax)) {
        for (int64_t s = 0; s < *c; ++s) st.seeds.push_back(s);
      }
    } else if (n.Is(Node::Type::kSeq)) {
      if (n.seq.empty()) p_.Add(n.loc, what + ": empty list (give at least one seed)");
      for (const auto& e : n.seq) {
        auto s = Int(e, what, 0, INT64_MAX);
        if (!s) continue;
        if (std::count(st.seeds.begin(), st.seeds.end(), *s)) {
          p_.Add(e.loc, fmt::format("{}: seed {} appears twice", what, *s));
        } else {
          st.seeds.push_back(*s);
        }
      }
    } else if (n.Is(Node::Type::kMap)) {
      for (const auto& e : n.map) {
        if (e.key != "from" && e.key != "to") UnknownKey(e, what + ": ", {"from", "to"});
      }
      const Node* from = n.Get("from");
      const Node* to = n.Get("to");
      if (!from || !to) {
        p_.Add(n.loc, what + ": a range needs both 'from' and 'to' (inclusive)");
        return;
      }
      auto a = Int(*from, what + ".from", 0, INT64_MAX);
      auto b = Int(*to, what + ".to", 0, INT64_MAX);
      if (!a || !b) return;
      if (*b < *a) {
        p_.Add(to->loc, fmt::format("{}: 'to' ({}) is below 'from' ({})", what, *b, *a));
      } else if (*b - *a >= kMax) {
        p_.Add(n.loc, fmt::format("{}: {}..{} is more than {} seeds", what, *a, *b, kMax));
      } else {
        for (int64_t s = *a; s <= *b; ++s) st.seeds.push_back(s);
      }
    } else {
      p_.Add(n.loc, what +
                        ": expected a list of integers, a count n (seeds 0..n-1) or "
                        "{from: a, to: b}, got null");
    }
  }

  void ParseResources(const Node& n, const std::string& who, const KindConfig* kind, Resources& r) {
    if (n.Is(Node::Type::kNull)) return;
    if (!n.Is(Node::Type::kMap)) {
      p_.Add(n.loc, fmt::format("{}: resources: expected a map, got {}", who, Describe(n)));
      return;
    }
    const std::string what = who + ": resources";
    for (const auto& e : n.map) {
      const Node& v = e.value;
      const std::string label = what + "." + e.key;
      if (e.key == "timeout" || e.key == "memory" || e.key == "grace") {
        auto j = Resolve(v, &p_);
        if (!j) continue;
        const bool timeout = e.key != "memory";  // a duration (timeout, grace)
        double& secs = e.key == "grace" ? r.grace_s : r.timeout_s;
        try {
          if (j->is_number()) {
            if (j->get<double>() < 0) throw std::invalid_argument("negative");
            if (timeout) {
              secs = j->get<double>();
            } else {
              r.memory_mb = ParseMemoryMb(j->dump());
            }
          } else if (j->is_string()) {
            if (timeout) {
              secs = ParseDuration(j->get<std::string>());
            } else {
              r.memory_mb = ParseMemoryMb(j->get<std::string>());
            }
          } else {
            throw std::invalid_argument("type");
          }
        } catch (const std::invalid_argument&) {
          p_.Add(v.loc, fmt::format("{}: expected {}, got {}", label,
                                    timeout ? "seconds or a duration like 90s, 10m, 1h30m, 500ms"
                                            : "MiB or a size like 512M, 2G, 1.5G",
                                    Describe(v)));
        }
      } else if (e.key == "max_attempts") {
        if (auto i = Int(v, label, 1, 1000)) r.max_attempts = static_cast<int>(*i);
      } else if (e.key == "ranks") {
        auto i = Int(v, label, 1, 1 << 20);
        if (!i) continue;
        r.ranks = static_cast<int>(*i);
        if (r.ranks > 1 && kind && !kind->supports_gang) {
          std::vector<std::string> gang;
          for (const auto& name : kinds_.Names()) {
            if (kinds_.Find(name)->supports_gang) gang.push_back(name);
          }
          p_.Add(v.loc,
                 fmt::format("{}: {} ranks, but kind '{}' does not run as a gang (gang "
                             "kinds: {})",
                             label, r.ranks, kind->name, gang.empty() ? "none" : Join(gang)));
        }
      } else if (e.key == "gpus") {
        if (auto i = Int(v, label, 0, 1024)) r.gpus = static_cast<int>(*i);
      } else if (e.key == "isolation") {
        auto s = Text(v, label);
        if (s == "executor" || s == "inline") {
          r.isolation = *s == "inline" ? Isolation::kInline : Isolation::kExecutor;
        } else if (s) {
          p_.Add(v.loc, fmt::format("{}: '{}' is not an isolation (accepted: executor, inline)",
                                    label, *s));
        }
      } else {
        UnknownKey(e, what + ": ", kResourceKeys);
      }
    }
  }

  void CollectLocs(const Node& n, const std::string& prefix, std::map<std::string, Loc>& out) {
    for (const auto& e : n.map) {
      std::string path = prefix.empty() ? e.key : prefix + "." + e.key;
      out[path] = e.key_loc;
      CollectLocs(e.value, path, out);
    }
  }

  void RunValidate(const KindConfig& kind, StageSpec& st, const std::string& who,
                   const Node* params, const Loc& stage_loc,
                   const std::vector<std::vector<Loc>>& grid_locs,
                   const std::vector<std::vector<Loc>>& zip_locs) {
    auto run = [&](const Json& params) -> std::vector<std::string> {
      try {
        return kind.validate(params);
      } catch (const std::exception& e) {
        return {fmt::format("validation of kind '{}' failed: {}", kind.name, e.what())};
      }
    };
    std::map<std::string, Loc> locs;
    if (params) CollectLocs(*params, "", locs);
    std::set<std::string> seen;
    auto report = [&](const std::vector<std::string>& problems, const Loc* at, std::string ctx) {
      for (const auto& problem : problems) {
        if (!seen.insert(problem).second) continue;
        // "dotted.key: message": point at the nearest key the spec wrote.
        size_t colon = problem.find(": ");
        std::string key = problem.substr(0, colon == std::string::npos ? 0 : colon);
        const bool keyed = !key.empty() && key.find(' ') == std::string::npos;
        Loc loc = at ? *at : params ? params->loc : stage_loc;
        while (!at && keyed) {
          if (auto it = locs.find(key); it != locs.end()) {
            loc = it->second;
            break;
          }
          size_t dot = key.rfind('.');
          if (dot == std::string::npos) break;
          key.resize(dot);
        }
        p_.Add(loc, fmt::format("{}: {}{}{}", who, ctx, keyed ? "params." : "", problem));
      }
    };
    report(run(st.params), nullptr, "");
    for (size_t a = 0; a < st.grid.size(); ++a) {
      for (size_t i = 0; i < st.grid[a].values.size(); ++i) {
        Json q = st.params;
        if (!ApplyAxis(q, st.grid[a].key, st.grid[a].values[i])) continue;
        report(run(q), &grid_locs[a][i],
               fmt::format("with grid {} = {}: ", st.grid[a].key, st.grid[a].values[i].dump()));
      }
    }
    if (st.zip.empty()) return;
    for (size_t i = 0; i < st.zip[0].values.size(); ++i) {
      Json q = st.params;
      bool ok = true;
      for (const auto& axis : st.zip) {
        ok = ok && i < axis.values.size() && ApplyAxis(q, axis.key, axis.values[i]);
      }
      if (ok) report(run(q), &zip_locs[0][i], fmt::format("with zip row {}: ", i));
    }
  }

  // The kind's resolve hook (KindConfig::resolve), its problems located like validate's.
  void RunResolve(const KindConfig& kind, StageSpec& st, const std::string& who, const Node* params,
                  const Loc& stage_loc) {
    KindConfig::StageContext ctx;
    std::error_code ec;
    std::filesystem::path dir = std::filesystem::path(file_).parent_path();
    dir = std::filesystem::absolute(dir.empty() ? "." : dir, ec).lexically_normal();
    ctx.spec_dir = dir.string();
    ctx.needs = st.needs;
    for (const auto& a : st.grid) ctx.axis_keys.push_back(a.key);
    for (const auto& a : st.zip) ctx.axis_keys.push_back(a.key);
    std::vector<std::string> problems;
    try {
      problems = kind.resolve(st.params, ctx);
    } catch (const std::exception& e) {
      problems = {fmt::format("resolving params of kind '{}' failed: {}", kind.name, e.what())};
    }
    std::map<std::string, Loc> locs;
    if (params) CollectLocs(*params, "", locs);
    for (const auto& problem : problems) {
      std::string key = problem.substr(0, problem.find(": "));
      Loc loc = params ? params->loc : stage_loc;
      for (;;) {  // the nearest key the spec wrote: "argv[2]" -> "argv"
        if (auto it = locs.find(key); it != locs.end()) {
          loc = it->second;
          break;
        }
        size_t cut = key.find_last_of(".[");
        if (cut == std::string::npos) break;
        key.resize(cut);
      }
      p_.Add(loc, fmt::format("{}: params.{}", who, problem));
    }
  }

  // The stage's name (the shorthand's is given) and its unknown keys; returns how problems name
  // the stage ("stage 'a'", "stage #2").
  std::string StageName(const Node& m, bool shorthand, const std::string& shorthand_name,
                        size_t index, StageSpec& st, StageAux& ax) {
    std::string who;
    if (shorthand) {
      st.name = shorthand_name;
      who = fmt::format("stage '{}'", st.name.empty() ? "main" : st.name);
    } else {
      const Node* name = m.Get("name");
      if (!name) {
        p_.Add(m.loc, fmt::format("stage #{}: missing 'name'", index + 1));
      } else if (auto s = Text(*name, "stage name")) {
        ax.name_loc = name->loc;
        if (IsValidName(*s)) {
          st.name = *s;
        } else {
          p_.Add(name->loc, fmt::format("stage name '{}': use letters, digits, '_', '-' and '.' "
                                        "only",
                                        *s));
        }
      }
      who = st.name.empty() ? fmt::format("stage #{}", index + 1)
                            : fmt::format("stage '{}'", st.name);
      std::vector<std::string> accepted = {"name"};
      accepted.insert(accepted.end(), kStageKeys.begin(), kStageKeys.end());
      for (const auto& e : m.map) {
        if (!std::count(accepted.begin(), accepted.end(), e.key)) {
          UnknownKey(e, who + ": ", accepted);
        }
      }
    }
    return who;
  }

  // The stage's kind and params (merged over the kind's defaults). `params`: the spec's params
  // map, nullptr when absent or not a map. Returns nullptr when the kind is missing or unknown.
  const KindConfig* ParseKindAndParams(const Node& m, const std::string& who, StageSpec& st,
                                       const Node*& params) {
    const KindConfig* kind = nullptr;
    if (const Node* k = m.Get("kind")) {
      if (auto s = Text(*k, who + ": kind")) {
        st.kind = *s;
        kind = kinds_.Find(*s);
        if (!kind) {
          p_.Add(k->loc,
                 fmt::format("{}: unknown kind '{}' (kinds: {})", who, *s, Join(kinds_.Names())));
        }
      }
    } else {
      p_.Add(m.loc, fmt::format("{}: missing 'kind' (kinds: {})", who, Join(kinds_.Names())));
    }

    params = m.Get("params");
    if (params && params->Is(Node::Type::kNull)) params = nullptr;
    if (params && !params->Is(Node::Type::kMap)) {
      p_.Add(params->loc,
             fmt::format("{}: params: expected a map, got {}", who, Describe(*params)));
      params = nullptr;
    }
    if (kind) {
      st.params = kind->defaults;
      if (params) {
        if (auto patch = CheckParam(kind->defaults, *params, who + ": params", kind->open_params))
          DeepMerge(st.params, *patch);
      }
    }
    return kind;
  }

  // grid and zip, checked: zip lengths agree, no two axes vary one param, every axis lands in
  // a map. `grid_locs`, `zip_locs`: each value's location (for the kind's validate problems).
  void ParseStageAxes(const Node& m, const std::string& who, const KindConfig* kind, StageSpec& st,
                      std::vector<std::vector<Loc>>& grid_locs,
                      std::vector<std::vector<Loc>>& zip_locs) {
    st.grid = ParseAxes(m.Get("grid"), "grid", who, kind, grid_locs);
    st.zip = ParseAxes(m.Get("zip"), "zip", who, kind, zip_locs);
    if (st.zip.size() > 1) {
      bool same = std::all_of(st.zip.begin(), st.zip.end(), [&](const Axis& a) {
        return a.values.size() == st.zip[0].values.size();
      });
      if (!same) {
        std::vector<std::string> lengths;
        for (const auto& a : st.zip)
          lengths.push_back(fmt::format("{} has {}", a.key, a.values.size()));
        p_.Add(m.GetEntry("zip")->key_loc,
               fmt::format("{}: zip lists differ in length ({}); zip pairs them "
                           "element by element",
                           who, Join(lengths)));
      }
    }
    std::vector<const Axis*> all;
    for (const auto& a : st.grid) all.push_back(&a);
    for (const auto& a : st.zip) all.push_back(&a);
    for (size_t i = 0; i < all.size(); ++i) {
      for (size_t j = 0; j < i; ++j) {
        const std::string& x = all[j]->key;
        const std::string& y = all[i]->key;
        bool overlap = x == y || y.rfind(x + ".", 0) == 0 || x.rfind(y + ".", 0) == 0;
        if (overlap) {
          p_.Add(Loc{all[i]->line}, fmt::format("{}: axis '{}' overlaps axis '{}' (line {}): each "
                                                "param may be varied by one axis only",
                                                who, y, x, all[j]->line));
        }
      }
      Json probe = st.params;
      if (kind && !ApplyAxis(probe, all[i]->key, all[i]->values[0])) {
        p_.Add(Loc{all[i]->line},
               fmt::format("{}: axis '{}' crosses a param that is not a map", who, all[i]->key));
      }
    }
  }

  // An override of a param that an axis of the stage sets would be silently replaced in every
  // shard: a problem that names the axis and the override that would do what was meant.
  void CheckOverriddenAxes(const Node& m, const std::string& who, bool shorthand,
                           const StageSpec& st) {
    const Node* params = m.Get("params");
    auto check = [&](const Axis& a, std::string_view what) {
      const Node* cur = params;
      for (const auto& seg : Split(a.key, '.')) {
        cur = cur && cur->Is(Node::Type::kMap) ? cur->Get(seg) : nullptr;
      }
      if (!cur || cur->loc.override_idx < 0 || cur->Is(Node::Type::kMap)) return;
      const std::string value = cur->Is(Node::Type::kScalar) ? "[" + cur->text + "]" : "[...]";
      std::vector<std::string> shown;
      for (const auto& v : a.values) shown.push_back(v.dump());
      p_.Add(cur->loc,
             fmt::format("{}: param '{}' is a {} axis of the stage (line {}: {}), which sets it in "
                         "every shard; override the axis instead: {}{}.{}={}",
                         who, a.key, what, a.line, Join(shown),
                         shorthand ? "" : "stages." + st.name + ".", what, a.key, value));
    };
    for (const auto& a : st.grid) check(a, "grid");
    for (const auto& a : st.zip) check(a, "zip");
  }

  void ParseNeeds(const Node& m, const std::string& who, StageSpec& st, StageAux& ax) {
    if (const Node* n = m.Get("needs")) {
      auto add = [&](const Node& e) {
        if (auto s = Text(e, who + ": needs")) {
          if (std::count(st.needs.begin(), st.needs.end(), *s)) {
            p_.Add(e.loc, fmt::format("{}: needs '{}' twice", who, *s));
          } else {
            st.needs.push_back(*s);
            ax.need_locs.push_back(e.loc);
          }
        }
      };
      if (n->Is(Node::Type::kSeq)) {
        for (const auto& e : n->seq) add(e);
      } else if (n->Is(Node::Type::kScalar)) {
        add(*n);
      } else if (!n->Is(Node::Type::kNull)) {
        p_.Add(n->loc, fmt::format("{}: needs: expected a stage name or a list of them, got {}",
                                   who, Describe(*n)));
      }
    }
  }

  void ParseStage(const Node& m, bool shorthand, const std::string& shorthand_name, SweepSpec& spec,
                  std::vector<StageAux>& aux) {
    StageSpec st;
    StageAux ax;
    ax.loc = m.loc;
    ax.name_loc = m.loc;
    st.line = m.loc.line;
    const std::string who = StageName(m, shorthand, shorthand_name, spec.stages.size(), st, ax);

    const Node* params = nullptr;
    const KindConfig* kind = ParseKindAndParams(m, who, st, params);

    if (const Node* s = m.Get("seeds")) ParseSeeds(*s, who, st);
    if (!st.seeds_given) st.seeds = {0};

    std::vector<std::vector<Loc>> grid_locs, zip_locs;
    ParseStageAxes(m, who, kind, st, grid_locs, zip_locs);
    CheckOverriddenAxes(m, who, shorthand, st);

    ParseNeeds(m, who, st, ax);

    if (const Node* n = m.Get("shards")) {
      if (auto s = Int(*n, who + ": shards", 1, static_cast<int64_t>(kDefaultMaxShards))) {
        st.shards = static_cast<int>(*s);
      }
    }
    if (const Node* n = m.Get("resources")) ParseResources(*n, who, kind, st.resources);

    if (kind && kind->validate) RunValidate(*kind, st, who, params, m.loc, grid_locs, zip_locs);
    if (kind && kind->resolve) RunResolve(*kind, st, who, params, m.loc);

    spec.stages.push_back(std::move(st));
    aux.push_back(std::move(ax));
  }

  void CheckNeeds(const SweepSpec& spec, const std::vector<StageAux>& aux) {
    std::map<std::string, size_t> index;
    std::vector<std::string> names;
    for (size_t i = 0; i < spec.stages.size(); ++i) {
      const std::string& name = spec.stages[i].name;
      if (name.empty()) continue;
      auto [it, fresh] = index.emplace(name, i);
      if (fresh) {
        names.push_back(name);
      } else {
        p_.Add(aux[i].name_loc, fmt::format("duplicate stage name '{}' (first at line {})", name,
                                            aux[it->second].name_loc.line));
      }
    }
    std::vector<std::vector<std::pair<size_t, Loc>>> edges(spec.stages.size());
    for (size_t i = 0; i < spec.stages.size(); ++i) {
      const StageSpec& st = spec.stages[i];
      for (size_t k = 0; k < st.needs.size() && !st.name.empty(); ++k) {
        const std::string& need = st.needs[k];
        auto it = index.find(need);
        if (need == st.name) {
          p_.Add(aux[i].need_locs[k], fmt::format("stage '{}' needs itself", st.name));
        } else if (it == index.end()) {
          p_.Add(aux[i].need_locs[k], fmt::format("stage '{}' needs '{}', which is not a stage "
                                                  "(stages: {})",
                                                  st.name, need, Join(names)));
        } else if (index.at(st.name) == i) {
          edges[i].push_back({it->second, aux[i].need_locs[k]});
        }
      }
    }
    // Depth-first search; every back edge closes a cycle.
    std::vector<int> color(spec.stages.size(), 0);
    std::vector<size_t> path;
    std::function<void(size_t)> visit = [&](size_t u) {
      color[u] = 1;
      path.push_back(u);
      for (const auto& [v, loc] : edges[u]) {
        if (color[v] == 1) {
          std::vector<std::string> cycle;
          auto from = std::find(path.begin(), path.end(), v);
          for (auto it = from; it != path.end(); ++it) cycle.push_back(spec.stages[*it].name);
          cycle.push_back(spec.stages[v].name);
          p_.Add(loc, fmt::format("stage '{}': needs form a cycle: {} (a -> b: a needs b)",
                                  spec.stages[u].name, Join(cycle, " -> ")));
        } else if (color[v] == 0) {
          visit(v);
        }
      }
      path.pop_back();
      color[u] = 2;
    };
    for (size_t i = 0; i < spec.stages.size(); ++i) {
      if (color[i] == 0) visit(i);
    }
  }

  Problems& p_;
  const KindRegistry& kinds_;
  std::string file_;
};

}  // namespace

const StageSpec* SweepSpec::FindStage(std::string_view stage_name) const {
  for (const auto& s : stages) {
    if (s.name == stage_name) return &s;
  }
  return nullptr;
}

SweepSpec ParseSpec(std::string_view yaml_text, std::string_view file_name,
                    const std::vector<std::string>& overrides, const KindRegistry& kinds) {
  SweepSpec spec;
  spec.source_path = file_name;
  spec.source_text = yaml_text;
  spec.overrides = overrides;
  Problems p(spec.source_path, spec.overrides);
  auto parsed = LoadTree(spec.source_text, std::nullopt, p);
  if (!parsed) p.Throw();
  Node root = std::move(*parsed);
  if (root.Is(Node::Type::kNull)) {
    root.type = Node::Type::kMap;
    root.loc.line = 1;
  }
  if (!root.Is(Node::Type::kMap)) {
    p.Add(root.loc, "a spec is a map (name, out, stages, report), got " + Describe(root));
    p.Throw();
  }
  for (size_t i = 0; i < overrides.size(); ++i) {
    ApplyOverride(root, overrides[i], static_cast<int>(i), p);
  }
  Parser(p, kinds, file_name).Run(root, spec);
  if (!p.empty()) p.Throw();
  return spec;
}

SweepSpec LoadSpec(const std::string& path, const std::vector<std::string>& overrides,
                   const KindRegistry& kinds) {
  std::ifstream in(path, std::ios::binary);
  if (!in)
    throw SpecError({fmt::format("{}: cannot read the spec: {}", path, std::strerror(errno))});
  std::stringstream text;
  text << in.rdbuf();
  return ParseSpec(text.str(), path, overrides, kinds);
}

}  // namespace seedgrid

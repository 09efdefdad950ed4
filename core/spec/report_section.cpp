#include "core/spec/report_section.h"

#include <algorithm>
#include <functional>
#include <optional>

#include <fmt/format.h>

#include "core/spec/text.h"

namespace seedgrid {
namespace spec_detail {
namespace {

const std::vector<std::string> kSectionKeys = {"tables",      "figures", "formats",
                                               "uncertainty", "ranking", "paired"};
const std::vector<std::string> kTableKeys = {"stage", "metrics", "group_by"};
const std::vector<std::string> kFigureKeys = {"type", "stage"};
const std::vector<std::string> kPlotKeys = {"type",  "stage",  "x",      "y",    "group_by",
                                            "title", "xlabel", "ylabel", "front"};
const std::vector<std::string> kRankingKeys = {"stage", "metric", "best", "group_by"};
const std::vector<std::string> kPairedKeys = {"stage", "metric", "a", "b"};

template <size_t N>
std::vector<std::string> Names(const std::array<std::string_view, N>& a) {
  return {a.begin(), a.end()};
}

class ReportParser {
 public:
  ReportParser(std::vector<ReportStageRef>& refs, Problems& p) : refs_(refs), p_(p) {}

  void Run(const Node& n, ReportSpec& out) {
    if (n.Is(Node::Type::kNull)) return;
    if (!n.Is(Node::Type::kMap)) {
      p_.Add(n.loc, "report: expected a map (" + Join(kSectionKeys) + "), got " + Describe(n));
      return;
    }
    for (const auto& e : n.map) {
      if (e.key == "tables") {
        Tables(e.value, out);
      } else if (e.key == "figures") {
        Figures(e.value, out);
      } else if (e.key == "formats") {
        Formats(e.value, out);
      } else if (e.key == "uncertainty") {
        Uncertainty(e.value, out);
      } else if (e.key == "ranking") {
        ForEachMap(e.value, "report: ranking", "{metric, stage, best, group_by}",
                   [&](const Node& m, const std::string& what) { Ranking(m, what, out); });
      } else if (e.key == "paired") {
        ForEachMap(e.value, "report: paired", "{a, b, metric, stage}",
                   [&](const Node& m, const std::string& what) { Paired(m, what, out); });
      } else {
        UnknownKey(e, "report: ", kSectionKeys);
      }
    }
  }

 private:
  void UnknownKey(const Entry& e, std::string_view what, const std::vector<std::string>& accepted) {
    p_.Add(e.key_loc, fmt::format("{}unknown key '{}'{} (accepted: {})", what, e.key,
                                  Suggest(e.key, accepted), Join(accepted)));
  }

  std::optional<std::string> Text(const Node& n, const std::string& what) {
    if (n.Is(Node::Type::kScalar) && !n.text.empty()) return n.text;
    p_.Add(n.loc, fmt::format("{}: expected a string, got {}", what, Describe(n)));
    return std::nullopt;
  }

  // A string or a list of strings (null: none). `locs` gets each string's location.
  std::vector<std::string> Strings(const Node& n, const std::string& what,
                                   std::vector<Loc>* locs = nullptr) {
    std::vector<std::string> out;
    auto add = [&](const Node& e, const std::string& label) {
      if (auto s = Text(e, label)) {
        out.push_back(std::move(*s));
        if (locs) locs->push_back(e.loc);
      }
    };
    if (n.Is(Node::Type::kScalar)) {
      add(n, what);
    } else if (n.Is(Node::Type::kSeq)) {
      for (size_t i = 0; i < n.seq.size(); ++i) add(n.seq[i], fmt::format("{}[{}]", what, i));
    } else if (!n.Is(Node::Type::kNull)) {
      p_.Add(n.loc,
             fmt::format("{}: expected a string or a list of strings, got {}", what, Describe(n)));
    }
    return out;
  }

  void Stage(const Node& n, const std::string& what, std::string& stage) {
    if (auto s = Text(n, what)) {
      stage = *s;
      refs_.push_back({what, *s, "", n.loc});
    }
  }

  void Tables(const Node& n, ReportSpec& out) {
    if (n.Is(Node::Type::kNull)) return;
    if (!n.Is(Node::Type::kSeq)) {
      p_.Add(n.loc,
             "report: tables: expected a list of {stage, metrics, group_by}, got " + Describe(n));
      return;
    }
    for (size_t i = 0; i < n.seq.size(); ++i) {
      const Node& t = n.seq[i];
      const std::string what = fmt::format("report: tables[{}]", i);
      if (!t.Is(Node::Type::kMap)) {
        p_.Add(t.loc, fmt::format("{}: expected a map {{stage, metrics, group_by}}, got {}", what,
                                  Describe(t)));
        continue;
      }
      ReportTableSpec table;
      for (const auto& e : t.map) {
        if (e.key == "stage") {
          Stage(e.value, what + ".stage", table.stage);
        } else if (e.key == "metrics") {
          table.metrics = Strings(e.value, what + ".metrics");
        } else if (e.key == "group_by") {
          table.group_by = Strings(e.value, what + ".group_by");
        } else {
          UnknownKey(e, what + ": ", kTableKeys);
        }
      }
      if (!t.Get("stage")) p_.Add(t.loc, what + ": missing 'stage'");
      out.tables.push_back(std::move(table));
    }
  }

  void Figures(const Node& n, ReportSpec& out) {
    if (n.Is(Node::Type::kNull)) return;
    if (!n.Is(Node::Type::kSeq)) {
      p_.Add(n.loc, "report: figures: expected a list of figure types or {type, stage, ...}, got " +
                        Describe(n));
      return;
    }
    out.figures.emplace();
    for (size_t i = 0; i < n.seq.size(); ++i) {
      const Node& f = n.seq[i];
      const std::string what = fmt::format("report: figures[{}]", i);
      ReportFigureSpec figure;
      figure.line = f.loc.line;
      Loc type_loc = f.loc;
      if (f.Is(Node::Type::kScalar)) {
        if (auto s = Text(f, what)) figure.type = *s;
      } else if (f.Is(Node::Type::kMap)) {
        if (const Node* t = f.Get("type")) {
          if (auto s = Text(*t, what + ".type")) figure.type = *s;
          type_loc = t->loc;
        } else {
          p_.Add(f.loc, what + ": missing 'type'");
        }
        ReportStageRef ref{what, "", figure.type, type_loc, {}};
        if (IsPlot(figure.type)) {
          Plot(f, what, figure, ref);
        } else {
          for (const auto& e : f.map) {
            if (e.key == "type") continue;
            if (e.key == "stage") {
              Stage(e.value, what + ".stage", figure.stage);
            } else if (std::count(kPlotKeys.begin(), kPlotKeys.end(), e.key)) {
              p_.Add(e.key_loc,
                     fmt::format("{}: '{}' is for the plot types ({}), not for the "
                                 "kind figure '{}'",
                                 what, e.key, Join(Names(kReportPlotTypes)), figure.type));
            } else {
              UnknownKey(e, what + ": ", kFigureKeys);
            }
          }
        }
        if (!figure.type.empty()) refs_.push_back(std::move(ref));
        out.figures->push_back(std::move(figure));
        continue;
      } else {
        p_.Add(f.loc, fmt::format("{}: expected a figure type or {{type, stage, ...}}, got {}",
                                  what, Describe(f)));
        continue;
      }
      if (IsPlot(figure.type)) {
        p_.Add(f.loc, fmt::format("{}: a '{}' figure needs a map {{type, stage, y, ...}}", what,
                                  figure.type));
      }
      if (!figure.type.empty()) refs_.push_back({what, "", figure.type, type_loc, {}});
      out.figures->push_back(std::move(figure));
    }
  }

  static bool IsPlot(const std::string& type) {
    return std::count(kReportPlotTypes.begin(), kReportPlotTypes.end(), type) > 0;
  }

  // A plot figure's keys (docs/report.md, "Figure types"): what each type needs is checked here,
  // the names of its axes against the stage in CheckReportStages, its metrics by the report.
  void Plot(const Node& f, const std::string& what, ReportFigureSpec& figure, ReportStageRef& ref) {
    std::vector<Loc> y_locs;
    Loc x_loc = f.loc;
    for (const auto& e : f.map) {
      if (e.key == "type") continue;
      if (e.key == "stage") {
        if (auto s = Text(e.value, what + ".stage")) figure.stage = *s, ref.stage = *s;
      } else if (e.key == "x") {
        if (auto s = Text(e.value, what + ".x")) figure.x = *s;
        x_loc = e.value.loc;
      } else if (e.key == "y") {
        figure.y = Strings(e.value, what + ".y", &y_locs);
      } else if (e.key == "group_by") {
        std::vector<Loc> locs;
        figure.group_by = Strings(e.value, what + ".group_by", &locs);
        for (size_t i = 0; i < locs.size(); ++i) ref.keys.push_back({figure.group_by[i], locs[i]});
      } else if (e.key == "title" || e.key == "xlabel" || e.key == "ylabel") {
        if (auto s = Text(e.value, what + "." + e.key))
          (e.key == "title"    ? figure.title
           : e.key == "xlabel" ? figure.xlabel
                               : figure.ylabel) = *s;
      } else if (e.key == "front") {
        if (e.value.Is(Node::Type::kScalar) && (e.value.text == "true" || e.value.text == "false"))
          figure.front = e.value.text == "true";
        else
          p_.Add(e.value.loc, what + ".front: must be true or false");
      } else {
        UnknownKey(e, what + ": ", kPlotKeys);
      }
    }
    const std::string& t = figure.type;
    if (figure.front && t != "scatter")
      p_.Add(f.loc, fmt::format("{}: 'front' is for 'scatter' figures, not '{}'", what, t));
    if (figure.stage.empty())
      p_.Add(f.loc, fmt::format("{}: a '{}' figure needs 'stage'", what, t));
    if (figure.y.empty())
      p_.Add(f.loc, fmt::format("{}: a '{}' figure needs 'y' (metrics)", what, t));
    size_t patterns = 0;
    for (size_t i = 0; i < figure.y.size(); ++i) {
      const auto stars = std::count(figure.y[i].begin(), figure.y[i].end(), '*');
      patterns += stars > 0;
      if (stars > 1)
        p_.Add(y_locs[i], fmt::format("{}.y: '{}' has more than one '*'", what, figure.y[i]));
    }
    if (t == "line" && figure.x.empty() && !(figure.y.size() == 1 && patterns == 1)) {
      p_.Add(f.loc, what +
                        ": a 'line' figure needs 'x' (a numeric axis), or one 'y' pattern whose "
                        "'*' is the x value (\"retained.layer.*.keep\")");
    }
    if (t == "scatter") {
      if (figure.x.empty()) p_.Add(f.loc, what + ": a 'scatter' figure needs 'x' (a metric)");
      if (figure.y.size() != 1 || patterns)
        p_.Add(f.loc, what + ": a 'scatter' figure needs one 'y' metric (no '*')");
    } else if (!figure.x.empty()) {
      ref.keys.push_back({figure.x, x_loc});
    }
  }

  // A map, or a list of maps: `fn` runs on each.
  void ForEachMap(const Node& n, const std::string& what, const std::string& shape,
                  const std::function<void(const Node&, const std::string&)>& fn) {
    if (n.Is(Node::Type::kNull)) return;
    if (n.Is(Node::Type::kMap)) return fn(n, what);
    if (!n.Is(Node::Type::kSeq)) {
      p_.Add(n.loc, fmt::format("{}: expected a map {} or a list of them, got {}", what, shape,
                                Describe(n)));
      return;
    }
    for (size_t i = 0; i < n.seq.size(); ++i) {
      const std::string w = fmt::format("{}[{}]", what, i);
      if (n.seq[i].Is(Node::Type::kMap)) {
        fn(n.seq[i], w);
      } else {
        p_.Add(n.seq[i].loc,
               fmt::format("{}: expected a map {}, got {}", w, shape, Describe(n.seq[i])));
      }
    }
  }

  // The optional stage of a ranking or paired entry, and its required metric.
  void StageAndMetric(const Node& m, const std::string& what, std::string& stage,
                      std::string& metric, ReportStageRef& ref) {
    if (const Node* s = m.Get("stage")) {
      if (auto t = Text(*s, what + ".stage")) stage = *t, ref.stage = *t, ref.loc = s->loc;
    }
    if (const Node* s = m.Get("metric")) {
      if (auto t = Text(*s, what + ".metric")) metric = *t;
      if (metric.find('*') != std::string::npos)
        p_.Add(s->loc, fmt::format("{}.metric: one metric, not a pattern ('{}')", what, metric));
    } else {
      p_.Add(m.loc, what + ": missing 'metric'");
    }
  }

  void Ranking(const Node& m, const std::string& what, ReportSpec& out) {
    ReportRankingSpec r;
    r.line = m.loc.line;
    ReportStageRef ref{what, "", "", m.loc, {}};
    StageAndMetric(m, what, r.stage, r.metric, ref);
    for (const auto& e : m.map) {
      if (e.key == "stage" || e.key == "metric") continue;
      if (e.key == "best") {
        auto b = Text(e.value, what + ".best");
        if (b && *b != "max" && *b != "min")
          p_.Add(e.value.loc, fmt::format("{}.best: '{}' is not max or min", what, *b));
        r.higher_is_better = !b || *b != "min";
      } else if (e.key == "group_by") {
        std::vector<Loc> locs;
        r.group_by = Strings(e.value, what + ".group_by", &locs);
        for (size_t i = 0; i < locs.size(); ++i) ref.keys.push_back({r.group_by[i], locs[i]});
      } else {
        UnknownKey(e, what + ": ", kRankingKeys);
      }
    }
    if (!r.stage.empty()) refs_.push_back(std::move(ref));
    out.rankings.push_back(std::move(r));
  }

  // a: / b: of a paired entry: a non-empty map of keys to scalar values.
  std::vector<std::pair<std::string, Json>> Selection(const Node& n, const std::string& what,
                                                      ReportStageRef& ref) {
    std::vector<std::pair<std::string, Json>> out;
    if (!n.Is(Node::Type::kMap) || n.map.empty()) {
      p_.Add(n.loc, fmt::format("{}: expected a map of axis values ({{adapter: lora}}), got {}",
                                what, Describe(n)));
      return out;
    }
    for (const auto& e : n.map) {
      if (!e.value.Is(Node::Type::kScalar)) {
        p_.Add(e.value.loc,
               fmt::format("{}.{}: expected a value, got {}", what, e.key, Describe(e.value)));
        continue;
      }
      if (auto v = ToJson(e.value, p_)) out.push_back({e.key, std::move(*v)});
      ref.keys.push_back({e.key, e.key_loc});
    }
    return out;
  }

  void Paired(const Node& m, const std::string& what, ReportSpec& out) {
    ReportPairedSpec r;
    r.line = m.loc.line;
    ReportStageRef ref{what, "", "", m.loc, {}};
    StageAndMetric(m, what, r.stage, r.metric, ref);
    for (const auto& e : m.map) {
      if (e.key == "stage" || e.key == "metric") continue;
      if (e.key == "a" || e.key == "b") {
        (e.key == "a" ? r.a : r.b) = Selection(e.value, what + "." + e.key, ref);
      } else {
        UnknownKey(e, what + ": ", kPairedKeys);
      }
    }
    for (const char* side : {"a", "b"}) {
      if (!m.Get(side)) p_.Add(m.loc, fmt::format("{}: missing '{}'", what, side));
    }
    if (!r.a.empty() && r.a == r.b) p_.Add(m.loc, what + ": a and b select the same shards");
    if (!r.stage.empty()) refs_.push_back(std::move(ref));
    out.paired.push_back(std::move(r));
  }

  void Uncertainty(const Node& n, ReportSpec& out) {
    const std::vector<std::string> accepted = Names(kReportUncertainties);
    auto s = Text(n, "report: uncertainty");
    if (!s) return;
    if (!std::count(accepted.begin(), accepted.end(), *s)) {
      p_.Add(n.loc, fmt::format("report: uncertainty: '{}' is not {}{}", *s, Join(accepted, " or "),
                                Suggest(*s, accepted)));
      return;
    }
    out.uncertainty = *s;
  }

  void Formats(const Node& n, ReportSpec& out) {
    const std::vector<std::string> accepted(kReportFormats.begin(), kReportFormats.end());
    std::vector<Loc> locs;
    out.formats = Strings(n, "report: formats", &locs);
    for (size_t i = 0; i < out.formats.size(); ++i) {
      const std::string& f = out.formats[i];
      if (std::count(accepted.begin(), accepted.end(), f)) continue;
      p_.Add(locs[i],
             fmt::format("report: formats: unknown format '{}' (accepted: {})", f, Join(accepted)));
    }
  }

  std::vector<ReportStageRef>& refs_;
  Problems& p_;
};

}  // namespace

void ParseReportSection(const Node& n, ReportSpec& out, std::vector<ReportStageRef>& refs,
                        Problems& p) {
  ReportParser(refs, p).Run(n, out);
}

namespace {

// Whether `key` names an axis of `stage` or of a stage it needs (transitively), a param path of
// the stage ("lora.rank"), or the seed: what the report can group or select shards by.
bool StageHasKey(const SweepSpec& spec, const StageSpec& stage, const std::string& key) {
  if (key == "seed") return true;
  const Json* j = &stage.params;
  for (const auto& part : Split(key, '.')) {
    if (!j->is_object() || !j->contains(part)) {
      j = nullptr;
      break;
    }
    j = &(*j)[part];
  }
  if (j) return true;
  std::vector<const StageSpec*> todo = {&stage};
  for (size_t i = 0; i < todo.size() && i < spec.stages.size() + 1; ++i) {
    for (const auto* axes : {&todo[i]->grid, &todo[i]->zip}) {
      for (const auto& a : *axes) {
        if (a.key == key) return true;
      }
    }
    for (const auto& need : todo[i]->needs) {
      if (const StageSpec* s = spec.FindStage(need)) todo.push_back(s);
    }
  }
  return false;
}

}  // namespace

void CheckReportStages(const std::vector<ReportStageRef>& refs, const SweepSpec& spec,
                       const KindRegistry& kinds, Problems& p) {
  std::vector<std::string> types = kinds.FigureTypes();
  types.insert(types.end(), kReportPlotTypes.begin(), kReportPlotTypes.end());
  for (const auto& ref : refs) {
    if (ref.figure_type.empty() || std::count(types.begin(), types.end(), ref.figure_type))
      continue;
    p.Add(ref.loc, fmt::format("{}: unknown figure type '{}'{} (accepted: {})", ref.what,
                               ref.figure_type, Suggest(ref.figure_type, types), Join(types)));
  }
  if (spec.stages.empty()) return;  // no stage parsed: that problem is reported already
  std::vector<std::string> names;
  for (const auto& st : spec.stages) {
    if (st.name.empty()) return;
    names.push_back(st.name);
  }
  for (const auto& ref : refs) {
    if (ref.stage.empty()) continue;
    const StageSpec* stage = spec.FindStage(ref.stage);
    if (!stage) {
      p.Add(ref.loc, fmt::format("{}: '{}' is not a stage{} (stages: {})", ref.what, ref.stage,
                                 Suggest(ref.stage, names), Join(names)));
      continue;
    }
    for (const auto& [key, loc] : ref.keys) {
      if (StageHasKey(spec, *stage, key)) continue;
      p.Add(loc, fmt::format("{}: '{}' is neither an axis nor a param of stage '{}'", ref.what, key,
                             ref.stage));
    }
  }
}

}  // namespace spec_detail

ReportSpec ParseReportSpec(std::string_view yaml_text, std::string_view file_name) {
  const std::string text(yaml_text);
  const std::vector<std::string> no_overrides;
  spec_detail::Problems p{std::string(file_name), no_overrides};
  ReportSpec out;
  std::optional<spec_detail::Node> root = spec_detail::LoadTree(text, std::nullopt, p);
  if (root && root->Is(spec_detail::Node::Type::kMap)) {
    if (const spec_detail::Node* n = root->Get("report")) {
      std::vector<spec_detail::ReportStageRef> refs;  // the report checks stages against its data
      spec_detail::ParseReportSection(*n, out, refs, p);
    }
  }
  if (!p.empty()) p.Throw();
  return out;
}

}  // namespace seedgrid

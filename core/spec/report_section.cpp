#include "core/spec/report_section.h"

#include <algorithm>
#include <optional>

#include <fmt/format.h>

#include "core/spec/text.h"

namespace seedgrid {
namespace spec_detail {
namespace {

const std::vector<std::string> kSectionKeys = {"tables", "figures", "formats"};
const std::vector<std::string> kTableKeys = {"stage", "metrics", "group_by"};
const std::vector<std::string> kFigureKeys = {"type", "stage"};

class ReportParser {
 public:
  ReportParser(std::vector<ReportStageRef>& refs, Problems& p) : refs_(refs), p_(p) {}

  void Run(const Node& n, ReportSpec& out) {
    if (n.Is(Node::Type::kNull)) return;
    if (!n.Is(Node::Type::kMap)) {
      p_.Add(n.loc, "report: expected a map (tables, figures, formats), got " + Describe(n));
      return;
    }
    for (const auto& e : n.map) {
      if (e.key == "tables") {
        Tables(e.value, out);
      } else if (e.key == "figures") {
        Figures(e.value, out);
      } else if (e.key == "formats") {
        Formats(e.value, out);
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
      p_.Add(n.loc, "report: figures: expected a list of figure types or {type, stage}, got " +
                        Describe(n));
      return;
    }
    out.figures.emplace();
    for (size_t i = 0; i < n.seq.size(); ++i) {
      const Node& f = n.seq[i];
      const std::string what = fmt::format("report: figures[{}]", i);
      ReportFigureSpec figure;
      Loc type_loc = f.loc;
      if (f.Is(Node::Type::kScalar)) {
        if (auto s = Text(f, what)) figure.type = *s;
      } else if (f.Is(Node::Type::kMap)) {
        for (const auto& e : f.map) {
          if (e.key == "type") {
            if (auto s = Text(e.value, what + ".type")) figure.type = *s;
            type_loc = e.value.loc;
          } else if (e.key == "stage") {
            Stage(e.value, what + ".stage", figure.stage);
          } else {
            UnknownKey(e, what + ": ", kFigureKeys);
          }
        }
        if (!f.Get("type")) p_.Add(f.loc, what + ": missing 'type'");
      } else {
        p_.Add(f.loc, fmt::format("{}: expected a figure type or {{type, stage}}, got {}", what,
                                  Describe(f)));
        continue;
      }
      if (!figure.type.empty()) refs_.push_back({what, "", figure.type, type_loc});
      out.figures->push_back(std::move(figure));
    }
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

void CheckReportStages(const std::vector<ReportStageRef>& refs, const SweepSpec& spec,
                       const KindRegistry& kinds, Problems& p) {
  const std::vector<std::string> types = kinds.FigureTypes();
  for (const auto& ref : refs) {
    if (ref.figure_type.empty() || std::count(types.begin(), types.end(), ref.figure_type))
      continue;
    p.Add(ref.loc, fmt::format("{}: unknown figure type '{}'{} (accepted: {})", ref.what,
                               ref.figure_type, Suggest(ref.figure_type, types),
                               types.empty() ? "none in this build" : Join(types)));
  }
  if (spec.stages.empty()) return;  // no stage parsed: that problem is reported already
  std::vector<std::string> names;
  for (const auto& st : spec.stages) {
    if (st.name.empty()) return;
    names.push_back(st.name);
  }
  for (const auto& ref : refs) {
    if (!ref.figure_type.empty() || std::count(names.begin(), names.end(), ref.stage)) continue;
    p.Add(ref.loc, fmt::format("{}: '{}' is not a stage{} (stages: {})", ref.what, ref.stage,
                               Suggest(ref.stage, names), Join(names)));
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

#include "coordinator/report/analysis.h"

#include <algorithm>
#include <array>
#include <cmath>
#include <iterator>
#include <map>
#include <set>

#include <fmt/format.h>
#include <fmt/ranges.h>

#include "coordinator/report/render.h"

namespace seedgrid::report {

namespace {

std::string Full(double v) { return std::isnan(v) ? "" : fmt::format("{}", v); }

// The stages an entry applies to: its own, or every stage that recorded the metric.
std::vector<std::string> StagesWith(const SweepData& data, const std::string& stage,
                                    const std::string& metric, const std::string& what,
                                    std::vector<std::string>& problems) {
  std::vector<std::string> out;
  for (const auto& s : data.stages) {
    if (!stage.empty() && s.name != stage) continue;
    const auto m = StageMetrics(data, s.name);
    if (std::binary_search(m.begin(), m.end(), metric)) out.push_back(s.name);
  }
  if (out.empty()) {
    problems.push_back(fmt::format("spec report section: {} of metric '{}': {} has no such metric",
                                   what, metric,
                                   stage.empty() ? "no stage" : fmt::format("stage '{}'", stage)));
  }
  return out;
}

std::string Selection(const std::vector<std::pair<std::string, Json>>& sel) {
  std::vector<std::string> parts;
  for (const auto& [k, v] : sel) parts.push_back(k + "=" + KeyText(v));
  return fmt::format("{}", fmt::join(parts, ", "));
}

bool Matches(const ShardRow& row, const std::vector<std::pair<std::string, Json>>& sel) {
  return std::all_of(sel.begin(), sel.end(),
                     [&](const auto& kv) { return KeyValue(row, kv.first) == kv.second; });
}

Ranking RankStage(const SweepData& data, const ReportRankingSpec& spec, const std::string& stage,
                  std::vector<std::string>& problems) {
  Ranking r;
  r.stage = stage;
  r.metric = spec.metric;
  r.higher_is_better = spec.higher_is_better;
  const StageTable t = BuildTable(data, {stage, {spec.metric}, spec.group_by}, problems);
  r.keys = t.keys;
  // Per config and seed: the mean of the config's values with that seed.
  std::vector<std::map<int64_t, std::pair<double, size_t>>> per(t.groups.size());
  std::set<int64_t> seeds;
  for (size_t c = 0; c < t.groups.size(); ++c) {
    r.configs.push_back(t.groups[c].label);
    const Cell& cell = t.groups[c].cells.at(0);
    for (size_t i = 0; i < cell.seeds.size(); ++i) {
      auto& [sum, n] = per[c][cell.seeds[i]];
      sum += cell.values[i], ++n;
      seeds.insert(cell.seeds[i]);
    }
  }
  for (int64_t s : seeds) {
    std::vector<std::string> without;
    std::vector<double> v;
    for (size_t c = 0; c < per.size(); ++c) {
      auto it = per[c].find(s);
      if (it == per[c].end()) {
        without.push_back(r.configs[c]);
      } else {
        v.push_back(it->second.first / static_cast<double>(it->second.second));
      }
    }
    if (!without.empty()) {
      r.dropped.push_back(fmt::format("seed {}: no value for {}", s, fmt::join(without, "; ")));
      continue;
    }
    std::vector<double> key = v;
    if (r.higher_is_better) {
      for (double& x : key) x = -x;
    }
    r.seeds.push_back(s);
    r.ranks.push_back(MeanRanks(key));
    r.values.push_back(std::move(v));
  }
  r.mean_rank.assign(r.configs.size(), std::nan(""));
  for (size_t c = 0; c < r.configs.size() && !r.ranks.empty(); ++c) {
    double sum = 0;
    for (const auto& ranks : r.ranks) sum += ranks[c];
    r.mean_rank[c] = sum / static_cast<double>(r.ranks.size());
  }
  double rho = 0;
  for (size_t i = 0; i < r.ranks.size(); ++i) {
    for (size_t j = i + 1; j < r.ranks.size(); ++j) {
      double x = Spearman(r.ranks[i], r.ranks[j]);
      if (!std::isnan(x)) rho += x, ++r.spearman_pairs;
    }
  }
  r.mean_spearman = r.spearman_pairs ? rho / static_cast<double>(r.spearman_pairs) : std::nan("");
  r.kendall_w = KendallW(r.ranks);
  r.id = fmt::format("ranking-{}-{}", stage, spec.metric);
  for (char& ch : r.id) {
    if (!std::isalnum(static_cast<unsigned char>(ch)) && ch != '-' && ch != '_') ch = '_';
  }
  return r;
}

// One paired comparison on one stage (see Paired in analysis.h).
Paired PairStage(const SweepData& data, const ReportPairedSpec& spec, const std::string& stage,
                 std::vector<std::string>& problems) {
  Paired p{stage, spec.metric, Selection(spec.a), Selection(spec.b), {}, {}, {}, {}, {}};
  std::set<std::string> named;
  for (const auto* sel : {&spec.a, &spec.b}) {
    for (const auto& kv : *sel) named.insert(kv.first);
  }
  // unit ("seed 0, lora.rank=4") -> summed values and counts of a and b
  std::map<std::string, std::array<std::pair<double, size_t>, 2>> units;
  std::map<std::string, int64_t> unit_seed;
  size_t matched[2] = {0, 0};
  for (size_t i : TabulatedRows(*data.FindStage(stage), data)) {
    const ShardRow& row = data.shards[i];
    const bool in_a = Matches(row, spec.a), in_b = Matches(row, spec.b);
    if (!in_a && !in_b) continue;
    std::string unit = fmt::format("seed {}", row.key.seed());
    for (const auto& [k, v] : row.key.axes().items()) {
      if (!named.count(k)) unit += fmt::format(", {}={}", k, KeyText(v));
    }
    if (in_a && in_b) {
      p.unpaired.push_back(unit + ": matches both a and b");
      continue;
    }
    const int side = in_a ? 0 : 1;
    ++matched[side];
    const double* m = row.status == ShardStatus::kDone ? data.Metric(i, spec.metric) : nullptr;
    if (!m || !std::isfinite(*m)) {
      p.unpaired.push_back(fmt::format("{} ({}): {}", unit, side ? "b" : "a",
                                       row.status != ShardStatus::kDone
                                           ? std::string(ToString(row.status))
                                       : m ? "not finite"
                                           : "no metric"));
      continue;
    }
    auto& [sum, n] = units[unit][side];
    sum += *m, ++n;
    unit_seed[unit] = row.key.seed();
  }
  for (int side = 0; side < 2; ++side) {
    // Without a stage in the spec, a stage where a selection matches nothing is not compared.
    if (!matched[side] && !spec.stage.empty())
      problems.push_back(fmt::format(
          "spec report section: paired {} vs {} on stage '{}': {} ({}) selects no shard", p.a, p.b,
          stage, side ? "b" : "a", side ? p.b : p.a));
  }
  p.matched = matched[0] && matched[1];
  for (const auto& [unit, ab] : units) {
    if (!ab[0].second || !ab[1].second) {
      p.unpaired.push_back(fmt::format("{}: no {} partner", unit, ab[0].second ? "b" : "a"));
      continue;
    }
    p.pairs.push_back(unit);
    p.a_values.push_back(ab[0].first / static_cast<double>(ab[0].second));
    p.b_values.push_back(ab[1].first / static_cast<double>(ab[1].second));
  }
  p.summary = ComparePaired(p.a_values, p.b_values);
  return p;
}

}  // namespace

std::vector<Ranking> BuildRankings(const SweepData& data,
                                   const std::vector<ReportRankingSpec>& specs,
                                   std::vector<std::string>& problems) {
  std::vector<Ranking> out;
  for (const auto& spec : specs) {
    for (const auto& stage : StagesWith(data, spec.stage, spec.metric, "ranking", problems))
      out.push_back(RankStage(data, spec, stage, problems));
  }
  return out;
}

std::vector<Paired> BuildPaired(const SweepData& data, const std::vector<ReportPairedSpec>& specs,
                                std::vector<std::string>& problems) {
  std::vector<Paired> out;
  for (const auto& spec : specs) {
    size_t compared = 0;
    for (const auto& stage : StagesWith(data, spec.stage, spec.metric, "paired", problems)) {
      Paired p = PairStage(data, spec, stage, problems);
      if (p.matched || !spec.stage.empty()) out.push_back(std::move(p)), ++compared;
    }
    if (!compared && spec.stage.empty())
      problems.push_back(fmt::format(
          "spec report section: paired {} vs {}: no stage with metric '{}' has shards of both",
          Selection(spec.a), Selection(spec.b), spec.metric));
  }
  return out;
}

std::string RankingSummary(const Ranking& r) {
  std::string s = fmt::format(
      "Stage {}, metric {} ({} is best): {} config{} ranked by each of {} seed{}; mean Spearman "
      "ρ between seeds' rankings {} ({} seed pair{}), Kendall's W {}",
      r.stage, r.metric, r.higher_is_better ? "highest" : "lowest", r.configs.size(),
      r.configs.size() == 1 ? "" : "s", r.seeds.size(), r.seeds.size() == 1 ? "" : "s",
      FormatNumber(r.mean_spearman), r.spearman_pairs, r.spearman_pairs == 1 ? "" : "s",
      FormatNumber(r.kendall_w));
  if (!r.dropped.empty())
    s += fmt::format("; left out (a config has no value): {}", fmt::join(r.dropped, "; "));
  return s + ".";
}

std::string RankingMarkdown(const Ranking& r) {
  std::string out = "| config | mean rank |";
  auto o = std::back_inserter(out);
  for (int64_t s : r.seeds) fmt::format_to(o, " seed {} |", s);
  out += "\n|---|--:|";
  for (size_t s = 0; s < r.seeds.size(); ++s) out += "--:|";
  out += "\n";
  for (size_t c = 0; c < r.configs.size(); ++c) {
    fmt::format_to(o, "| {} | {} |", EscapeMarkdownCell(r.configs[c]),
                   FormatNumber(r.mean_rank[c]));
    for (size_t s = 0; s < r.seeds.size(); ++s)
      fmt::format_to(o, " {} ({}) |", FormatNumber(r.ranks[s][c]), FormatNumber(r.values[s][c]));
    out += "\n";
  }
  return out;
}

std::string RankingCsv(const Ranking& r, const std::string& sweep) {
  std::string out =
      "sweep,stage,metric,best,config,seed,rank,value,mean_rank,n_seeds,mean_spearman,"
      "spearman_pairs,kendall_w\r\n";
  auto o = std::back_inserter(out);
  for (size_t c = 0; c < r.configs.size(); ++c) {
    for (size_t s = 0; s < r.seeds.size(); ++s) {
      fmt::format_to(o, "{},{},{},{},{},{},{},{},{},{},{},{},{}\r\n", CsvField(sweep),
                     CsvField(r.stage), CsvField(r.metric), r.higher_is_better ? "max" : "min",
                     CsvField(r.configs[c]), r.seeds[s], Full(r.ranks[s][c]), Full(r.values[s][c]),
                     Full(r.mean_rank[c]), r.seeds.size(), Full(r.mean_spearman), r.spearman_pairs,
                     Full(r.kendall_w));
    }
  }
  return out;
}

std::string RankingHtml(const Ranking& r) {
  std::string out =
      "<table class=\"stats sortable\">\n<thead><tr><th>config</th><th>mean rank</th>";
  auto o = std::back_inserter(out);
  for (int64_t s : r.seeds) fmt::format_to(o, "<th>seed {}</th>", s);
  out += "</tr></thead>\n<tbody>\n";
  for (size_t c = 0; c < r.configs.size(); ++c) {
    fmt::format_to(o, "<tr><td>{}</td><td class=\"num\">{}</td>", EscapeHtml(r.configs[c]),
                   FormatNumber(r.mean_rank[c]));
    for (size_t s = 0; s < r.seeds.size(); ++s)
      fmt::format_to(o, "<td class=\"num\" data-sort=\"{}\">{} ({})</td>", Full(r.ranks[s][c]),
                     FormatNumber(r.ranks[s][c]), FormatNumber(r.values[s][c]));
    out += "</tr>\n";
  }
  return out + "</tbody>\n</table>\n";
}

namespace {

std::string Interval(const Summary& s) {
  if (s.n < 2) return "—";
  return fmt::format("[{}, {}]", FormatNumber(s.ci_low), FormatNumber(s.ci_high));
}

// The cells of one paired row, as text (shared by Markdown and HTML).
std::vector<std::string> PairedCells(const Paired& p) {
  const Summary& d = p.summary.diff;
  return {p.stage,
          p.metric,
          p.a,
          p.b,
          fmt::format("{}", d.n),
          FormatNumber(d.mean),
          FormatNumber(d.std),
          Interval(d),
          fmt::format("{}", p.summary.a_greater),
          fmt::format("{}", p.summary.b_greater),
          fmt::format("{}", p.summary.ties),
          FormatNumber(p.summary.sign_p),
          fmt::format("{}", fmt::join(p.unpaired, "; "))};
}

const char* kPairedHeader[] = {"stage",      "metric",      "a",       "b",     "pairs",
                               "mean a − b", "std",         "95% CI",  "a > b", "a < b",
                               "ties",       "sign test p", "unpaired"};

}  // namespace

std::string PairedMarkdown(const std::vector<Paired>& ps) {
  std::string out = "|";
  for (const char* h : kPairedHeader) out += fmt::format(" {} |", h);
  out += "\n|---|---|---|---|--:|--:|--:|:-:|--:|--:|--:|--:|---|\n";
  for (const auto& p : ps) {
    out += "|";
    for (const auto& c : PairedCells(p)) out += " " + EscapeMarkdownCell(c) + " |";
    out += "\n";
  }
  return out;
}

std::string PairedHtml(const std::vector<Paired>& ps) {
  std::string out = "<table class=\"stats sortable\">\n<thead><tr>";
  for (const char* h : kPairedHeader) out += fmt::format("<th>{}</th>", EscapeHtml(h));
  out += "</tr></thead>\n<tbody>\n";
  for (const auto& p : ps) {
    out += "<tr>";
    const auto cells = PairedCells(p);
    for (size_t i = 0; i < cells.size(); ++i)
      out +=
          fmt::format(fmt::runtime(i >= 4 && i < 12 ? "<td class=\"num\">{}</td>" : "<td>{}</td>"),
                      EscapeHtml(cells[i]));
    out += "</tr>\n";
  }
  return out + "</tbody>\n</table>\n";
}

std::string PairedCsv(const std::vector<Paired>& ps, const std::string& sweep) {
  std::string out =
      "sweep,stage,metric,a,b,n,mean_diff,std,ddof,sem,ci95_low,ci95_high,a_greater,b_greater,"
      "ties,sign_p,pairs,a_values,b_values,unpaired\r\n";
  auto o = std::back_inserter(out);
  for (const auto& p : ps) {
    const Summary& d = p.summary.diff;
    fmt::format_to(o, "{},{},{},{},{},{},{},{},1,{},{},{},{},{},{},{},{},{},{},{}\r\n",
                   CsvField(sweep), CsvField(p.stage), CsvField(p.metric), CsvField(p.a),
                   CsvField(p.b), d.n, Full(d.mean), Full(d.std), Full(d.sem), Full(d.ci_low),
                   Full(d.ci_high), p.summary.a_greater, p.summary.b_greater, p.summary.ties,
                   Full(p.summary.sign_p), CsvField(fmt::format("{}", fmt::join(p.pairs, ";"))),
                   CsvField(fmt::format("{}", fmt::join(p.a_values, ";"))),
                   CsvField(fmt::format("{}", fmt::join(p.b_values, ";"))),
                   CsvField(fmt::format("{}", fmt::join(p.unpaired, "; "))));
  }
  return out;
}

}  // namespace seedgrid::report

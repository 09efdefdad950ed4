// `seedgrid report A B ...`: several sweeps side by side (report.h, WriteCompare).
#include <filesystem>
#include <fstream>
#include <set>

#include <fmt/format.h>
#include <fmt/ranges.h>

#include "coordinator/report/gnuplot.h"
#include "coordinator/report/plots.h"
#include "coordinator/report/render.h"
#include "coordinator/report/report.h"
#include "core/registry.h"

namespace seedgrid {

namespace fs = std::filesystem;
using report::StageTable;

namespace {

void Write(const fs::path& path, const std::string& text) {
  std::ofstream out(path, std::ios::binary);
  out << text;
  if (!out) throw std::runtime_error(fmt::format("cannot write {}", path.string()));
}

bool Contains(const std::vector<std::string>& v, const std::string& x) {
  return std::find(v.begin(), v.end(), x) != v.end();
}

// One stage compared: the tables of each sweep over the shared keys and metrics, and the
// combined table (key "sweep" first).
struct Compared {
  std::vector<StageTable> per_sweep;
  StageTable combined;
};

Compared CompareStage(const std::vector<report::SweepData>& data, const std::string& stage,
                      const ReportOptions& opts, std::vector<std::string>& problems) {
  // Keys: the axes every sweep's table of this stage has (or --group-by); metrics: the first
  // sweep's defaults that every sweep recorded (or --metrics).
  std::vector<std::string> keys = opts.group_by, metrics = opts.metrics;
  std::vector<std::string> ignored;
  if (keys.empty()) {
    keys = report::BuildTable(data[0], {stage, {}, {}}, ignored).keys;
    for (size_t i = 1; i < data.size(); ++i) {
      const auto other = report::BuildTable(data[i], {stage, {}, {}}, ignored).keys;
      std::erase_if(keys, [&](const std::string& k) { return !Contains(other, k); });
    }
  }
  if (metrics.empty()) {
    metrics = report::BuildTable(data[0], {stage, {}, {}}, ignored).metrics;
    for (size_t i = 1; i < data.size(); ++i) {
      const auto other = report::StageMetrics(data[i], stage);
      std::erase_if(metrics, [&](const std::string& m) { return !Contains(other, m); });
    }
  }
  Compared c;
  c.combined.id = stage;
  c.combined.stage = stage;
  c.combined.keys = keys;
  c.combined.keys.insert(c.combined.keys.begin(), "sweep");
  for (const auto& d : data) {
    StageTable t = report::BuildTable(d, {stage, metrics, keys}, problems);
    c.combined.kind = t.kind;
    c.combined.metrics = t.metrics;
    for (const auto& [status, n] : t.status_counts) c.combined.status_counts[status] += n;
    for (report::Group g : t.groups) {
      g.key.insert(g.key.begin(), Json(d.sweep.name));
      g.label = fmt::format("sweep={}{}{}", d.sweep.name, g.key.size() > 1 ? ", " : "",
                            g.key.size() > 1 ? g.label : "");
      c.combined.groups.push_back(std::move(g));
    }
    c.per_sweep.push_back(std::move(t));
  }
  return c;
}

// Per metric: one cluster per config (the shared keys), one bar per sweep.
std::vector<report::Figure> CompareFigures(const Compared& c, const fs::path& dir) {
  constexpr size_t kMaxMetrics = 6;
  std::vector<report::Figure> out;
  for (size_t m = 0; m < c.combined.metrics.size() && m < kMaxMetrics; ++m) {
    report::BarsRequest r;
    for (const auto& g : c.combined.groups) {
      std::vector<std::string> parts;
      for (size_t k = 1; k < g.key.size(); ++k)
        parts.push_back(c.combined.keys[k] + "=" + report::KeyText(g.key[k]));
      r.Add(parts.empty() ? "all" : fmt::format("{}", fmt::join(parts, ", ")),
            report::KeyText(g.key[0]), g.cells[m].summary);
    }
    const std::string& metric = c.combined.metrics[m];
    r.id = report::FileStem(fmt::format("compare-{}-{}", c.combined.stage, metric));
    r.title = fmt::format("{} by sweep, stage {}", metric, c.combined.stage);
    r.xlabel =
        c.combined.keys.size() > 1
            ? fmt::format("{}", fmt::join(c.combined.keys.begin() + 1, c.combined.keys.end(), ", "))
            : "all shards";
    r.ylabel = metric;
    r.caption = fmt::format(
        "Mean of {} per config (the axes the sweeps share), one bar per sweep; error bars: {} "
        "over seeds.",
        metric, report::UncertaintyText(report::Uncertainty::kCi95));
    out.push_back(report::BarsFigure(r, report::Uncertainty::kCi95, dir.string()));
  }
  return out;
}

}  // namespace

// The sweeps' shared stages (or --stage), each as one table with a sweep column and one bar
// figure per metric; report.md and report.html index them.
ReportResult WriteCompare(const ReportOptions& opts) {
  Registry registry(opts.registry_path, Registry::Mode::kReadOnly);
  std::vector<std::string> names = {opts.sweep};
  names.insert(names.end(), opts.compare.begin(), opts.compare.end());
  std::vector<report::SweepData> data;
  for (const auto& n : names)
    data.push_back(report::LoadSweep(registry, n, opts.kinds ? *opts.kinds : AllKinds()));
  std::vector<std::string> stages, problems;
  for (const auto& s : data[0].stages) {
    bool shared = std::all_of(data.begin(), data.end(),
                              [&](const report::SweepData& d) { return d.FindStage(s.name); });
    if (shared && (opts.stage.empty() || opts.stage == s.name)) stages.push_back(s.name);
  }
  if (stages.empty())
    throw UsageError(fmt::format("sweeps {} share no stage{}", fmt::join(names, ", "),
                                 opts.stage.empty() ? "" : " named '" + opts.stage + "'"));
  std::vector<Compared> compared;
  for (const auto& s : stages) compared.push_back(CompareStage(data, s, opts, problems));
  if (!problems.empty()) throw UsageError(fmt::format("{}", fmt::join(problems, "\n  ")));

  const fs::path dir = fs::absolute(
      opts.out_dir.empty() ? fs::path(data[0].registry_dir) /
                                 fmt::format("compare-{}", fmt::join(names, "-")) / "report"
                           : fs::path(opts.out_dir));
  fs::create_directories(dir / "tables");
  ReportResult result;
  result.dir = dir.string();
  std::string md = fmt::format("# Comparison: sweeps {}\n\n{}\n\n", fmt::join(names, ", "),
                               report::StatsConventions());
  std::string html = fmt::format(
      "<!DOCTYPE html>\n<html lang=\"en\">\n<head>\n<meta charset=\"utf-8\">\n<title>seedgrid "
      "comparison: {0}</title>\n</head>\n<body>\n<h1>Comparison: sweeps {0}</h1>\n<p>{1}</p>\n",
      report::EscapeHtml(fmt::format("{}", fmt::join(names, ", "))),
      report::EscapeHtml(report::StatsConventions()));
  const std::string gnuplot = report::FindOnPath("gnuplot");
  for (const auto& c : compared) {
    std::string csv;
    for (const auto& t : c.per_sweep) {
      std::string part = report::TableCsv(t, data[&t - c.per_sweep.data()].sweep.name);
      csv += csv.empty() ? part : part.substr(part.find("\r\n") + 2);
    }
    Write(dir / "tables" / (c.combined.id + ".csv"), csv);
    Write(dir / "tables" / (c.combined.id + ".md"), report::TableMarkdown(c.combined));
    md += fmt::format("## Stage {}\n\n{}. [CSV](tables/{}.csv)\n\n{}\n", c.combined.stage,
                      report::TableSummary(c.combined), c.combined.id,
                      report::TableMarkdown(c.combined));
    html += fmt::format("<h2>Stage {}</h2>\n<p>{}</p>\n{}", report::EscapeHtml(c.combined.stage),
                        report::EscapeHtml(report::TableSummary(c.combined)),
                        report::TableHtml(c.combined));
    std::vector<report::Figure> figures = CompareFigures(c, dir);
    if (!gnuplot.empty()) report::RenderFigures(figures, dir / "figures", gnuplot, result.warnings);
    for (auto& f : figures) {
      md += fmt::format("### {}\n\n", f.title);
      if (!f.png.empty()) md += fmt::format("![{}]({})\n\n", f.title, f.png);
      md += fmt::format("{} [data]({}) · [gnuplot script]({})\n\n", f.caption, f.data, f.script);
      html += fmt::format("<p><b>{}.</b> {} <a href=\"{}\">data</a></p>\n",
                          report::EscapeHtml(f.title), report::EscapeHtml(f.caption), f.data);
      result.figures.push_back(std::move(f));
    }
    result.tables.push_back(c.combined);
  }
  result.index_md = (dir / "report.md").string();
  result.html = (dir / "report.html").string();
  Write(result.index_md, md);
  Write(result.html, html + "</body>\n</html>\n");
  return result;
}

}  // namespace seedgrid

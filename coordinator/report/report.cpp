#include "coordinator/report/report.h"

#include <chrono>
#include <ctime>
#include <filesystem>
#include <fstream>
#include <iterator>
#include <set>

#include <fmt/format.h>
#include <fmt/ranges.h>

#include "coordinator/report/analysis.h"
#include "coordinator/report/examples.h"
#include "coordinator/report/render.h"
#include "core/registry.h"
#include "core/spec.h"

namespace seedgrid {

namespace fs = std::filesystem;
using report::Figure;
using report::FigureRequest;
using report::StageTable;
using report::TableRequest;

namespace {

const std::vector<std::string> kFormats(kReportFormats.begin(), kReportFormats.end());

// ---- the spec's report: section ----

// The section as ParseSpec checked it at launch; read again from the stored spec text (the
// registry keeps the text, not the overrides). Figure types are checked again against the kinds
// this build knows (a registry written by an older seedgrid may name a type no kind offers now).
ReportSpec StoredReportSection(const report::SweepData& data, std::vector<std::string>& problems) {
  ReportSpec section;
  try {
    section = ParseReportSpec(data.sweep.spec_text,
                              fmt::format("stored spec of sweep '{}'", data.sweep.name));
  } catch (const SpecError& e) {
    problems.insert(problems.end(), e.problems().begin(), e.problems().end());
    return {};
  }
  std::vector<std::string> types = data.kinds->FigureTypes();
  types.insert(types.end(), kReportPlotTypes.begin(), kReportPlotTypes.end());
  for (const auto& f : section.figures.value_or(std::vector<ReportFigureSpec>{})) {
    if (std::find(types.begin(), types.end(), f.type) == types.end()) {
      problems.push_back(fmt::format("spec report section: unknown figure type '{}' (accepted: {})",
                                     f.type, fmt::join(types, ", ")));
    }
  }
  return section;
}

// ---- small helpers ----

std::string NowUtc() {
  std::time_t t = std::chrono::system_clock::to_time_t(std::chrono::system_clock::now());
  std::tm tm{};
  gmtime_r(&t, &tm);
  char buf[32];
  std::strftime(buf, sizeof buf, "%Y-%m-%dT%H:%M:%SZ", &tm);
  return buf;
}

void WriteFile(const fs::path& path, const std::string& text) {
  std::ofstream out(path, std::ios::binary);
  out << text;
  out.close();
  if (!out) throw std::runtime_error(fmt::format("cannot write {}", path.string()));
}

std::string Base64(const std::string& bytes) {
  static constexpr char kAlphabet[] =
      "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
  std::string out;
  out.reserve((bytes.size() + 2) / 3 * 4);
  size_t i = 0;
  for (; i + 2 < bytes.size(); i += 3) {
    uint32_t v = (uint8_t(bytes[i]) << 16) | (uint8_t(bytes[i + 1]) << 8) | uint8_t(bytes[i + 2]);
    for (int s = 18; s >= 0; s -= 6) out += kAlphabet[(v >> s) & 63];
  }
  if (size_t rest = bytes.size() - i) {
    uint32_t v = uint8_t(bytes[i]) << 16;
    if (rest == 2) v |= uint8_t(bytes[i + 1]) << 8;
    out += kAlphabet[(v >> 18) & 63];
    out += kAlphabet[(v >> 12) & 63];
    out += rest == 2 ? kAlphabet[(v >> 6) & 63] : '=';
    out += '=';
  }
  return out;
}

std::string ReadBytes(const fs::path& path) {
  std::ifstream in(path, std::ios::binary);
  return {std::istreambuf_iterator<char>(in), std::istreambuf_iterator<char>()};
}

bool Has(const std::vector<std::string>& v, const std::string& x) {
  return std::find(v.begin(), v.end(), x) != v.end();
}

// ---- which tables ----

std::vector<TableRequest> PlanTables(const report::SweepData& data, const ReportOptions& opts,
                                     const ReportSpec& section,
                                     std::vector<std::string>& problems) {
  std::vector<std::string> stages;
  for (const auto& s : data.stages) {
    if (opts.stage.empty() || opts.stage == s.name) stages.push_back(s.name);
  }
  if (!opts.stage.empty() && stages.empty()) {
    std::vector<std::string> names;
    for (const auto& s : data.stages) names.push_back(s.name);
    problems.push_back(
        fmt::format("sweep '{}' has no stage '{}' (stages: {})", data.sweep.name, opts.stage,
                    names.empty() ? "none" : fmt::format("{}", fmt::join(names, ", "))));
    return {};
  }
  std::vector<TableRequest> out;
  if (!opts.metrics.empty() || !opts.group_by.empty()) {
    if (!opts.stage.empty()) return {{opts.stage, opts.metrics, opts.group_by}};
    // Every stage: each stage gets the metrics and keys it has; each must fit some stage.
    std::set<std::string> used_metrics, used_keys;
    for (const auto& s : stages) {
      auto available = report::StageMetrics(data, s);
      TableRequest r{s, {}, opts.group_by};
      for (const auto& m : opts.metrics) {
        bool any = std::any_of(available.begin(), available.end(),
                               [&](const std::string& a) { return report::MetricMatches(m, a); });
        if (any) r.metrics.push_back(m), used_metrics.insert(m);
      }
      bool keys =
          std::all_of(opts.group_by.begin(), opts.group_by.end(),
                      [&](const std::string& k) { return report::StageHasKey(data, s, k); });
      for (const auto& k : opts.group_by) {
        if (report::StageHasKey(data, s, k)) used_keys.insert(k);
      }
      if (keys && (opts.metrics.empty() || !r.metrics.empty())) out.push_back(std::move(r));
    }
    for (const auto& m : opts.metrics) {
      if (!used_metrics.count(m)) {
        std::set<std::string> all;
        for (const auto& s : stages) {
          for (auto& a : report::StageMetrics(data, s)) all.insert(a);
        }
        problems.push_back(
            fmt::format("no stage of sweep '{}' has metric '{}' (metrics: {})", data.sweep.name, m,
                        all.empty() ? "none yet" : fmt::format("{}", fmt::join(all, ", "))));
      }
    }
    for (const auto& k : opts.group_by) {
      if (!used_keys.count(k)) {
        problems.push_back(fmt::format(
            "no stage of sweep '{}' has an axis or param '{}' to group by", data.sweep.name, k));
      }
    }
    if (problems.empty() && out.empty()) {
      problems.push_back(
          "no stage has all of the --group-by keys and one of the --metrics; name a --stage");
    }
    return out;
  }
  for (const auto& t : section.tables) {
    if (opts.stage.empty() || t.stage == opts.stage)
      out.push_back({t.stage, t.metrics, t.group_by});
  }
  if (!out.empty()) return out;
  for (const auto& s : stages) out.push_back({s, {}, {}});
  return out;
}

// ---- report.md and report.html ----

struct StatusLine {
  std::string stage, kind;
  std::map<std::string, size_t> counts;
  size_t total = 0;
};

std::vector<StatusLine> StatusByStage(const report::SweepData& data) {
  std::vector<StatusLine> out;
  for (const auto& s : data.stages) {
    StatusLine l{s.name, s.kind, {}, s.shards.size()};
    for (size_t i : s.shards) ++l.counts[std::string(ToString(data.shards[i].status))];
    out.push_back(std::move(l));
  }
  return out;
}

constexpr const char* kStatuses[] = {"done", "failed", "running", "pending", "preempted"};
constexpr size_t kInlineRows = 120;  // larger tables are linked from report.md, not inlined

size_t Rows(const StageTable& t) { return t.groups.size() * t.metrics.size(); }

std::string IncompleteList(const StageTable& t, bool html) {
  std::string out;
  for (const auto& g : t.groups) {
    if (g.complete) continue;
    std::set<std::string> missing;
    for (const auto& c : g.cells) {
      for (const auto& m : c.missing) missing.insert(fmt::format("seed {} {}", m.seed, m.reason));
    }
    std::string text = fmt::format("{}: {}", g.label, fmt::join(missing, "; "));
    out += html ? "<li>" + report::EscapeHtml(text) + "</li>\n"
                : "- " + report::EscapeMarkdownCell(text) + "\n";
  }
  return out;
}

// The multi-seed analysis of the spec's report section (analysis.h).
struct Analysis {
  std::vector<report::Ranking> rankings;
  std::vector<report::Paired> paired;
};

std::string AnalysisMarkdown(const Analysis& a, const std::vector<std::string>& formats) {
  std::string md;
  if (!a.rankings.empty()) {
    md +=
        "## Rankings across seeds\n\nEach seed ranks the configs by the metric (1 = best; ties "
        "share the mean rank; cells: rank (value)). Stability: mean Spearman ρ between every two "
        "seeds' rankings, and Kendall's W (1 = every seed agrees, 0 = no agreement; "
        "docs/report.md).\n\n";
    for (const auto& r : a.rankings) {
      md +=
          fmt::format("### {}\n\n{}", r.id, report::EscapeMarkdownCell(report::RankingSummary(r)));
      if (Has(formats, "csv")) md += fmt::format(" [CSV](tables/{}.csv).", r.id);
      md += "\n\n" + report::RankingMarkdown(r) + "\n";
    }
  }
  if (!a.paired.empty()) {
    md +=
        "## Paired comparisons\n\nFor each pair (same seed, same value of every axis that neither "
        "a nor b names): d = a − b. Mean d with its 95% Student-t interval (ddof = 1); sign test: "
        "exact two-sided binomial test of #(a > b) against 1/2, ties dropped.";
    if (Has(formats, "csv")) md += " [CSV](tables/paired.csv).";
    md += "\n\n" + report::PairedMarkdown(a.paired) + "\n";
  }
  return md;
}

std::string MarkdownIndex(const report::SweepData& data, const ReportOptions& opts,
                          const std::vector<std::string>& formats,
                          const std::vector<StageTable>& tables, const Analysis& analysis,
                          const std::vector<Figure>& figures,
                          const std::vector<report::ShardExamples>& examples,
                          const std::vector<std::string>& warnings, bool gnuplot_found) {
  std::string md;
  auto o = std::back_inserter(md);
  const SweepRow& sw = data.sweep;
  fmt::format_to(o, "# Report: sweep {}\n\n", sw.name);
  fmt::format_to(o,
                 "Generated {} by seedgrid {} from `{}`. Sweep created {}, last updated {}; "
                 "spec hash `{}`; git commit `{}`.\n\n",
                 NowUtc(), SeedgridVersion(), opts.registry_path, sw.created, sw.updated,
                 sw.spec_hash.substr(0, 16), sw.git_commit);
  if (Has(formats, "html")) md += "Also as one page: [report.html](report.html).\n\n";

  md +=
      "## Shards\n\n| stage | kind | shards | done | failed | running | pending | preempted |\n"
      "|---|---|--:|--:|--:|--:|--:|--:|\n";
  size_t not_done = 0;
  for (const auto& l : StatusByStage(data)) {
    fmt::format_to(o, "| {} | {} | {} ", report::EscapeMarkdownCell(l.stage), l.kind, l.total);
    for (const char* s : kStatuses) {
      auto it = l.counts.find(s);
      size_t n = it == l.counts.end() ? 0 : it->second;
      if (std::string(s) != "done") not_done += n;
      fmt::format_to(o, "| {} ", n);
    }
    md += "|\n";
  }
  md += not_done ? fmt::format(
                       "\n**{} shard{} not done**: every group with a shard that is not "
                       "done is flagged incomplete below.\n\n",
                       not_done, not_done == 1 ? " is" : "s are")
                 : "\nEvery shard is done.\n\n";

  md += "## Tables\n\n" + std::string(report::StatsConventions()) + "\n\n";
  for (const auto& t : tables) {
    fmt::format_to(o, "### {}\n\n{}.", t.id, report::TableSummary(t));
    if (t.metrics.empty()) {
      md += " No metric recorded yet.\n\n";
      continue;
    }
    std::vector<std::string> links;
    if (Has(formats, "md")) links.push_back(fmt::format("[Markdown](tables/{}.md)", t.id));
    if (Has(formats, "tex")) links.push_back(fmt::format("[LaTeX](tables/{}.tex)", t.id));
    if (Has(formats, "csv")) links.push_back(fmt::format("[CSV](tables/{}.csv)", t.id));
    if (!links.empty()) fmt::format_to(o, " Files: {}.", fmt::join(links, " · "));
    md += "\n\n";
    if (Rows(t) <= kInlineRows) {
      md += report::TableMarkdown(t) + "\n";
    } else {
      fmt::format_to(o, "{} rows: see the table files.\n\n", Rows(t));
    }
    if (t.incomplete_groups()) md += "Incomplete groups:\n\n" + IncompleteList(t, false) + "\n";
  }
  md += AnalysisMarkdown(analysis, formats);

  md += "## Figures\n\n";
  if (!opts.figures) {
    md += "Figures were not requested.\n\n";
  } else if (figures.empty()) {
    md += "No figure applies to this sweep's kinds and data.\n\n";
  }
  for (const auto& f : figures) {
    // Titles and captions may quote axis values (a group's label): escaped like table cells.
    const std::string title = report::EscapeMarkdownCell(f.title);
    fmt::format_to(o, "### {}\n\n", title);
    if (!f.png.empty()) fmt::format_to(o, "![{}]({})\n\n", title, f.png);
    md += report::EscapeMarkdownCell(f.caption);
    std::vector<std::string> links;
    if (!f.svg.empty()) links.push_back(fmt::format("[SVG]({})", f.svg));
    if (!f.png.empty()) links.push_back(fmt::format("[PNG]({})", f.png));
    links.push_back(fmt::format("[data]({})", f.data));
    if (!f.cells_csv.empty()) links.push_back(fmt::format("[cells: mean, n, CI]({})", f.cells_csv));
    links.push_back(fmt::format("[gnuplot script]({})", f.script));
    fmt::format_to(o, " {}.\n\n", fmt::join(links, " · "));
    if (f.png.empty()) md += "Not drawn (see the warnings).\n\n";
  }
  if (!gnuplot_found && !figures.empty()) {
    md +=
        "gnuplot was not found on PATH, so the figures were not drawn; install gnuplot "
        "(Debian: gnuplot-nox) and run `gnuplot NAME.gp` in the figures directory, or run the "
        "report again.\n\n";
  }
  md += report::ExamplesMarkdown(examples);
  if (!warnings.empty()) {
    md += "## Warnings\n\n";
    for (const auto& w : warnings) md += "- " + report::EscapeMarkdownCell(w) + "\n";
    md += "\n";
  }
  return md;
}

constexpr const char* kCss =
    R"(body{font-family:system-ui,-apple-system,"Segoe UI",sans-serif;margin:2rem auto;max-width:1200px;padding:0 1rem;color:#222;line-height:1.45}
h1{font-size:1.6rem}h2{border-bottom:1px solid #ddd;padding-bottom:.2rem;margin-top:2rem}h3{font-size:1.05rem}
table{border-collapse:collapse;font-size:.85rem;margin:.5rem 0 1rem}
th,td{border-bottom:1px solid #e4e4e4;padding:.25rem .6rem;text-align:left;vertical-align:top}
th{background:#f4f4f4;position:sticky;top:0}td.num{text-align:right;font-variant-numeric:tabular-nums;white-space:nowrap}
tr.incomplete td{background:#fff4e0}.note{color:#555;font-size:.9rem}.warn{color:#9a3b00}
figure{margin:1rem 0 2rem}figure img{max-width:100%;border:1px solid #eee}figcaption{font-size:.9rem;color:#444}
table.heatcells td{min-width:3.2rem}table.heatcells tr.divider{border-top:2px solid #333}
table.sortable th{cursor:pointer;user-select:none}table.sortable th[aria-sort=ascending]::after{content:" ▲"}
table.sortable th[aria-sort=descending]::after{content:" ▼"}
@media print{body{max-width:none;margin:0}th{position:static}tr,figure{break-inside:avoid}})";

// Sorts a table.sortable by the clicked column (numbers as numbers, a cell's data-sort first;
// "—" and empty cells last), toggling ascending/descending. Inline: the page stays one file.
constexpr const char* kSortScript =
    R"(document.querySelectorAll("table.sortable").forEach(function(t){
var hs=t.tHead.rows[0].cells;for(var i=0;i<hs.length;i++)(function(c,th){th.addEventListener("click",function(){
var asc=th.getAttribute("aria-sort")!=="ascending";for(var k=0;k<hs.length;k++)hs[k].removeAttribute("aria-sort");
th.setAttribute("aria-sort",asc?"ascending":"descending");var b=t.tBodies[0],rows=Array.prototype.slice.call(b.rows);
function key(r){var d=r.cells[c];if(!d)return null;var s=d.getAttribute("data-sort");if(s===null)s=d.textContent;
s=s.trim();if(s===""||s==="—")return null;var n=parseFloat(s);return isNaN(n)?s.toLowerCase():n;}
rows.sort(function(x,y){var a=key(x),z=key(y);if(a===null)return z===null?0:1;if(z===null)return -1;
if(typeof a!==typeof z){a=String(a);z=String(z);}return (a<z?-1:a>z?1:0)*(asc?1:-1);});
rows.forEach(function(r){b.appendChild(r);});});})(i,hs[i]);});)";

std::string AnalysisHtml(const Analysis& a, const std::vector<std::string>& formats) {
  using report::EscapeHtml;
  std::string h;
  if (!a.rankings.empty()) {
    h += "<h2>Rankings across seeds</h2>\n<p class=\"note\">Each seed ranks the configs by the "
         "metric (1 = best; ties share the mean rank; cells: rank (value)). Stability: mean "
         "Spearman ρ between every two seeds' rankings, and Kendall's W.</p>\n";
    for (const auto& r : a.rankings) {
      h += fmt::format("<h3 id=\"{0}\">{0}</h3>\n<p>{1}", EscapeHtml(r.id),
                       EscapeHtml(report::RankingSummary(r)));
      if (Has(formats, "csv")) h += fmt::format(" <a href=\"tables/{}.csv\">csv</a>", r.id);
      h += "</p>\n" + report::RankingHtml(r);
    }
  }
  if (!a.paired.empty()) {
    h += "<h2>Paired comparisons</h2>\n<p class=\"note\">Pairs share the seed and every axis that "
         "neither a nor b names; d = a − b; mean d with its 95% Student-t interval (ddof = 1); "
         "sign test: exact two-sided binomial, ties dropped.";
    if (Has(formats, "csv")) h += " <a href=\"tables/paired.csv\">csv</a>";
    h += "</p>\n" + report::PairedHtml(a.paired);
  }
  return h;
}

std::string HtmlPage(const report::SweepData& data, const ReportOptions& opts, const fs::path& dir,
                     const std::vector<std::string>& formats, const std::vector<StageTable>& tables,
                     const Analysis& analysis, const std::vector<Figure>& figures,
                     const std::vector<report::ShardExamples>& examples,
                     const std::vector<std::string>& warnings) {
  using report::EscapeHtml;
  std::string h;
  auto o = std::back_inserter(h);
  const SweepRow& sw = data.sweep;
  fmt::format_to(o,
                 "<!DOCTYPE html>\n<html lang=\"en\">\n<head>\n<meta charset=\"utf-8\">\n"
                 "<title>seedgrid report: {0}</title>\n<style>\n{1}\n</style>\n</head>\n<body>\n"
                 "<h1>Report: sweep {0}</h1>\n",
                 EscapeHtml(sw.name), kCss);
  fmt::format_to(
      o,
      "<p class=\"note\">Generated {} by seedgrid {} from <code>{}</code>. Sweep created {}, "
      "last updated {}; spec hash <code>{}</code>; git commit <code>{}</code>. "
      "Index: <a href=\"report.md\">report.md</a>.</p>\n",
      NowUtc(), SeedgridVersion(), EscapeHtml(opts.registry_path), EscapeHtml(sw.created),
      EscapeHtml(sw.updated), EscapeHtml(sw.spec_hash.substr(0, 16)), EscapeHtml(sw.git_commit));
  h += "<h2>Shards</h2>\n<table "
       "class=\"sortable\">\n<thead><tr><th>stage</th><th>kind</th><th>shards</th>";
  for (const char* s : kStatuses) fmt::format_to(o, "<th>{}</th>", s);
  h += "</tr></thead>\n<tbody>\n";
  for (const auto& l : StatusByStage(data)) {
    fmt::format_to(o, "<tr><td>{}</td><td>{}</td><td class=\"num\">{}</td>", EscapeHtml(l.stage),
                   EscapeHtml(l.kind), l.total);
    for (const char* s : kStatuses) {
      auto it = l.counts.find(s);
      fmt::format_to(o, "<td class=\"num\">{}</td>", it == l.counts.end() ? 0 : it->second);
    }
    h += "</tr>\n";
  }
  h += "</tbody>\n</table>\n";
  if (!warnings.empty()) {
    h += "<h2>Warnings</h2>\n<ul class=\"warn\">\n";
    for (const auto& w : warnings) h += "<li>" + EscapeHtml(w) + "</li>\n";
    h += "</ul>\n";
  }
  fmt::format_to(o, "<h2>Tables</h2>\n<p class=\"note\">{}</p>\n",
                 EscapeHtml(report::StatsConventions()));
  for (const auto& t : tables) {
    fmt::format_to(o, "<h3 id=\"table-{0}\">{0}</h3>\n<p>{1}.", EscapeHtml(t.id),
                   EscapeHtml(report::TableSummary(t)));
    if (t.metrics.empty()) {
      h += " No metric recorded yet.</p>\n";
      continue;
    }
    std::vector<std::string> links;
    for (const char* f : {"md", "tex", "csv"}) {
      if (Has(formats, f))
        links.push_back(fmt::format("<a href=\"tables/{}.{}\">{}</a>", EscapeHtml(t.id), f, f));
    }
    if (!links.empty()) fmt::format_to(o, " Files: {}.", fmt::join(links, " · "));
    h += "</p>\n";
    h += report::TableHtml(t);
    if (t.incomplete_groups())
      h += "<p class=\"warn\">Incomplete groups:</p>\n<ul>\n" + IncompleteList(t, true) + "</ul>\n";
  }
  h += AnalysisHtml(analysis, formats);
  h += "<h2>Figures</h2>\n";
  if (figures.empty())
    h += opts.figures ? "<p>No figure applies to this sweep's kinds and data.</p>\n"
                      : "<p>Figures were not requested.</p>\n";
  for (const auto& f : figures) {
    h += "<figure>\n";
    if (!f.png.empty()) {
      // The image opens full-size (the SVG, else the PNG) in a new tab.
      fmt::format_to(o,
                     "<a href=\"{}\" target=\"_blank\" title=\"open full size\"><img alt=\"{}\" "
                     "src=\"data:image/png;base64,{}\"></a>\n",
                     f.svg.empty() ? f.png : f.svg, EscapeHtml(f.title),
                     Base64(ReadBytes(dir / f.png)));
    } else {
      h += "<p class=\"warn\">Not drawn (see the warnings).</p>\n";
    }
    fmt::format_to(o, "<figcaption><b>{}.</b> {} ", EscapeHtml(f.title), EscapeHtml(f.caption));
    if (!f.svg.empty())
      fmt::format_to(o, "<a href=\"{}\">SVG</a> · <a href=\"{}\">PNG</a> · ", f.svg, f.png);
    if (!f.cells_csv.empty()) fmt::format_to(o, "<a href=\"{}\">cells CSV</a> · ", f.cells_csv);
    fmt::format_to(o, "<a href=\"{}\">data</a> · <a href=\"{}\">gnuplot script</a></figcaption>\n",
                   f.data, f.script);
    if (!f.cells_html.empty()) {
      h += "<details class=\"cells\"><summary>Cells (hover a cell for its n and 95% "
           "CI)</summary>\n" +
           f.cells_html + "</details>\n";
    }
    h += "</figure>\n";
  }
  h += report::ExamplesHtml(examples);
  fmt::format_to(o, "<script>\n{}\n</script>\n</body>\n</html>\n", kSortScript);
  return h;
}

std::string DefaultOutDir(const report::SweepData& data) {
  fs::path out(data.sweep.out_dir);
  fs::path base = out.is_absolute() ? out : fs::path(data.registry_dir);
  return (base / data.sweep.name / "report").string();
}

// The tables the report shows, each with a file-safe id unique in the report.
std::vector<StageTable> BuildTables(const report::SweepData& data, const ReportOptions& opts,
                                    const ReportSpec& section, std::vector<std::string>& problems) {
  std::vector<StageTable> tables;
  std::map<std::string, int> ids;
  for (const auto& req : PlanTables(data, opts, section, problems)) {
    StageTable t = report::BuildTable(data, req, problems);
    if (int n = ++ids[t.stage]; n > 1) t.id = fmt::format("{}-{}", t.stage, n);
    for (char& ch : t.id) {
      if (!std::isalnum(static_cast<unsigned char>(ch)) && ch != '-' && ch != '_' && ch != '.')
        ch = '_';
    }
    tables.push_back(std::move(t));
  }
  return tables;
}

bool IsPlot(const std::string& type) {
  return std::find(kReportPlotTypes.begin(), kReportPlotTypes.end(), type) !=
         kReportPlotTypes.end();
}

// The spec's plot figures for this report (those of --stage only, when given); a plot naming a
// stage the sweep does not have is a problem.
std::vector<ReportFigureSpec> RequestPlots(const report::SweepData& data, const ReportOptions& opts,
                                           const ReportSpec& section,
                                           std::vector<std::string>& problems) {
  std::vector<ReportFigureSpec> out;
  if (!opts.figures || !section.figures) return out;
  for (const auto& f : *section.figures) {
    if (!IsPlot(f.type)) continue;
    if (!data.FindStage(f.stage)) {
      problems.push_back(
          fmt::format("spec report section (line {}): figure {} names unknown "
                      "stage '{}'",
                      f.line, f.type, f.stage));
    } else if (opts.stage.empty() || f.stage == opts.stage) {
      out.push_back(f);
    }
  }
  return out;
}

// The figures asked for: the spec's report section, else every stage's kind defaults.
std::vector<FigureRequest> RequestFigures(const report::SweepData& data, const ReportOptions& opts,
                                          const ReportSpec& section,
                                          std::vector<std::string>& problems) {
  std::vector<FigureRequest> out;
  if (!opts.figures) return out;
  if (!section.figures) {
    for (auto& f : report::DefaultFigures(data)) {
      if (opts.stage.empty() || f.stage == opts.stage) out.push_back(f);
    }
    return out;
  }
  for (const auto& f : *section.figures) {
    if (IsPlot(f.type)) continue;  // FigureOptions::plots
    if (!f.stage.empty() && !data.FindStage(f.stage)) {
      problems.push_back(
          fmt::format("spec report section: figure {} names unknown stage '{}'", f.type, f.stage));
    }
    if (opts.stage.empty() || f.stage.empty() || f.stage == opts.stage) {
      out.push_back({f.type, f.stage.empty() ? opts.stage : f.stage, false});
    }
  }
  return out;
}

void WriteTables(const fs::path& dir, const std::vector<StageTable>& tables,
                 const std::vector<std::string>& formats, const std::string& sweep) {
  fs::create_directories(dir / "tables");
  for (const auto& t : tables) {
    if (t.metrics.empty()) continue;
    if (Has(formats, "md")) {
      WriteFile(dir / "tables" / (t.id + ".md"),
                fmt::format("# {}\n\n{}.\n\n{}\n\n{}", t.id, report::TableSummary(t),
                            report::StatsConventions(), report::TableMarkdown(t)));
    }
    if (Has(formats, "tex")) WriteFile(dir / "tables" / (t.id + ".tex"), report::TableLatex(t));
    if (Has(formats, "csv"))
      WriteFile(dir / "tables" / (t.id + ".csv"), report::TableCsv(t, sweep));
  }
}

void WriteAnalysis(const fs::path& dir, const Analysis& a, const std::vector<std::string>& formats,
                   const std::string& sweep) {
  for (const auto& r : a.rankings) {
    if (Has(formats, "md"))
      WriteFile(dir / "tables" / (r.id + ".md"),
                fmt::format("# {}\n\n{}\n\n{}", r.id, report::RankingSummary(r),
                            report::RankingMarkdown(r)));
    if (Has(formats, "csv"))
      WriteFile(dir / "tables" / (r.id + ".csv"), report::RankingCsv(r, sweep));
  }
  if (a.paired.empty()) return;
  if (Has(formats, "md"))
    WriteFile(dir / "tables" / "paired.md",
              "# Paired comparisons\n\n" + report::PairedMarkdown(a.paired));
  if (Has(formats, "csv"))
    WriteFile(dir / "tables" / "paired.csv", report::PairedCsv(a.paired, sweep));
}

}  // namespace

ReportResult WriteReport(const ReportOptions& in) {
  ReportOptions opts = in;
  if (opts.registry_path.empty()) opts.registry_path = "runs/registry.sqlite";
  if (opts.sweep.empty() && !opts.compare.empty()) {  // the CLI's positional sweeps
    opts.sweep = opts.compare.front();
    opts.compare.erase(opts.compare.begin());
  }
  if (!opts.compare.empty()) return WriteCompare(opts);
  std::vector<std::string> problems, warnings;
  for (const auto& f : opts.formats) {
    if (!Has(kFormats, f)) {
      problems.push_back(
          fmt::format("unknown format '{}' (accepted: {})", f, fmt::join(kFormats, ", ")));
    }
  }
  Registry registry(opts.registry_path, Registry::Mode::kReadOnly);
  report::SweepData data =
      report::LoadSweep(registry, opts.sweep, opts.kinds ? *opts.kinds : AllKinds());
  const ReportSpec section = StoredReportSection(data, problems);
  std::vector<std::string> formats = !opts.formats.empty()      ? opts.formats
                                     : !section.formats.empty() ? section.formats
                                                                : kFormats;

  // 1. Tables and figure requests (every problem collected before anything is written).
  std::vector<StageTable> tables = BuildTables(data, opts, section, problems);
  std::vector<FigureRequest> figure_requests = RequestFigures(data, opts, section, problems);
  report::FigureOptions figure_options{report::ParseUncertainty(section.uncertainty),
                                       RequestPlots(data, opts, section, problems)};
  Analysis analysis;
  if (opts.metrics.empty() && opts.group_by.empty()) {
    analysis.rankings = report::BuildRankings(data, section.rankings, problems);
    analysis.paired = report::BuildPaired(data, section.paired, problems);
  }
  if (!problems.empty()) {
    std::string text = problems.size() == 1 ? problems[0]
                                            : fmt::format("{} problems:\n  {}", problems.size(),
                                                          fmt::join(problems, "\n  "));
    throw UsageError(text);
  }

  // 2. Files.
  fs::path dir = fs::absolute(opts.out_dir.empty() ? DefaultOutDir(data) : opts.out_dir);
  WriteTables(dir, tables, formats, data.sweep.name);
  WriteAnalysis(dir, analysis, formats, data.sweep.name);

  // 3. Figures.
  std::vector<Figure> figures;
  std::string gnuplot;
  if (!figure_requests.empty() || !figure_options.plots.empty()) {
    gnuplot = report::FindOnPath("gnuplot");
    if (gnuplot.empty()) {
      warnings.push_back(fmt::format(
          "gnuplot not found on PATH: figures not drawn (install gnuplot, Debian package "
          "gnuplot-nox); their data and gnuplot scripts are in {}, tables are written",
          (dir / "figures").string()));
    }
    figures =
        report::MakeFigures(data, figure_requests, dir.string(), gnuplot, warnings, figure_options);
  }

  // 4. Decoded examples of text harvests (read from the shard files).
  const auto examples = report::LoadExamples(data, opts.stage, warnings);

  // 5. Index pages.
  ReportResult result;
  result.dir = dir.string();
  result.index_md = (dir / "report.md").string();
  WriteFile(result.index_md, MarkdownIndex(data, opts, formats, tables, analysis, figures, examples,
                                           warnings, figures.empty() || !gnuplot.empty()));
  if (Has(formats, "html")) {
    result.html = (dir / "report.html").string();
    WriteFile(result.html,
              HtmlPage(data, opts, dir, formats, tables, analysis, figures, examples, warnings));
  }
  result.tables = std::move(tables);
  result.figures = std::move(figures);
  result.rankings = std::move(analysis.rankings);
  result.paired = std::move(analysis.paired);
  result.warnings = std::move(warnings);
  return result;
}

int RunReport(const ReportOptions& opts) {
  ReportResult r = WriteReport(opts);
  for (const auto& w : r.warnings) fmt::print(stderr, "warning: {}\n", w);
  size_t incomplete = 0, drawn = 0;
  for (const auto& t : r.tables) incomplete += t.incomplete_groups();
  for (const auto& f : r.figures) drawn += !f.png.empty();
  fmt::print("report: {}\n", r.index_md);
  if (!r.html.empty()) fmt::print("report: {}\n", r.html);
  fmt::print("  {} table{}, {} figure{}{}\n", r.tables.size(), r.tables.size() == 1 ? "" : "s",
             drawn, drawn == 1 ? "" : "s",
             incomplete ? fmt::format("; {} group{} incomplete (missing seeds listed)", incomplete,
                                      incomplete == 1 ? "" : "s")
                        : "");
  return exit_code::kOk;
}

}  // namespace seedgrid

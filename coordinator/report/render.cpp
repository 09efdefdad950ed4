#include "coordinator/report/render.h"

#include <charconv>
#include <cmath>
#include <iterator>

#include <fmt/format.h>
#include <fmt/ranges.h>

namespace seedgrid::report {

std::string_view StatsConventions() {
  return "n = present/expected seeds; std = sample standard deviation (ddof = 1); "
         "sem = std/√n; 95% CI = mean ± t(0.975, n−1)·sem (Student t); "
         "sign = fraction of seeds whose sign equals the mean's; "
         "an incomplete group (a seed failed, still running or without the metric) is flagged "
         "and its missing seeds are listed.";
}

std::string FormatNumber(double v) {
  if (std::isnan(v)) return "—";
  return fmt::format("{:.4g}", v);
}

namespace {

std::string Full(double v) { return std::isnan(v) ? "" : fmt::format("{}", v); }

std::string Percent(double v) { return std::isnan(v) ? "—" : fmt::format("{:.0f}%", 100 * v); }

std::string SeedCount(const Cell& c) { return fmt::format("{}/{}", c.summary.n, c.expected); }

std::string MeanStd(const Cell& c, std::string_view pm) {
  if (c.summary.n == 0) return "—";
  if (c.summary.n == 1) return FormatNumber(c.summary.mean);
  return FormatNumber(c.summary.mean) + std::string(pm) + FormatNumber(c.summary.std);
}

std::string Interval(const Cell& c) {
  if (c.summary.n < 2) return "—";
  return fmt::format("[{}, {}]", FormatNumber(c.summary.ci_low), FormatNumber(c.summary.ci_high));
}

}  // namespace

std::string EscapeLatex(std::string_view s) {
  std::string out;
  out.reserve(s.size());
  for (char ch : s) {
    switch (ch) {
      case '&':
      case '%':
      case '$':
      case '#':
      case '_':
      case '{':
      case '}':
        out += '\\';
        out += ch;
        break;
      case '~': out += "\\textasciitilde{}"; break;
      case '^': out += "\\textasciicircum{}"; break;
      case '\\': out += "\\textbackslash{}"; break;
      default: out += ch;
    }
  }
  return out;
}

std::string EscapeHtml(std::string_view s) {
  std::string out;
  out.reserve(s.size());
  for (char ch : s) {
    switch (ch) {
      case '&': out += "&amp;"; break;
      case '<': out += "&lt;"; break;
      case '>': out += "&gt;"; break;
      case '"': out += "&quot;"; break;
      case '\'': out += "&#39;"; break;
      default: out += ch;
    }
  }
  return out;
}

std::string EscapeMarkdownCell(std::string_view s) {
  std::string out;
  out.reserve(s.size());
  for (char ch : s) {
    switch (ch) {
      case '&': out += "&amp;"; break;
      case '<': out += "&lt;"; break;
      case '>': out += "&gt;"; break;
      case '\\': out += "\\\\"; break;
      case '|': out += "\\|"; break;
      case '\n':
      case '\r': out += ' '; break;
      default: out += ch;
    }
  }
  return out;
}

namespace {

// "1", "-0.5", "+2e-3", "inf", "-nan": a number as fmt or a person writes it.
bool IsNumber(std::string_view s) {
  if (!s.empty() && s[0] == '+') s.remove_prefix(1);  // from_chars takes '-' only
  if (s.empty() || s[0] == '+') return false;
  double v = 0;
  auto r = std::from_chars(s.data(), s.data() + s.size(), v);
  return r.ec == std::errc() && r.ptr == s.data() + s.size();
}

// A cell a spreadsheet could run: see CsvField.
bool RunsAsFormula(std::string_view s) {
  if (s.empty() || std::string_view("=+-@\t\r").find(s[0]) == std::string_view::npos) return false;
  for (size_t start = 0;;) {
    size_t end = s.find(';', start);
    if (!IsNumber(s.substr(start, end == std::string_view::npos ? end : end - start))) return true;
    if (end == std::string_view::npos) return false;
    start = end + 1;
  }
}

}  // namespace

std::string CsvField(std::string_view s) {
  std::string text = RunsAsFormula(s) ? "'" + std::string(s) : std::string(s);
  if (text.find_first_of(",\"\r\n") == std::string::npos) return text;
  std::string out = "\"";
  for (char ch : text) {
    if (ch == '"') out += '"';
    out += ch;
  }
  return out + '"';
}

std::string MissingText(const Cell& c) {
  std::vector<std::string> parts;
  for (const auto& m : c.missing) parts.push_back(fmt::format("seed {} {}", m.seed, m.reason));
  return fmt::format("{}", fmt::join(parts, "; "));
}

std::string TableSummary(const StageTable& t) {
  size_t shards = 0;
  std::vector<std::string> statuses;
  for (const auto& [status, n] : t.status_counts) {
    shards += n;
    statuses.push_back(fmt::format("{} {}", n, status));
  }
  std::string s =
      fmt::format("stage {} ({}): {} group{}, {} {}shard{} ({})", t.stage, t.kind, t.groups.size(),
                  t.groups.size() == 1 ? "" : "s", shards, t.reduce_only ? "reduce " : "",
                  shards == 1 ? "" : "s", fmt::join(statuses, ", "));
  if (size_t bad = t.incomplete_groups()) {
    s += fmt::format("; {} group{} INCOMPLETE", bad, bad == 1 ? "" : "s");
  }
  return s;
}

std::string TableMarkdown(const StageTable& t) {
  std::string out;
  auto o = std::back_inserter(out);
  for (const auto& k : t.keys) fmt::format_to(o, "| {} ", EscapeMarkdownCell(k));
  out += "| metric | n | mean ± std | sem | 95% CI | min | max | sign | missing |\n";
  for (size_t i = 0; i < t.keys.size(); ++i) out += "|---";
  out += "|---|--:|--:|--:|:-:|--:|--:|--:|---|\n";
  for (const auto& g : t.groups) {
    for (size_t m = 0; m < t.metrics.size(); ++m) {
      const Cell& c = g.cells[m];
      for (const auto& v : g.key) fmt::format_to(o, "| {} ", EscapeMarkdownCell(KeyText(v)));
      fmt::format_to(o, "| {} | {}{} | {} | {} | {} | {} | {} | {} | {} |\n",
                     EscapeMarkdownCell(t.metrics[m]), SeedCount(c), c.complete() ? "" : " ⚠",
                     MeanStd(c, " ± "), FormatNumber(c.summary.sem), Interval(c),
                     FormatNumber(c.summary.min), FormatNumber(c.summary.max),
                     Percent(c.summary.sign_agreement), EscapeMarkdownCell(MissingText(c)));
    }
  }
  return out;
}

std::string TableLatex(const StageTable& t) {
  std::string out;
  auto o = std::back_inserter(out);
  out += "% seedgrid report table; needs \\usepackage{booktabs}\n";
  out += "\\begin{table}[htbp]\n\\centering\n\\small\n";
  fmt::format_to(o,
                 "\\caption{{{}. n: present/expected seeds ($^\\dagger$: incomplete group, "
                 "missing seeds listed); std: sample standard deviation (ddof = 1); "
                 "sem = std$/\\sqrt{{n}}$; 95\\% CI: Student-$t$ interval; sign: fraction of "
                 "seeds with the sign of the mean.}}\n",
                 EscapeLatex(TableSummary(t)));
  std::string label;
  for (char ch : t.id) label += std::isalnum(static_cast<unsigned char>(ch)) ? ch : '-';
  fmt::format_to(o, "\\label{{tab:seedgrid-{}}}\n", label);
  fmt::format_to(o, "\\begin{{tabular}}{{{}lrrrcrrrl}}\n\\toprule\n",
                 std::string(t.keys.size(), 'l'));
  for (const auto& k : t.keys) fmt::format_to(o, "{} & ", EscapeLatex(k));
  out +=
      "metric & $n$ & mean $\\pm$ std & sem & 95\\% CI & min & max & sign & missing \\\\\n"
      "\\midrule\n";
  for (size_t gi = 0; gi < t.groups.size(); ++gi) {
    const Group& g = t.groups[gi];
    if (gi > 0) out += t.metrics.size() > 1 ? "\\midrule\n" : "";
    for (size_t m = 0; m < t.metrics.size(); ++m) {
      const Cell& c = g.cells[m];
      for (const auto& v : g.key) fmt::format_to(o, "{} & ", m == 0 ? EscapeLatex(KeyText(v)) : "");
      auto math = [](const std::string& s) { return s == "—" ? std::string("--") : "$" + s + "$"; };
      fmt::format_to(o, "{} & {}{} & {} & {} & {} & {} & {} & {} & {} \\\\\n",
                     EscapeLatex(t.metrics[m]), SeedCount(c), c.complete() ? "" : "$^\\dagger$",
                     math(MeanStd(c, " \\pm ")), math(FormatNumber(c.summary.sem)),
                     math(Interval(c)), math(FormatNumber(c.summary.min)),
                     math(FormatNumber(c.summary.max)),
                     EscapeLatex(Percent(c.summary.sign_agreement)), EscapeLatex(MissingText(c)));
    }
  }
  out += "\\bottomrule\n\\end{tabular}\n\\end{table}\n";
  return out;
}

std::string TableCsv(const StageTable& t, const std::string& sweep) {
  static const std::vector<std::string> kFixed = {
      "sweep", "stage", "metric",         "n",     "expected", "complete",
      "mean",  "std",   "ddof",           "sem",   "ci95_low", "ci95_high",
      "min",   "max",   "sign_agreement", "seeds", "values",   "missing"};
  std::string out;
  auto o = std::back_inserter(out);
  out += "sweep,stage";
  for (const auto& k : t.keys) {
    bool clash = std::find(kFixed.begin(), kFixed.end(), k) != kFixed.end();
    fmt::format_to(o, ",{}", CsvField(clash ? fmt::format("axis:{}", k) : k));
  }
  out +=
      ",metric,n,expected,complete,mean,std,ddof,sem,ci95_low,ci95_high,min,max,"
      "sign_agreement,seeds,values,missing\r\n";
  const std::string prefix = CsvField(sweep) + "," + CsvField(t.stage);
  for (const auto& g : t.groups) {
    std::string keys;
    for (const auto& v : g.key) {
      keys += ',';
      keys += CsvField(v.is_null() ? "" : KeyText(v));
    }
    for (size_t m = 0; m < t.metrics.size(); ++m) {
      const Cell& c = g.cells[m];
      const Summary& s = c.summary;
      fmt::format_to(
          o, "{}{},{},{},{},{},{},{},1,{},{},{},{},{},{},{},{},{}\r\n", prefix, keys,
          CsvField(t.metrics[m]), s.n, c.expected, c.complete() ? "true" : "false", Full(s.mean),
          Full(s.std), Full(s.sem), Full(s.ci_low), Full(s.ci_high), Full(s.min), Full(s.max),
          Full(s.sign_agreement), CsvField(fmt::format("{}", fmt::join(c.seeds, ";"))),
          CsvField(fmt::format("{}", fmt::join(c.values, ";"))), CsvField(MissingText(c)));
    }
  }
  return out;
}

std::string TableHtml(const StageTable& t) {
  std::string out;
  auto o = std::back_inserter(out);
  out += "<table class=\"stats sortable\">\n<thead><tr>";
  for (const auto& k : t.keys) fmt::format_to(o, "<th>{}</th>", EscapeHtml(k));
  out +=
      "<th>metric</th><th>n</th><th>mean ± std</th><th>sem</th><th>95% CI</th><th>min</th>"
      "<th>max</th><th>sign</th><th>missing</th></tr></thead>\n<tbody>\n";
  for (const auto& g : t.groups) {
    for (size_t m = 0; m < t.metrics.size(); ++m) {
      const Cell& c = g.cells[m];
      out += c.complete() ? "<tr>" : "<tr class=\"incomplete\">";
      for (const auto& v : g.key) fmt::format_to(o, "<td>{}</td>", EscapeHtml(KeyText(v)));
      fmt::format_to(o,
                     "<td>{}</td><td class=\"num\">{}{}</td><td class=\"num\">{}</td>"
                     "<td class=\"num\">{}</td><td class=\"num\">{}</td><td class=\"num\">{}</td>"
                     "<td class=\"num\">{}</td><td class=\"num\">{}</td><td>{}</td></tr>\n",
                     EscapeHtml(t.metrics[m]), SeedCount(c), c.complete() ? "" : " ⚠",
                     MeanStd(c, " ± "), FormatNumber(c.summary.sem), Interval(c),
                     FormatNumber(c.summary.min), FormatNumber(c.summary.max),
                     Percent(c.summary.sign_agreement), EscapeHtml(MissingText(c)));
    }
  }
  out += "</tbody>\n</table>\n";
  return out;
}

}  // namespace seedgrid::report

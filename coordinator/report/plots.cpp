#include "coordinator/report/plots.h"

#include <algorithm>
#include <charconv>
#include <cmath>
#include <filesystem>
#include <fstream>
#include <map>
#include <set>

#include <fmt/format.h>
#include <fmt/ranges.h>

#include "coordinator/report/gnuplot.h"
#include "coordinator/report/pareto.h"
#include "coordinator/report/render.h"

namespace seedgrid::report {

namespace fs = std::filesystem;

std::vector<std::string> MatchPattern(const std::string& pattern,
                                      const std::vector<std::string>& available,
                                      std::vector<std::string>* star) {
  std::vector<std::string> out;
  const size_t at = pattern.find('*');
  for (const auto& name : available) {
    if (at == std::string::npos) {
      if (name == pattern) out.push_back(name);
      continue;
    }
    const std::string_view pre(pattern.data(), at), post(pattern.data() + at + 1);
    if (name.size() < pre.size() + post.size() || !name.starts_with(pre) || !name.ends_with(post))
      continue;
    out.push_back(name);
    if (star) star->push_back(name.substr(pre.size(), name.size() - pre.size() - post.size()));
  }
  return out;
}

namespace {

std::optional<double> ParseNumber(std::string_view s) {
  double v = 0;
  auto r = std::from_chars(s.data(), s.data() + s.size(), v);
  if (r.ec != std::errc() || r.ptr != s.data() + s.size()) return std::nullopt;
  return v;
}

std::optional<double> NumberOf(const Json& j) {
  if (j.is_number()) return j.get<double>();
  if (j.is_string()) return ParseNumber(j.get<std::string>());
  return std::nullopt;
}

// The band or error bar of a cell: the 95% t-interval, or mean ± std; none below two seeds.
std::pair<double, double> Bar(const Summary& s, Uncertainty u) {
  if (s.n < 2) return {s.mean, s.mean};
  if (u == Uncertainty::kStd) return {s.mean - s.std, s.mean + s.std};
  return {s.ci_low, s.ci_high};
}

void WriteText(const fs::path& path, const std::string& text) {
  std::ofstream out(path, std::ios::binary);
  out << text;
  if (!out) throw std::runtime_error(fmt::format("cannot write {}", path.string()));
}

Figure Write(const fs::path& dir, const std::string& id, const std::string& title,
             const std::string& caption, const std::string& dat, const std::string& script) {
  fs::create_directories(dir);
  WriteText(dir / (id + ".dat"), dat);
  WriteText(dir / (id + ".gp"), script);
  Figure f;
  f.id = id;
  f.title = title;
  f.caption = caption;
  f.data = "figures/" + id + ".dat";
  f.script = "figures/" + id + ".gp";
  return f;
}

// A line's or bar's legend: "adapter=lora, lora.rank=4" over the key columns that tell them
// apart (as the tables label their groups).
std::string Label(const StageTable& t, const Group& g, const std::vector<size_t>& columns) {
  std::vector<std::string> parts;
  for (size_t c : columns) parts.push_back(t.keys[c] + "=" + KeyText(g.key[c]));
  return parts.empty() ? "all" : fmt::format("{}", fmt::join(parts, ", "));
}

// One plot figure: its metrics, its groups and what it draws.
class Plotter {
 public:
  Plotter(const SweepData& data, const ReportFigureSpec& spec, const std::string& report_dir,
          Uncertainty u, std::vector<std::string>& warnings)
      : data_(data), spec_(spec), dir_(report_dir), u_(u), warnings_(warnings) {}

  std::optional<Figure> Run() {
    const std::vector<std::string> available = StageMetrics(data_, spec_.stage);
    for (const auto& y : spec_.y) {
      for (auto& m : MatchPattern(y, available, &star_)) metrics_.push_back(m);
    }
    if (metrics_.empty()) {
      return Fail(
          fmt::format("no metric of stage '{}' matches {}", spec_.stage, fmt::join(spec_.y, ", ")));
    }
    id_ = FileStem(fmt::format("{}-{}-{}{}", spec_.stage, spec_.type,
                               spec_.y.size() == 1 ? spec_.y[0] : spec_.y[0] + "-etc",
                               spec_.x.empty() ? "" : "-" + spec_.x));
    if (spec_.type == "scatter") return Scatter();
    if (spec_.type == "heatmap") return Heat();
    return spec_.type == "line" ? Line() : Bars();
  }

 private:
  std::optional<Figure> Fail(const std::string& why) {
    warnings_.push_back(
        fmt::format("figure {} of stage {}: {}; left out", spec_.type, spec_.stage, why));
    return std::nullopt;
  }

  // The table of `metrics` grouped by the spec's group_by (default: every axis but the seed and
  // x) and then x; `series` gets the columns of the key that name a line, `xcol` x's column.
  StageTable Table(const std::vector<std::string>& metrics, bool with_x) {
    std::vector<std::string> problems, keys = spec_.group_by;
    if (keys.empty()) {
      keys = BuildTable(data_, {spec_.stage, {metrics[0]}, {}}, problems).keys;
      std::erase(keys, spec_.x);
    }
    if (with_x) keys.push_back(spec_.x);
    StageTable t = BuildTable(data_, {spec_.stage, metrics, keys}, problems);
    for (const auto& p : problems) Fail(p);
    series_.clear();
    for (size_t c = 0; c + (with_x ? 1 : 0) < t.keys.size(); ++c) series_.push_back(c);
    return t;
  }

  std::string Title(const std::string& made) const {
    return spec_.title.empty() ? made : spec_.title;
  }
  std::string BandCaption() const {
    return fmt::format(" Bars and bands: {} over seeds; n per point in the data file.",
                       UncertaintyText(u_));
  }

  std::optional<Figure> Line();
  std::optional<Figure> Bars();
  std::optional<Figure> Scatter();
  std::optional<Figure> Heat();

  const SweepData& data_;
  const ReportFigureSpec& spec_;
  std::string dir_;
  Uncertainty u_;
  std::vector<std::string>& warnings_;
  std::vector<std::string> metrics_, star_;
  std::vector<size_t> series_;
  std::string id_;
};

std::optional<Figure> Plotter::Line() {
  struct Point {
    double x;
    Summary s;
  };
  std::map<std::string, std::vector<Point>> lines;  // label -> points
  std::vector<std::string> order;
  auto add = [&](const std::string& label, double x, const Summary& s) {
    if (!lines.count(label)) order.push_back(label);
    lines[label].push_back({x, s});
  };
  if (spec_.x.empty()) {  // x = what the '*' of the one y pattern matched
    std::vector<double> xs;
    for (const auto& s : star_) {
      auto v = ParseNumber(s);
      if (!v) return Fail(fmt::format("'{}' (the '*' of {}) is not a number", s, spec_.y[0]));
      xs.push_back(*v);
    }
    const StageTable t = Table(metrics_, false);
    for (const auto& g : t.groups) {
      for (size_t m = 0; m < metrics_.size(); ++m)
        add(Label(t, g, series_), xs[m], g.cells[m].summary);
    }
  } else {
    const StageTable t = Table(metrics_, true);
    for (const auto& g : t.groups) {
      auto x = NumberOf(g.key.back());
      if (!x) return Fail(fmt::format("{} = {} is not a number", spec_.x, KeyText(g.key.back())));
      for (size_t m = 0; m < metrics_.size(); ++m) {
        std::string label = Label(t, g, series_);
        if (metrics_.size() > 1) label = series_.empty() ? metrics_[m] : label + ": " + metrics_[m];
        add(label, *x, g.cells[m].summary);
      }
    }
  }
  std::string dat, body;
  std::vector<std::string> bands, curves;
  for (size_t i = 0; i < order.size(); ++i) {
    auto& pts = lines[order[i]];
    std::sort(pts.begin(), pts.end(), [](const Point& a, const Point& b) { return a.x < b.x; });
    dat += fmt::format("# {}\n# x mean low high n\n", order[i]);
    for (const auto& p : pts) {
      auto [lo, hi] = Bar(p.s, u_);
      dat += fmt::format("{} {} {} {} {}\n", Num(p.x), Num(p.s.mean), Num(lo), Num(hi), p.s.n);
    }
    dat += "\n\n";
    bands.push_back(
        fmt::format("'{}.dat' index {} using 1:3:4 with filledcurves fc rgb '{}' fs "
                    "transparent solid 0.10 noborder notitle",
                    id_, i, Color(i)));
    curves.push_back(
        fmt::format("'{}.dat' index {} using 1:2:3:4 with yerrorlines lw 2 pt {} "
                    "ps 0.9 lc rgb '{}' dt {} title {}",
                    id_, i, PointType(i), Color(i), Dash(i), Q(order[i])));
  }
  bands.insert(bands.end(), curves.begin(), curves.end());
  const std::string xlabel = !spec_.xlabel.empty() ? spec_.xlabel
                             : !spec_.x.empty()    ? spec_.x
                                                   : "'*' of " + spec_.y[0];
  const std::string ylabel =
      !spec_.ylabel.empty() ? spec_.ylabel : fmt::format("{}", fmt::join(spec_.y, ", "));
  const std::string title =
      Title(fmt::format("{} against {}, stage {}", ylabel, xlabel, spec_.stage));
  body = fmt::format(
      "  set title {}\n  set xlabel {}\n  set ylabel {}\n  set grid\n  set xzeroaxis lt -1 lc rgb "
      "'#888888'\n  set key outside right top Left reverse\n  set offsets graph 0.03, graph 0.03, "
      "0, 0\n  plot {}\n",
      Q(title), Q(xlabel), Q(ylabel), fmt::join(bands, ", \\\n       "));
  const std::string caption =
      fmt::format("Mean of {} against {}, one line per config ({}).{}", ylabel, xlabel,
                  series_.empty() ? "all shards" : "lines by the other axes", BandCaption());
  return Write(fs::path(dir_) / "figures", id_, title, caption, dat,
               Script(id_, title, 1000, 560, body));
}

std::optional<Figure> Plotter::Bars() {
  const bool by_x = !spec_.x.empty();
  const StageTable t = Table(metrics_, by_x);
  BarsRequest r;  // clusters (x values or metrics) × bars (configs)
  for (const auto& g : t.groups) {
    const std::string bar = Label(t, g, series_);
    for (size_t m = 0; m < metrics_.size(); ++m) {
      std::string cluster = by_x ? KeyText(g.key.back()) : metrics_[m];
      if (by_x && metrics_.size() > 1) cluster += " " + metrics_[m];
      r.Add(cluster, bar, g.cells[m].summary);
    }
  }
  r.id = id_;
  r.ylabel = !spec_.ylabel.empty() ? spec_.ylabel : fmt::format("{}", fmt::join(spec_.y, ", "));
  r.xlabel = !spec_.xlabel.empty() ? spec_.xlabel : by_x ? spec_.x : "metric";
  // Without x the clusters are the metrics and the bars the configs: name what the bars compare.
  const std::string by = by_x ? r.xlabel
                         : spec_.group_by.empty()
                             ? std::string("config")
                             : fmt::format("{}", fmt::join(spec_.group_by, ", "));
  r.title = Title(fmt::format("{} by {}, stage {}", r.ylabel, by, spec_.stage));
  r.caption =
      fmt::format("Mean of {} per {}, one bar per config.{}", r.ylabel, r.xlabel, BandCaption());
  return BarsFigure(r, u_, dir_);
}

std::optional<Figure> Plotter::Scatter() {
  const std::string& ym = metrics_[0];
  std::vector<std::string> problems, keys = spec_.group_by;
  StageTable t = BuildTable(data_, {spec_.stage, {spec_.x, ym}, keys}, problems);
  if (!problems.empty()) return Fail(problems[0]);
  std::string dat;
  std::vector<std::string> parts;
  std::vector<double> mean_x, mean_y;  // per config, for the front
  size_t block = 0;
  for (size_t gi = 0; gi < t.groups.size(); ++gi) {
    const Group& g = t.groups[gi];
    // Pairs: the x and y values of the same shard (seeds present in both cells).
    const Cell &cx = g.cells[0], &cy = g.cells[1];
    std::vector<double> xs, ys;
    dat += fmt::format("# {}: per seed\n# x y seed\n", g.label);
    for (size_t i = 0; i < cx.seeds.size(); ++i) {
      for (size_t j = 0; j < cy.seeds.size(); ++j) {
        if (cy.seeds[j] != cx.seeds[i]) continue;
        dat += fmt::format("{} {} {}\n", Num(cx.values[i]), Num(cy.values[j]), cx.seeds[i]);
        xs.push_back(cx.values[i]), ys.push_back(cy.values[j]);
        break;
      }
    }
    const Summary sx = Summarize(xs), sy = Summarize(ys);
    auto [xlo, xhi] = Bar(sx, u_);
    auto [ylo, yhi] = Bar(sy, u_);
    dat += fmt::format("\n\n# {}: mean\n# x y xlow xhigh ylow yhigh n\n{} {} {} {} {} {} {}\n\n\n",
                       g.label, Num(sx.mean), Num(sy.mean), Num(xlo), Num(xhi), Num(ylo), Num(yhi),
                       sx.n);
    parts.push_back(fmt::format(
        "'{}.dat' index {} using 1:2 with points pt {} ps 1.1 lc rgb '{}' "
        "title {}",
        id_, block, PointType(gi), Color(gi), Q(fmt::format("{} (n={})", g.label, xs.size()))));
    parts.push_back(
        fmt::format("'{}.dat' index {} using 1:2:3:4:5:6 with xyerrorbars pt 6 ps 2 "
                    "lw 2 lc rgb '{}' notitle",
                    id_, block + 1, Color(gi)));
    block += 2;
    mean_x.push_back(sx.mean), mean_y.push_back(sy.mean);
  }
  if (spec_.front) {  // the configs no other config beats on both: lower x and higher y
    dat +=
        fmt::format("# Pareto front of the configs' means (lowest {}, highest {})\n", spec_.x, ym);
    for (size_t i : ParetoFront(mean_x, mean_y))
      dat += fmt::format("{} {}\n", Num(mean_x[i]), Num(mean_y[i]));
    parts.push_back(fmt::format(
        "'{}.dat' index {} using 1:2 with lines lw 2 dt 2 lc rgb '#333333' title 'Pareto front'",
        id_, block));
  }
  const std::string xlabel = spec_.xlabel.empty() ? spec_.x : spec_.xlabel;
  const std::string ylabel = spec_.ylabel.empty() ? ym : spec_.ylabel;
  const std::string title =
      Title(fmt::format("{} against {}, stage {}", ylabel, xlabel, spec_.stage));
  const std::string body = fmt::format(
      "  set title {}\n  set xlabel {}\n  set ylabel {}\n  set grid\n"
      "  set key outside right top Left reverse\n  set offsets graph 0.05, graph 0.05, graph "
      "0.05, graph 0.05\n  plot {}\n",
      Q(title), Q(xlabel), Q(ylabel), fmt::join(parts, ", \\\n       "));
  const std::string caption = fmt::format(
      "{} against {}: one small point per seed (a shard's two metrics), one colour per config; "
      "the large circle is the config's mean with bars of {} in both directions.{}",
      ylabel, xlabel, UncertaintyText(u_),
      spec_.front ? fmt::format(" The dashed line is the Pareto front of the means: the configs "
                                "that no other config beats with a lower {} and a higher {}.",
                                xlabel, ylabel)
                  : "");
  return Write(fs::path(dir_) / "figures", id_, title, caption, dat,
               Script(id_, title, 1000, 600, body));
}

std::optional<Figure> Plotter::Heat() {
  std::vector<std::string> problems, keys = spec_.group_by;
  if (!spec_.x.empty()) keys = {spec_.x};
  StageTable t = BuildTable(data_, {spec_.stage, metrics_, keys}, problems);
  if (!problems.empty()) return Fail(problems[0]);
  const std::string xlabel = !spec_.xlabel.empty() ? spec_.xlabel
                             : t.keys.empty()      ? "config"
                                                   : fmt::format("{}", fmt::join(t.keys, ", "));
  const std::string ylabel = spec_.ylabel.empty() ? "metric" : spec_.ylabel;
  HeatmapRequest r;
  r.id = id_;
  r.title = Title(fmt::format("{} by {}, stage {}", fmt::join(spec_.y, ", "), xlabel, spec_.stage));
  r.caption = fmt::format(
      "Mean over seeds per metric (row) and {} (column); each cell's n and 95% CI (Student t) "
      "are in the cells CSV and on hover in report.html.",
      xlabel);
  r.xlabel = xlabel;
  r.ylabel = ylabel;
  r.zlabel = "mean";
  r.table = &t;
  r.row_labels = metrics_;
  return HeatmapFigure(r, dir_);
}

// Background of a heatmap cell in the HTML table: the gnuplot palettes' end colours, mixed.
std::string CellColour(double v, double lo, double hi) {
  if (!std::isfinite(v)) return "#eeeeee";
  auto mix = [](double f, int r0, int g0, int b0, int r1, int g1, int b1) {
    f = std::clamp(f, 0.0, 1.0);
    return fmt::format("#{:02x}{:02x}{:02x}", static_cast<int>(r0 + f * (r1 - r0)),
                       static_cast<int>(g0 + f * (g1 - g0)), static_cast<int>(b0 + f * (b1 - b0)));
  };
  if (lo < 0 && hi > 0) {
    const double m = std::max(-lo, hi);
    return v >= 0 ? mix(v / m, 0xf7, 0xf7, 0xf7, 0x21, 0x66, 0xac)
                  : mix(-v / m, 0xf7, 0xf7, 0xf7, 0xb2, 0x18, 0x2b);
  }
  const double m = std::max(std::abs(lo), std::abs(hi));
  return mix(m > 0 ? std::abs(v) / m : 0, 0xff, 0xff, 0xff, 0xfc, 0x8d, 0x59);
}

}  // namespace

void BarsRequest::Add(const std::string& cluster, const std::string& bar, const Summary& s) {
  if (std::find(clusters.begin(), clusters.end(), cluster) == clusters.end())
    clusters.push_back(cluster);
  if (std::find(bars.begin(), bars.end(), bar) == bars.end()) bars.push_back(bar);
  cells[{cluster, bar}] = s;
}

Figure BarsFigure(const BarsRequest& r, Uncertainty u, const std::string& report_dir) {
  std::string dat = "# cluster";
  for (const auto& b : r.bars) dat += fmt::format(" | {}: mean low high n", b);
  dat += "\n";
  for (const auto& c : r.clusters) {
    std::string quoted = c;  // a data-file string: double-quoted, no " inside
    std::replace(quoted.begin(), quoted.end(), '"', '\'');
    dat += "\"" + quoted + "\"";
    for (const auto& b : r.bars) {
      auto it = r.cells.find({c, b});
      if (it == r.cells.end()) {
        dat += " NaN NaN NaN 0";
        continue;
      }
      auto [lo, hi] = Bar(it->second, u);
      dat += fmt::format(" {} {} {} {}", Num(it->second.mean), Num(lo), Num(hi), it->second.n);
    }
    dat += "\n";
  }
  std::vector<std::string> parts;
  for (size_t b = 0; b < r.bars.size(); ++b) {
    const size_t col = 2 + 4 * b;
    parts.push_back(fmt::format("'{}.dat' using {}:{}:{}{} title {} lc rgb '{}'", r.id, col,
                                col + 1, col + 2, b == 0 ? ":xtic(1)" : "", Q(r.bars[b]),
                                Color(b)));
  }
  const std::string body = fmt::format(
      "  set title {}\n  set xlabel {}\n  set ylabel {}\n  set grid ytics\n"
      "  set style data histograms\n  set style histogram errorbars gap 1.5 lw 1.5\n"
      "  set style fill solid 0.8 border rgb '#333333'\n  set boxwidth 0.9\n"
      "  set xzeroaxis lt -1 lc rgb '#888888'\n  set key outside right top Left reverse\n"
      // A bar's length is its value: the axis always includes 0 (autoscaled otherwise).
      "  set yrange [*<0:0<*]\n  set datafile missing 'NaN'\n  plot {}\n",
      Q(r.title), Q(r.xlabel), Q(r.ylabel), fmt::join(parts, ", \\\n       "));
  const int width = std::max(800, 300 + 40 * static_cast<int>(r.clusters.size() * r.bars.size()));
  return Write(fs::path(report_dir) / "figures", r.id, r.title, r.caption, dat,
               Script(r.id, r.title, width, 560, body));
}

Figure HeatmapFigure(const HeatmapRequest& r, const std::string& report_dir) {
  const StageTable& t = *r.table;
  std::string dat = "# x=column y=row mean n expected ci95_low ci95_high std (NaN: no value)\n";
  std::string csv = "row,column,mean,n,expected,complete,std,ci95_low,ci95_high,seeds,values\r\n";
  double lo = INFINITY, hi = -INFINITY;
  for (const auto& g : t.groups) {
    for (const auto& c : g.cells) {
      if (c.summary.n) lo = std::min(lo, c.summary.mean), hi = std::max(hi, c.summary.mean);
    }
  }
  if (!std::isfinite(lo)) lo = hi = 0;
  std::string html = "<table class=\"heatcells\">\n<thead><tr><th></th>";
  for (const auto& g : t.groups) html += "<th>" + EscapeHtml(g.label) + "</th>";
  html += "</tr></thead>\n<tbody>\n";
  const int digits = LabelDigits(lo, hi);
  for (size_t m = 0; m < r.row_labels.size(); ++m) {
    if (std::find(r.dividers.begin(), r.dividers.end(), m) != r.dividers.end())
      html += "<tr class=\"divider\"></tr>\n";
    html += "<tr><th>" + EscapeHtml(r.row_labels[m]) + "</th>";
    for (size_t gi = 0; gi < t.groups.size(); ++gi) {
      const Cell& c = t.groups[gi].cells[m];
      const Summary& s = c.summary;
      dat += fmt::format("{} {} {} {} {} {} {} {}\n", gi, m, Num(s.mean), s.n, c.expected,
                         Num(s.ci_low), Num(s.ci_high), Num(s.std));
      auto full = [](double v) { return std::isnan(v) ? std::string() : fmt::format("{}", v); };
      csv += fmt::format("{},{},{},{},{},{},{},{},{},{},{}\r\n", CsvField(r.row_labels[m]),
                         CsvField(t.groups[gi].label), full(s.mean), s.n, c.expected,
                         c.complete() ? "true" : "false", full(s.std), full(s.ci_low),
                         full(s.ci_high), CsvField(fmt::format("{}", fmt::join(c.seeds, ";"))),
                         CsvField(fmt::format("{}", fmt::join(c.values, ";"))));
      const std::string hover =
          s.n == 0
              ? fmt::format("no value (0/{} seeds)", c.expected)
              : fmt::format("mean {}, n = {}/{}, 95% CI {}", FormatNumber(s.mean), s.n, c.expected,
                            s.n < 2 ? "—"
                                    : fmt::format("[{}, {}]", FormatNumber(s.ci_low),
                                                  FormatNumber(s.ci_high)));
      const double shown = std::abs(s.mean) < 0.5 * std::pow(10.0, -digits) ? 0.0 : s.mean;
      html += fmt::format("<td class=\"num\" style=\"background:{}\" title=\"{}\">{}</td>",
                          CellColour(s.mean, lo, hi), EscapeHtml(hover),
                          s.n ? fmt::format("{:.{}f}", shown, digits) : "n/a");
    }
    html += "</tr>\n";
    dat += "\n";
  }
  html += "</tbody>\n</table>\n";
  HeatmapAxes a;
  a.id = r.id;
  a.title = r.title;
  a.xlabel = r.xlabel;
  a.ylabel = r.ylabel;
  a.cblabel = r.zlabel;
  for (const auto& g : t.groups) a.xtics.push_back(g.label);
  a.ytics = r.row_labels;
  a.lo = lo;
  a.hi = hi;
  a.labels = r.row_labels.size() * t.groups.size() <= 600;
  a.dividers = r.dividers;
  const int width = std::max(700, 420 + 140 * static_cast<int>(t.groups.size()));
  const int height = std::max(450, 200 + 22 * static_cast<int>(r.row_labels.size()));
  const fs::path dir = fs::path(report_dir) / "figures";
  Figure f = Write(dir, r.id, r.title, r.caption, dat,
                   Script(r.id, r.title, width, height, HeatmapBody(a)));
  WriteText(dir / (r.id + ".cells.csv"), csv);
  f.cells_csv = "figures/" + r.id + ".cells.csv";
  f.cells_html = std::move(html);
  return f;
}

std::vector<Figure> MakePlots(const SweepData& data, const std::vector<ReportFigureSpec>& plots,
                              const std::string& report_dir, Uncertainty uncertainty,
                              std::vector<std::string>& warnings) {
  std::vector<Figure> out;
  std::set<std::string> ids;
  for (const auto& spec : plots) {
    if (!data.FindStage(spec.stage)) continue;  // reported by the report's plan
    auto f = Plotter(data, spec, report_dir, uncertainty, warnings).Run();
    if (!f) continue;
    if (!ids.insert(f->id).second) {
      warnings.push_back(fmt::format("figure {} of stage {}: a second figure with id {}; left out",
                                     spec.type, spec.stage, f->id));
      continue;
    }
    out.push_back(std::move(*f));
  }
  return out;
}

}  // namespace seedgrid::report

#include "coordinator/report/figures.h"

#include <fcntl.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cmath>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <functional>
#include <map>
#include <memory>
#include <set>
#include <sstream>

#include <fmt/format.h>
#include <fmt/ranges.h>

#include "coordinator/report/gnuplot.h"
#include "coordinator/report/plots.h"
#include "coordinator/report/pareto.h"
#include "core/process.h"
#include "core/store.h"

namespace seedgrid::report {

namespace fs = std::filesystem;

std::vector<FigureRequest> DefaultFigures(const SweepData& data) {
  std::vector<FigureRequest> out;
  for (const auto& stage : data.stages) {
    const KindConfig* kind = data.Kind(stage.kind);
    if (!kind) continue;
    for (const auto& f : kind->report.figures) {
      if (f.by_default) out.push_back({f.type, stage.name, true});
    }
  }
  return out;
}

std::string FindOnPath(const std::string& program) {
  const char* path = std::getenv("PATH");
  if (!path) return "";
  std::stringstream dirs(path);
  std::string dir;
  while (std::getline(dirs, dir, ':')) {
    fs::path p = fs::path(dir.empty() ? "." : dir) / program;
    struct stat st {};
    if (::stat(p.c_str(), &st) == 0 && S_ISREG(st.st_mode) && ::access(p.c_str(), X_OK) == 0) {
      return p.string();
    }
  }
  return "";
}

namespace {

constexpr size_t kMaxPoints = 400;  // per curve, after bucket averaging
constexpr size_t kMaxFiles = 2000;  // shard files opened per figure

// A kind's figure text with its {name} placeholders filled (others are left as they are).
std::string Fill(std::string text, const std::vector<std::pair<std::string, std::string>>& vars) {
  for (const auto& [name, value] : vars) {
    const std::string key = "{" + name + "}";
    for (size_t at = text.find(key); at != std::string::npos;
         at = text.find(key, at + value.size()))
      text.replace(at, key.size(), value);
  }
  return text;
}

// Mean and band of same-x curves, truncated to the shortest. The band's half-width is the
// uncertainty's: t(0.975, n − 1)·std/√n or std (ddof = 1); 0 for one seed.
struct Band {
  std::vector<double> x, mean, half;
  size_t n = 0;
};

Band Aggregate(const std::vector<double>& x, const std::vector<std::vector<double>>& ys,
               Uncertainty u) {
  Band b;
  b.n = ys.size();
  size_t len = x.size();
  for (const auto& y : ys) len = std::min(len, y.size());
  const double n = static_cast<double>(ys.size());
  const double scale = ys.size() < 2            ? 0.0
                       : u == Uncertainty::kStd ? 1.0
                                                : StudentTQuantile(0.975, n - 1) / std::sqrt(n);
  for (size_t i = 0; i < len; ++i) {
    double sum = 0;
    for (const auto& y : ys) sum += y[i];
    double mean = sum / n;
    double ss = 0;
    for (const auto& y : ys) ss += (y[i] - mean) * (y[i] - mean);
    b.x.push_back(x[i]);
    b.mean.push_back(mean);
    b.half.push_back(ys.size() > 1 ? scale * std::sqrt(ss / (n - 1)) : 0.0);
  }
  return b;
}

// Averages consecutive buckets so that a curve has at most kMaxPoints points.
std::vector<double> Bucket(const std::vector<double>& v, size_t bucket) {
  if (bucket <= 1) return v;
  std::vector<double> out;
  for (size_t i = 0; i < v.size(); i += bucket) {
    size_t end = std::min(v.size(), i + bucket);
    double sum = 0;
    for (size_t j = i; j < end; ++j) sum += v[j];
    out.push_back(sum / static_cast<double>(end - i));
  }
  return out;
}

// Collects per-figure problems and reports them as one warning line.
class Problems {
 public:
  void Add(std::string p) { items_.push_back(std::move(p)); }
  void Flush(const std::string& what, std::vector<std::string>& warnings) {
    if (items_.empty()) return;
    std::vector<std::string> shown(items_.begin(),
                                   items_.begin() + std::min<size_t>(3, items_.size()));
    std::string more = items_.size() > 3 ? fmt::format(" (and {} more)", items_.size() - 3) : "";
    warnings.push_back(fmt::format("{}: {}{}", what, fmt::join(shown, "; "), more));
    items_.clear();
  }

 private:
  std::vector<std::string> items_;
};

class FigureMaker {
 public:
  FigureMaker(const SweepData& data, const std::string& report_dir, Uncertainty uncertainty,
              std::vector<std::string>& warnings)
      : data_(data),
        dir_(fs::path(report_dir) / "figures"),
        uncertainty_(uncertainty),
        warnings_(warnings) {}

  std::vector<Figure>& figures() { return figures_; }

  // Draws figure type `type` for `stage` as the stage's kind defines it (nothing when the kind
  // offers no such figure); returns whether anything was drawn.
  bool Make(const std::string& type, const SweepData::Stage& stage) {
    const KindConfig* kind = data_.Kind(stage.kind);
    if (!kind) return false;
    size_t before = figures_.size();
    opened_ = 0;
    for (const KindFigure& f : kind->report.figures) {
      if (f.type != type) continue;
      switch (f.renderer) {
        case FigureRenderer::kCurve: Curve(f, stage); break;
        case FigureRenderer::kSeries: Series(f, stage); break;
        case FigureRenderer::kMetricHeatmap: MetricHeatmap(f, stage); break;
        case FigureRenderer::kGroupHeatmaps: GroupHeatmaps(f, stage); break;
        case FigureRenderer::kLog10Histogram: Log10Histogram(f, stage); break;
        case FigureRenderer::kGroupCurves: GroupCurves(f, stage); break;
        case FigureRenderer::kPareto: Pareto(f, stage); break;
      }
    }
    if (opened_ > kMaxFiles) {
      problems_.Add(fmt::format("read only the first {} of {} shard files", kMaxFiles, opened_));
    }
    problems_.Flush(fmt::format("figure {} of stage {}", type, stage.name), warnings_);
    return figures_.size() > before;
  }

 private:
  std::unique_ptr<H5Reader> Open(size_t shard) {
    const ShardRow& s = data_.shards[shard];
    if (s.status != ShardStatus::kDone) return nullptr;
    if (++opened_ > kMaxFiles) return nullptr;
    std::string path = data_.ArtifactPath(shard);
    if (path.empty()) return nullptr;  // a kind without arrays (its numbers are in the registry)
    try {
      return std::make_unique<H5Reader>(path);
    } catch (const std::exception& e) {
      problems_.Add(e.what());
      return nullptr;
    }
  }

  static std::string Label(const Group& g, size_t n, size_t expected) {
    return n == expected ? fmt::format("{} (n={})", g.label, n)
                         : fmt::format("{} (n={} of {})", g.label, n, expected);
  }

  void Emit(const std::string& id, const std::string& title, const std::string& caption,
            const std::string& dat, const std::string& script) {
    fs::create_directories(dir_);
    std::ofstream(dir_ / (id + ".dat")) << dat;
    std::ofstream(dir_ / (id + ".gp")) << script;
    Figure f;
    f.id = id;
    // {band}: what the bands and error bars are (report: uncertainty).
    f.title = Fill(title, {{"band", std::string(UncertaintyText(uncertainty_))}});
    f.caption = Fill(caption, {{"band", std::string(UncertaintyText(uncertainty_))}});
    f.data = "figures/" + id + ".dat";
    f.script = "figures/" + id + ".gp";
    figures_.push_back(std::move(f));
  }

  // Curves with ±std bands over seeds, one line per config, in one or more side-by-side panels.
  struct Line {
    std::string label;
    Band band;
  };
  struct Panel {
    std::string title, xlabel, ylabel;
    std::vector<Line> lines;
    bool points = false;     // markers at the data points (few x values)
    bool zero_axes = false;  // draw x = 0 and y = 0
    bool log_y = false;      // log y when every mean is positive and they span a decade
  };

  // One figure per kLinesPerFigure configs, each with its own data file: a legend of forty
  // lines reads as noise.
  void EmitBands(const std::string& id, const std::string& title, const std::string& caption,
                 const std::vector<Panel>& panels) {
    constexpr size_t kLinesPerFigure = 10, kMaxFigures = 8;
    size_t most = 0;
    for (const auto& p : panels) most = std::max(most, p.lines.size());
    size_t chunks = (most + kLinesPerFigure - 1) / kLinesPerFigure;
    if (chunks > kMaxFigures) {
      problems_.Add(
          fmt::format("{} configs: drawing the first {} (pick fewer with a report: "
                      "section or --stage)",
                      most, kMaxFigures * kLinesPerFigure));
      chunks = kMaxFigures;
    }
    for (size_t c = 0; c < chunks; ++c) {
      std::string cid = chunks > 1 ? fmt::format("{}-{}", id, c + 1) : id;
      std::string ctitle = chunks > 1 ? fmt::format("{} ({} of {})", title, c + 1, chunks) : title;
      std::string dat, body;
      size_t block = 0, lines = 0, drawn_panels = 0;
      for (const auto& p : panels) drawn_panels += p.lines.size() > c * kLinesPerFigure;
      if (drawn_panels > 1)
        body += fmt::format("  set multiplot layout 1,{} title {}\n", drawn_panels, Q(ctitle));
      for (const auto& p : panels) {
        size_t from = c * kLinesPerFigure, to = std::min(p.lines.size(), from + kLinesPerFigure);
        if (from >= to) continue;
        lines = std::max(lines, to - from);
        double lo = INFINITY, hi = -INFINITY;
        for (size_t i = from; i < to; ++i) {
          for (double m : p.lines[i].band.mean) lo = std::min(lo, m), hi = std::max(hi, m);
        }
        bool log = p.log_y && lo > 0 && hi / lo > 10;
        std::vector<std::string> bands, curves;
        for (size_t i = from; i < to; ++i) {
          const Line& l = p.lines[i];
          dat += "# " + p.title + ": " + l.label +
                 "\n# x mean low high (band: " + std::string(UncertaintyText(uncertainty_)) + ")\n";
          for (size_t k = 0; k < l.band.x.size(); ++k) {
            double m = l.band.mean[k], sd = l.band.half[k];
            double lower = log && m - sd <= 0 ? 0.1 * m : m - sd;  // a log axis cannot go below 0
            dat += fmt::format("{} {} {} {}\n", Num(l.band.x[k]), Num(m), Num(lower), Num(m + sd));
          }
          dat += "\n\n";
          size_t j = i - from;
          bands.push_back(
              fmt::format("'{}.dat' index {} using 1:3:4 with filledcurves fc rgb '{}' "
                          "fs transparent solid 0.10 noborder notitle",
                          cid, block, Color(j)));
          curves.push_back(fmt::format(
              "'{}.dat' index {} using 1:2 with {} lw 2 lc rgb '{}' dt {} title {}", cid, block,
              p.points ? fmt::format("linespoints pt {} ps 0.8", PointType(j)) : "lines", Color(j),
              Dash(j), Q(l.label)));
          ++block;
        }
        body += fmt::format("  set title {}\n  set xlabel {}\n  set ylabel {}\n  set grid\n",
                            Q(drawn_panels > 1 ? p.title : ctitle), Q(p.xlabel), Q(p.ylabel));
        // Log axes snap to whole decades; fix them to the data with a margin instead.
        body += log ? "  set logscale y\n  set autoscale yfix\n  set offsets 0, 0, graph 0.05, "
                      "graph 0.05\n"
                    : "  unset logscale y\n";
        if (p.zero_axes)
          body +=
              "  set xzeroaxis lt -1 lc rgb '#888888'\n  set yzeroaxis lt -1 lc rgb '#888888'\n";
        body += "  set key outside below left Left reverse\n";
        bands.insert(bands.end(), curves.begin(), curves.end());
        body += fmt::format("  plot {}\n", fmt::join(bands, ", \\\n       "));
      }
      if (drawn_panels > 1) body += "  unset multiplot\n";
      int width = drawn_panels > 1 ? 650 * static_cast<int>(drawn_panels) : 900;
      int height = 520 + 22 * static_cast<int>((lines + 1) / (drawn_panels > 1 ? 1 : 2));
      Emit(cid, ctitle, caption, dat, Script(cid, ctitle, width, height, body));
    }
  }

  // FigureRenderer::kCurve.
  void Curve(const KindFigure& f, const SweepData::Stage& stage) {
    Panel panel;
    panel.xlabel = f.xlabel;
    panel.ylabel = f.ylabel;
    panel.points = panel.zero_axes = true;
    size_t seeds_min = SIZE_MAX, seeds_max = 0;
    bool signed_rows = false;
    for (const Group& g : ConfigGroups(data_, stage.name)) {
      std::vector<double> xs;
      std::vector<std::vector<double>> ys;
      for (size_t i : g.shards) {
        auto h5 = Open(i);
        if (!h5) continue;
        const std::string& sid = data_.shards[i].key.id().hex;
        try {
          if (!h5->Has(f.x) || !h5->Has(f.y)) {
            problems_.Add(fmt::format("shard {} has no {} or {}", sid, f.x, f.y));
            continue;
          }
          auto a = h5->Read<double>(f.x);
          Shape shape;
          auto lr = h5->Read<double>(f.y, &shape);
          int64_t rows = shape.size() == 2 ? shape[1] : 1;
          if (shape.empty() || shape.size() > 2 || shape[0] != static_cast<int64_t>(a.size()) ||
              rows < 1) {
            problems_.Add(fmt::format("shard {}: {} shape does not match {}", sid, f.y, f.x));
            continue;
          }
          if (!xs.empty() && a != xs) {
            problems_.Add(fmt::format("shard {}: its {} differ from its group's", sid, f.x));
            continue;
          }
          xs = a;
          // Rows signed by the kind's `sign` dataset where the shard has one.
          std::vector<double> label;
          if (!f.sign.empty() && h5->Has(f.sign)) {
            label = h5->Read<double>(f.sign);
            if (static_cast<int64_t>(label.size()) != rows) label.clear();
          }
          if (!label.empty()) signed_rows = true;
          std::vector<double> mean(a.size());
          for (size_t k = 0; k < a.size(); ++k) {
            double sum = 0;
            size_t n = 0;
            for (int64_t r = 0; r < rows; ++r) {
              double v = lr[k * rows + r] * (label.empty() ? 1.0 : label[r]);
              if (std::isfinite(v)) sum += v, ++n;
            }
            mean[k] = n ? sum / static_cast<double>(n) : NAN;
          }
          ys.push_back(std::move(mean));
        } catch (const std::exception& e) {
          problems_.Add(e.what());
        }
      }
      if (ys.empty()) continue;
      panel.lines.push_back(
          {Label(g, ys.size(), g.shards.size()), Aggregate(xs, ys, uncertainty_)});
      seeds_min = std::min(seeds_min, ys.size());
      seeds_max = std::max(seeds_max, ys.size());
    }
    if (panel.lines.empty()) return;
    if (signed_rows && !f.ylabel_signed.empty()) panel.ylabel = f.ylabel_signed;
    std::string title = Fill(f.title, {{"stage", stage.name}});
    panel.title = title;
    std::string seeds = seeds_min == seeds_max ? fmt::format("{}", seeds_min)
                                               : fmt::format("{}–{}", seeds_min, seeds_max);
    EmitBands(FileStem(stage.name + "-" + f.type), title,
              Fill(f.caption, {{"stage", stage.name}, {"seeds", seeds}}), {panel});
  }

  // FigureRenderer::kSeries.
  // One config's line: the mean ± 1 std over its seeds' curves `ys` (cut to their first `len`
  // points) against `x`, averaged in buckets so that no line has more than kMaxPoints points.
  Band BucketedBand(const std::vector<double>& x, std::vector<std::vector<double>>& ys,
                    size_t len) const {
    const size_t bucket = (len + kMaxPoints - 1) / kMaxPoints;
    std::vector<std::vector<double>> yb;
    for (auto& y : ys) {
      y.resize(len);
      yb.push_back(Bucket(y, bucket));
    }
    return Aggregate(Bucket(x, bucket), yb, uncertainty_);
  }

  void Series(const KindFigure& f, const SweepData::Stage& stage) {
    const auto& series = f.series;  // dataset, panel title
    std::vector<std::string> all;
    for (const auto& s : series) all.push_back(s.first);
    std::vector<Group> groups = ConfigGroups(data_, stage.name);
    // [series][group] -> per-seed curves
    std::vector<std::vector<std::vector<std::vector<double>>>> curves(
        series.size(), std::vector<std::vector<std::vector<double>>>(groups.size()));
    std::vector<std::vector<double>> steps(series.size());
    for (size_t gi = 0; gi < groups.size(); ++gi) {
      for (size_t i : groups[gi].shards) {
        auto h5 = Open(i);
        if (!h5) continue;
        try {
          bool any = false;
          for (size_t s = 0; s < series.size(); ++s) {
            if (!h5->Has(series[s].first)) continue;
            any = true;
            Shape shape;
            auto v = h5->Read<double>(series[s].first, &shape);
            if (shape.size() > 1) {  // [steps, k]: mean over the rest
              size_t k = v.size() / std::max<int64_t>(1, shape[0]);
              std::vector<double> m(shape[0]);
              for (size_t r = 0; r < m.size(); ++r) {
                double sum = 0;
                for (size_t c = 0; c < k; ++c) sum += v[r * k + c];
                m[r] = sum / static_cast<double>(k);
              }
              v = std::move(m);
            }
            if (steps[s].empty() && !f.x.empty() && h5->Has(f.x)) steps[s] = h5->Read<double>(f.x);
            curves[s][gi].push_back(std::move(v));
          }
          if (!any)
            problems_.Add(fmt::format("shard {} has none of {}", data_.shards[i].key.id().hex,
                                      fmt::join(all, ", ")));
        } catch (const std::exception& e) {
          problems_.Add(e.what());
        }
      }
    }
    std::vector<Panel> panels;
    std::vector<std::string> names;
    for (size_t s = 0; s < series.size(); ++s) {
      Panel p;
      p.title = series[s].second;
      p.xlabel = steps[s].empty() ? "logged step" : f.xlabel;
      p.ylabel = f.ylabel;
      p.log_y = true;
      for (size_t gi = 0; gi < groups.size(); ++gi) {
        auto& ys = curves[s][gi];
        if (ys.empty()) continue;
        size_t len = SIZE_MAX;
        for (const auto& y : ys) len = std::min(len, y.size());
        if (len == 0) continue;
        std::vector<double> x(len);
        for (size_t k = 0; k < len; ++k)
          x[k] = steps[s].size() >= len ? steps[s][k] : static_cast<double>(k);
        p.lines.push_back(
            {Label(groups[gi], ys.size(), groups[gi].shards.size()), BucketedBand(x, ys, len)});
      }
      if (!p.lines.empty()) {
        names.push_back(series[s].first);
        panels.push_back(std::move(p));
      }
    }
    if (panels.empty()) return;
    std::string title = Fill(f.title, {{"stage", stage.name}});
    if (panels.size() == 1) panels[0].title = title;
    EmitBands(FileStem(stage.name + "-" + f.type), title,
              Fill(f.caption, {{"stage", stage.name},
                               {"datasets", fmt::format("{}", fmt::join(names, ", "))}}),
              panels);
  }

  // FigureRenderer::kMetricHeatmap.
  void GroupCurves(const KindFigure& f, const SweepData::Stage& stage) {
    constexpr size_t kMaxPanels = 6;
    std::vector<Group> groups = ConfigGroups(data_, stage.name);
    std::vector<std::string> names;
    // [name][group] -> per-seed values; [name] -> steps
    std::vector<std::vector<std::vector<std::vector<double>>>> curves;
    std::vector<std::vector<double>> steps;
    for (size_t gi = 0; gi < groups.size(); ++gi) {
      for (size_t i : groups[gi].shards) {
        auto h5 = Open(i);
        if (!h5 || !h5->Has(f.group)) continue;
        try {
          if (names.empty()) {
            names = h5->List(f.group);
            if (names.size() > kMaxPanels) names.resize(kMaxPanels);
            curves.assign(names.size(),
                          std::vector<std::vector<std::vector<double>>>(groups.size()));
            steps.assign(names.size(), {});
          }
          for (size_t n = 0; n < names.size(); ++n) {
            const std::string base = f.group + "/" + names[n];
            if (!h5->Has(base + "/value")) continue;
            if (steps[n].empty()) steps[n] = h5->Read<double>(base + "/step");
            curves[n][gi].push_back(h5->Read<double>(base + "/value"));
          }
        } catch (const std::exception& e) {
          problems_.Add(e.what());
        }
      }
    }
    std::vector<Panel> panels;
    for (size_t n = 0; n < names.size(); ++n) {
      Panel p;
      p.title = names[n];
      p.xlabel = f.xlabel.empty() ? "step" : f.xlabel;
      p.ylabel = names[n];
      for (size_t gi = 0; gi < groups.size(); ++gi) {
        auto& ys = curves[n][gi];
        if (ys.empty()) continue;
        size_t len = steps[n].size();
        for (const auto& y : ys) len = std::min(len, y.size());
        if (len == 0) continue;
        std::vector<double> x(steps[n].begin(), steps[n].begin() + static_cast<long>(len));
        p.lines.push_back(
            {Label(groups[gi], ys.size(), groups[gi].shards.size()), BucketedBand(x, ys, len)});
      }
      if (!p.lines.empty()) panels.push_back(std::move(p));
    }
    if (panels.empty()) return;
    std::string title = Fill(f.title, {{"stage", stage.name}});
    if (panels.size() == 1) panels[0].title = title;
    EmitBands(FileStem(stage.name + "-" + f.type), title,
              Fill(f.caption,
                   {{"stage", stage.name}, {"names", fmt::format("{}", fmt::join(names, ", "))}}),
              panels);
  }

  // Rows: the kind's `first` in order (a name ending in '*' brings every matching metric, by
  // name), then the rest by name; a line separates row groups: consecutive exact names of
  // `first` (the anchors), each pattern of `first`, and the rest by their first '.'-segment
  // after the prefix (e.g. the lens of a variant named "lens.part").
  static std::vector<std::vector<std::string>> RowGroups(const KindFigure& f,
                                                         std::set<std::string> names) {
    std::vector<std::vector<std::string>> groups;
    std::vector<std::string> exact;
    auto flush = [&](std::vector<std::string>& g) {
      if (!g.empty()) groups.push_back(std::move(g));
      g.clear();
    };
    for (const auto& want : f.first) {
      if (!want.ends_with('*')) {
        if (names.erase(want)) exact.push_back(want);
        continue;
      }
      flush(exact);
      std::vector<std::string> g;
      for (auto it = names.begin(); it != names.end();) {
        it = MetricMatches(want, *it) ? (g.push_back(*it), names.erase(it)) : std::next(it);
      }
      flush(g);
    }
    flush(exact);
    std::map<std::string, std::vector<std::string>> rest;
    for (const auto& n : names) {
      const std::string suffix = n.substr(f.prefix.size());
      rest[suffix.substr(0, suffix.find('.'))].push_back(n);
    }
    for (auto& [lens, g] : rest) flush(g);
    return groups;
  }

  // FigureRenderer::kMetricHeatmap: the means of the stage's table of these metrics.
  void MetricHeatmap(const KindFigure& f, const SweepData::Stage& stage) {
    std::set<std::string> names;
    for (size_t i : stage.shards) {
      for (const auto& [name, v] : data_.metrics[i]) {
        if (name.starts_with(f.prefix)) names.insert(name);
      }
    }
    if (names.empty()) return;
    HeatmapRequest r;
    std::vector<std::string> variants;
    for (const auto& g : RowGroups(f, std::move(names))) {
      if (!variants.empty()) r.dividers.push_back(variants.size());
      variants.insert(variants.end(), g.begin(), g.end());
    }
    std::vector<std::string> ignored;
    const StageTable t = BuildTable(data_, {stage.name, variants, {}}, ignored);
    if (t.groups.empty()) return;
    size_t seeds_max = 0;
    for (const auto& g : t.groups) {
      for (const auto& c : g.cells) seeds_max = std::max(seeds_max, c.summary.n);
    }
    for (const auto& v : variants) r.row_labels.push_back(v.substr(f.prefix.size()));
    r.id = FileStem(stage.name + "-" + f.type);
    r.title = Fill(f.title, {{"stage", stage.name}});
    r.caption = Fill(f.caption, {{"stage", stage.name}, {"seeds", fmt::format("{}", seeds_max)}}) +
                " Each cell's n and 95% CI (Student t): cells CSV, and on hover in report.html.";
    r.xlabel = f.xlabel;
    r.ylabel = f.ylabel;
    r.zlabel = f.zlabel;
    r.table = &t;
    figures_.push_back(HeatmapFigure(r, dir_.parent_path().string()));
  }

  // FigureRenderer::kGroupHeatmaps.
  void GroupHeatmaps(const KindFigure& f, const SweepData::Stage& stage) {
    constexpr size_t kMaxGroups = 6;  // figures per score
    std::vector<Group> groups = ConfigGroups(data_, stage.name);
    if (groups.size() > kMaxGroups) {
      problems_.Add(
          fmt::format("{} configs: head scores drawn for the first {}", groups.size(), kMaxGroups));
      groups.resize(kMaxGroups);
    }
    for (size_t gi = 0; gi < groups.size(); ++gi) {
      // score -> summed [L,H] and count
      std::map<std::string, std::pair<std::vector<double>, size_t>> sums;
      std::map<std::string, Shape> shapes;
      for (size_t i : groups[gi].shards) {
        auto h5 = Open(i);
        if (!h5) continue;
        try {
          if (!h5->Has(f.group)) continue;
          for (const auto& score : h5->List(f.group)) {
            Shape shape;
            auto v = h5->Read<double>(f.group + "/" + score, &shape);
            if (shape.size() != 2) continue;
            auto [it, fresh] = shapes.try_emplace(score, shape);
            if (!fresh && it->second != shape) {
              problems_.Add(fmt::format("shard {}: {}/{} shape differs",
                                        data_.shards[i].key.id().hex, f.group, score));
              continue;
            }
            auto& [sum, n] = sums[score];
            sum.resize(v.size(), 0.0);
            for (size_t k = 0; k < v.size(); ++k) sum[k] += v[k];
            ++n;
          }
        } catch (const std::exception& e) {
          problems_.Add(e.what());
        }
      }
      for (auto& [score, sn] : sums) {
        auto& [sum, n] = sn;
        const Shape& shape = shapes[score];
        std::string id = FileStem(fmt::format("{}-{}-{}{}", stage.name, f.group, score,
                                              groups.size() > 1 ? fmt::format("-{}", gi + 1) : ""));
        std::string dat = fmt::format("# x={} y={} mean score over seeds\n", f.xlabel, f.ylabel);
        double lo = INFINITY, hi = -INFINITY;
        for (int64_t l = 0; l < shape[0]; ++l) {
          for (int64_t h = 0; h < shape[1]; ++h) {
            double v = sum[l * shape[1] + h] / static_cast<double>(n);
            if (std::isfinite(v)) lo = std::min(lo, v), hi = std::max(hi, v);
            dat += fmt::format("{} {} {}\n", h, l, Num(v));
          }
          dat += "\n";
        }
        if (!std::isfinite(lo)) continue;
        std::vector<std::string> xt, yt;
        for (int64_t h = 0; h < shape[1]; ++h) xt.push_back(fmt::format("{}", h));
        for (int64_t l = 0; l < shape[0]; ++l) yt.push_back(fmt::format("{}", l));
        std::string title = Fill(f.title, {{"stage", stage.name}, {"dataset", score}}) +
                            (groups[gi].key.empty() ? "" : " (" + groups[gi].label + ")");
        HeatmapAxes axes;
        axes.id = id;
        axes.title = title;
        axes.xlabel = f.xlabel;
        axes.ylabel = f.ylabel;
        axes.cblabel = f.zlabel.empty() ? score : f.zlabel;
        axes.xtics = xt;
        axes.ytics = yt;
        axes.lo = lo;
        axes.hi = hi;
        axes.labels = shape[0] * shape[1] <= 256;
        std::string body = HeatmapBody(axes);
        int width = std::max(600, 260 + 60 * static_cast<int>(shape[1]));
        int height = std::max(420, 200 + 50 * static_cast<int>(shape[0]));
        Emit(id, title,
             Fill(f.caption, {{"stage", stage.name},
                              {"dataset", score},
                              {"n", fmt::format("{}", n)},
                              {"shards", n == 1 ? "shard" : "shards"}}),
             dat, Script(id, title, width, height, body));
      }
    }
  }

  // FigureRenderer::kLog10Histogram.
  void Log10Histogram(const KindFigure& f, const SweepData::Stage& stage) {
    struct Values {
      std::string label;
      std::vector<double> logs;
      size_t dead = 0, total = 0;
    };
    std::vector<Values> series;
    for (const Group& g : ConfigGroups(data_, stage.name)) {
      for (size_t i : g.shards) {
        auto h5 = Open(i);
        if (!h5) continue;
        try {
          if (!h5->Has(f.y)) {
            problems_.Add(fmt::format("shard {} has no {}", data_.shards[i].key.id().hex, f.y));
            continue;
          }
          Values s;
          s.label = g.shards.size() > 1
                        ? fmt::format("{} seed {}", g.label, data_.shards[i].key.seed())
                        : g.label;
          for (double d : h5->Read<double>(f.y)) {
            ++s.total;
            if (d > 0 && std::isfinite(d)) {
              s.logs.push_back(std::log10(d));
            } else {
              ++s.dead;
            }
          }
          series.push_back(std::move(s));
        } catch (const std::exception& e) {
          problems_.Add(e.what());
        }
      }
    }
    if (series.empty()) return;
    double lo = 0, hi = 0;
    bool any = false;
    for (const auto& s : series) {
      for (double v : s.logs) {
        lo = any ? std::min(lo, v) : v;
        hi = any ? std::max(hi, v) : v;
        any = true;
      }
    }
    lo = std::floor(lo * 4) / 4;
    hi = std::max(lo + 0.25, std::ceil(hi * 4) / 4);
    size_t bins = std::clamp<size_t>(static_cast<size_t>(std::round((hi - lo) / 0.1)), 10, 60);
    double width = (hi - lo) / static_cast<double>(bins);
    std::string id = FileStem(stage.name + "-" + f.type);
    std::string dat;
    std::vector<std::string> parts;
    size_t dead = 0, total = 0;
    for (size_t k = 0; k < series.size(); ++k) {
      std::vector<size_t> count(bins, 0);
      for (double v : series[k].logs) {
        count[std::min(bins - 1, static_cast<size_t>((v - lo) / width))]++;
      }
      dat += "# " + series[k].label + "\n# bin_center components\n";
      for (size_t b = 0; b < bins; ++b)
        dat += fmt::format("{} {}\n", Num(lo + (b + 0.5) * width), count[b]);
      dat += "\n\n";
      dead += series[k].dead;
      total += series[k].total;
      std::string label = fmt::format("{} ({} {}, {} never fire)", series[k].label, series[k].total,
                                      f.unit, series[k].dead);
      parts.push_back(
          fmt::format("'{}.dat' index {} using 1:2 with boxes fs transparent solid {} "
                      "border lc rgb '{}' lc rgb '{}' title {}",
                      id, k, series.size() > 1 ? "0.35" : "0.6", Color(k), Color(k), Q(label)));
    }
    std::string title = Fill(f.title, {{"stage", stage.name}});
    std::string body = fmt::format(
        "  set title {}\n  set xlabel {}\n  set ylabel {}\n  set grid ytics\n"
        "  set boxwidth {} absolute\n  set yrange [0:*]\n  set xrange [{}:{}]\n"
        "  set key outside below left Left reverse\n  plot {}\n",
        Q(title), Q(f.xlabel), Q(f.ylabel), Num(width * 0.95), Num(lo), Num(hi),
        fmt::join(parts, ", \\\n       "));
    Emit(id, title,
         Fill(f.caption, {{"stage", stage.name},
                          {"dead", fmt::format("{}", dead)},
                          {"total", fmt::format("{}", total)}}),
         dat, Script(id, title, 900, 560, body));
  }

  // FigureRenderer::kPareto: one config's point and its seeds' points.
  struct FrontPoint {
    double x = 0, y = 0;
    std::string label;
    std::vector<std::pair<double, double>> seeds;
  };

  // A config's seeds that recorded both metrics (cells of a two-metric table), and their means.
  static bool SeedPoints(const Cell& cx, const Cell& cy, FrontPoint& p) {
    for (size_t a = 0; a < cx.seeds.size(); ++a) {
      const auto b = std::find(cy.seeds.begin(), cy.seeds.end(), cx.seeds[a]);
      if (b != cy.seeds.end()) p.seeds.emplace_back(cx.values[a], cy.values[b - cy.seeds.begin()]);
    }
    if (p.seeds.empty()) return false;
    for (const auto& [x, y] : p.seeds) p.x += x, p.y += y;
    p.x /= static_cast<double>(p.seeds.size());
    p.y /= static_cast<double>(p.seeds.size());
    return true;
  }

  void Pareto(const KindFigure& f, const SweepData::Stage& stage) {
    const auto have = StageMetrics(data_, stage.name);
    if (!std::count(have.begin(), have.end(), f.x) || !std::count(have.begin(), have.end(), f.y))
      return;
    std::vector<std::string> problems;
    const StageTable t = BuildTable(data_, {stage.name, {f.x, f.y}, {}}, problems);
    for (auto& p : problems) problems_.Add(std::move(p));
    const auto gk = std::find(t.keys.begin(), t.keys.end(), f.group) - t.keys.begin();
    const bool grouped = static_cast<size_t>(gk) < t.keys.size();
    std::map<Json, std::vector<FrontPoint>> by_value;  // the group axis's value -> its configs
    size_t seeds_max = 0;
    for (const Group& g : t.groups) {
      FrontPoint p;
      if (g.cells.size() != 2 || !SeedPoints(g.cells[0], g.cells[1], p)) continue;
      seeds_max = std::max(seeds_max, p.seeds.size());
      std::vector<std::string> rest;
      for (size_t k = 0; k < t.keys.size(); ++k)
        if (static_cast<ptrdiff_t>(k) != gk) rest.push_back(t.keys[k] + "=" + KeyText(g.key[k]));
      p.label = fmt::format("{}", fmt::join(rest, ", "));
      by_value[grouped ? g.key[gk] : Json()].push_back(std::move(p));
    }
    std::vector<std::pair<std::string, std::vector<FrontPoint>>> fronts;
    for (auto& [value, points] : by_value)
      fronts.emplace_back(grouped ? f.group + "=" + KeyText(value) : stage.name, std::move(points));
    if (fronts.empty()) return;
    EmitPareto(f, stage, fronts, seeds_max, grouped);
  }

  // Data blocks per front: its seeds' points, its configs' points (with labels), its front.
  void EmitPareto(const KindFigure& f, const SweepData::Stage& stage,
                  const std::vector<std::pair<std::string, std::vector<FrontPoint>>>& fronts,
                  size_t seeds_max, bool grouped) {
    const std::string id = FileStem(stage.name + "-" + f.type);
    std::string dat;
    std::vector<std::string> plots;
    double lo = INFINITY, hi = -INFINITY;
    for (size_t k = 0; k < fronts.size(); ++k) {
      const auto& [name, points] = fronts[k];
      std::vector<double> xs, ys;
      dat += fmt::format("# {}: single seeds\n# {} {}\n", name, f.x, f.y);
      for (const auto& p : points) {
        for (const auto& [x, y] : p.seeds) dat += fmt::format("{} {}\n", Num(x), Num(y));
        xs.push_back(p.x);
        ys.push_back(p.y);
        lo = std::min(lo, p.x), hi = std::max(hi, p.x);
      }
      dat += fmt::format("\n\n# {}: configs (mean over seeds)\n# {} {} config\n", name, f.x, f.y);
      for (const auto& p : points) {
        std::string label = p.label;
        std::replace(label.begin(), label.end(), '"', '\'');
        dat += fmt::format("{} {} \"{}\"\n", Num(p.x), Num(p.y), label);
      }
      dat += fmt::format("\n\n# {}: Pareto front (lowest {}, highest {})\n", name, f.x, f.y);
      for (size_t i : ParetoFront(xs, ys)) dat += fmt::format("{} {}\n", Num(xs[i]), Num(ys[i]));
      dat += "\n\n";
      const std::string c = Color(k);
      plots.push_back(fmt::format(
          "'{}.dat' index {} using 1:2 with points pt 6 ps 0.6 lc rgb '{}' notitle", id, 3 * k, c));
      plots.push_back(
          fmt::format("'{}.dat' index {} using 1:2 with points pt 7 ps 1.3 lc rgb '{}' notitle", id,
                      3 * k + 1, c));
      plots.push_back(fmt::format(
          "'{}.dat' index {} using 1:2:3 with labels offset 1,0.6 left font ',8' tc rgb '{}' "
          "notitle",
          id, 3 * k + 1, c));
      plots.push_back(
          fmt::format("'{}.dat' index {} using 1:2 with lines lw 2 lc rgb '{}' dt {} title {}", id,
                      3 * k + 2, c, Dash(k), Q(name + " front")));
    }
    const std::string title = Fill(f.title, {{"stage", stage.name}});
    std::string body = fmt::format(
        "  set title {}\n  set xlabel {}\n  set ylabel {}\n  set grid\n"
        "  set key outside below left Left reverse\n  set offsets graph 0.05, graph 0.2, graph "
        "0.05, graph 0.05\n",
        Q(title), Q(f.xlabel), Q(f.ylabel));
    // KL-like costs span decades: a log axis when every point is positive and they do.
    if (lo > 0 && hi / lo > 100) body += "  set logscale x\n  set format x '%g'\n";
    body += fmt::format("  plot {}\n", fmt::join(plots, ", \\\n       "));
    Emit(id, title,
         Fill(f.caption, {{"stage", stage.name},
                          {"seeds", fmt::format("{}", seeds_max)},
                          {"group", grouped ? f.group : "stage"}}),
         dat, Script(id, title, 900, 600 + 22 * static_cast<int>(fronts.size()), body));
  }

  const SweepData& data_;
  fs::path dir_;
  Uncertainty uncertainty_;
  std::vector<std::string>& warnings_;
  std::vector<Figure> figures_;
  Problems problems_;
  size_t opened_ = 0;
};

std::string Tail(const fs::path& file, size_t lines) {
  std::ifstream in(file);
  std::vector<std::string> all;
  for (std::string line; std::getline(in, line);) {
    if (!line.empty()) all.push_back(line);
  }
  size_t from = all.size() > lines ? all.size() - lines : 0;
  return fmt::format("{}", fmt::join(all.begin() + from, all.end(), " | "));
}

void Render(std::vector<Figure>& figures, const fs::path& dir, const std::string& gnuplot,
            std::vector<std::string>& warnings) {
  constexpr size_t kParallel = 4;
  struct Job {
    size_t figure;
    Child child;
  };
  auto finish = [&](Job& job) {
    const ExitStatus status = job.child.Wait();
    Figure& f = figures[job.figure];
    fs::path log = dir / (f.id + ".log");
    bool ok = status.exited() && status.code() == 0 && fs::exists(dir / (f.id + ".png")) &&
              fs::exists(dir / (f.id + ".svg"));
    if (ok) {
      f.png = "figures/" + f.id + ".png";
      f.svg = "figures/" + f.id + ".svg";
      std::error_code ec;
      fs::remove(log, ec);
    } else {
      warnings.push_back(
          fmt::format("gnuplot failed on {} (see {}): {}", f.script, log.string(), Tail(log, 4)));
    }
  };
  std::vector<Job> running;
  for (size_t i = 0; i < figures.size(); ++i) {
    if (running.size() == kParallel) {
      finish(running.front());
      running.erase(running.begin());
    }
    // In the figures' directory, stdin from /dev/null, stdout and stderr into the log.
    SpawnOptions o;
    o.argv = {gnuplot, figures[i].id + ".gp"};
    o.cwd = dir.string();
    o.redirects = {Redirect::Open(STDIN_FILENO, "/dev/null", O_RDONLY),
                   Redirect::Open(STDOUT_FILENO, (dir / (figures[i].id + ".log")).string(),
                                  O_WRONLY | O_CREAT | O_TRUNC),
                   Redirect::Dup(STDERR_FILENO, STDOUT_FILENO)};
    try {
      running.push_back({i, Spawn(o)});
    } catch (const std::system_error& e) {
      warnings.push_back(fmt::format("could not start {} for {}: {}", gnuplot, figures[i].script,
                                     e.code().message()));
    }
  }
  for (Job& job : running) finish(job);
}

}  // namespace

void RenderFigures(std::vector<Figure>& figures, const std::filesystem::path& dir,
                   const std::string& gnuplot, std::vector<std::string>& warnings) {
  Render(figures, dir, gnuplot, warnings);
}

Uncertainty ParseUncertainty(std::string_view name) {
  return name == "std" ? Uncertainty::kStd : Uncertainty::kCi95;
}

std::string_view UncertaintyText(Uncertainty u) {
  return u == Uncertainty::kStd ? "±1 std (ddof = 1)" : "95% CI (Student t)";
}

std::vector<Figure> MakeFigures(const SweepData& data, const std::vector<FigureRequest>& requests,
                                const std::string& report_dir, const std::string& gnuplot,
                                std::vector<std::string>& warnings, const FigureOptions& options) {
  FigureMaker maker(data, report_dir, options.uncertainty, warnings);
  for (const auto& r : requests) {
    bool drawn = false;
    for (const auto& s : data.stages) {
      if (r.stage.empty() || r.stage == s.name) drawn |= maker.Make(r.type, s);
    }
    if (!drawn && !r.quiet) {
      warnings.push_back(
          fmt::format("figure {}{}: no data to draw (no done shard with its "
                      "datasets or metrics), left out",
                      r.type, r.stage.empty() ? "" : " of stage " + r.stage));
    }
  }
  std::vector<Figure>& figures = maker.figures();
  for (auto& f : MakePlots(data, options.plots, report_dir, options.uncertainty, warnings))
    figures.push_back(std::move(f));
  if (!gnuplot.empty() && !figures.empty())
    Render(figures, fs::path(report_dir) / "figures", gnuplot, warnings);
  return std::move(figures);
}

}  // namespace seedgrid::report

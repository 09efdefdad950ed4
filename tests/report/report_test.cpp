#include "coordinator/report/report.h"

#include <algorithm>
#include <cmath>
#include <cstdlib>
#include <fstream>
#include <map>
#include <random>
#include <regex>
#include <set>
#include <sstream>

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include "coordinator/report/render.h"
#include "tests/report/fixture.h"

namespace seedgrid {
namespace {

namespace fs = std::filesystem;
using ::testing::HasSubstr;
using ::testing::Not;
using testing::ShardSpec;
using testing::SweepFixture;
using testing::TempDir;

std::string Slurp(const fs::path& p) {
  std::ifstream in(p, std::ios::binary);
  EXPECT_TRUE(in.good()) << p;
  std::stringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

// RFC 4180 reader (quoted fields, doubled quotes, CRLF), written independently of the writer.
std::vector<std::map<std::string, std::string>> ReadCsv(const std::string& text) {
  std::vector<std::vector<std::string>> rows(1);
  std::string field;
  bool quoted = false;
  for (size_t i = 0; i < text.size(); ++i) {
    char c = text[i];
    if (quoted) {
      if (c == '"' && i + 1 < text.size() && text[i + 1] == '"') {
        field += '"';
        ++i;
      } else if (c == '"') {
        quoted = false;
      } else {
        field += c;
      }
    } else if (c == '"') {
      quoted = true;
    } else if (c == ',') {
      rows.back().push_back(std::move(field));
      field.clear();
    } else if (c == '\r' && i + 1 < text.size() && text[i + 1] == '\n') {
      rows.back().push_back(std::move(field));
      field.clear();
      rows.emplace_back();
      ++i;
    } else {
      field += c;
    }
  }
  if (!rows.back().empty() || !field.empty()) {
    rows.back().push_back(field);
  } else {
    rows.pop_back();
  }
  std::vector<std::map<std::string, std::string>> out;
  for (size_t r = 1; r < rows.size(); ++r) {
    EXPECT_EQ(rows[r].size(), rows[0].size()) << "row " << r;
    std::map<std::string, std::string> m;
    for (size_t c = 0; c < rows[0].size() && c < rows[r].size(); ++c) m[rows[0][c]] = rows[r][c];
    out.push_back(std::move(m));
  }
  return out;
}

// Restores an environment variable at scope exit.
class EnvGuard {
 public:
  explicit EnvGuard(const char* name) : name_(name) {
    if (const char* v = std::getenv(name)) old_ = v;
  }
  ~EnvGuard() {
    if (old_) {
      ::setenv(name_, old_->c_str(), 1);
    } else {
      ::unsetenv(name_);
    }
  }

 private:
  const char* name_;
  std::optional<std::string> old_;
};

ReportOptions Options(const SweepFixture& f, const fs::path& out) {
  ReportOptions o;
  o.registry_path = f.registry_path();
  o.sweep = f.sweep();
  o.out_dir = out.string();
  return o;
}

// ---- table numbers ----

TEST(Report, TableNumbersEqualAnIndependentComputationFromTheRegistry) {
  SweepFixture f("numbers");
  std::mt19937 rng(7);
  std::uniform_real_distribution<double> u(-1.0, 2.0);
  int k = 0;
  for (std::string adapter : {"lora", "ia3"}) {
    for (int rank : {1, 4}) {
      for (int seed = 0; seed < 5; ++seed) {
        ShardStatus st = (++k % 7 == 0) ? ShardStatus::kFailed : ShardStatus::kDone;
        f.Add({"steer",
               1,
               "lora_steer",
               {{"adapter", adapter}, {"lora.rank", rank}},
               seed,
               st,
               {{"steer_delta", u(rng)}, {"kl_at_1", std::abs(u(rng)) * 1e-3}}});
      }
    }
  }
  TempDir out;
  ReportOptions o = Options(f, out.path());
  o.figures = false;
  WriteReport(o);

  // Independent: read rows back, group by the axes' JSON text, naive sums, t from a table.
  Registry reg(f.registry_path(), Registry::Mode::kReadOnly);
  std::map<std::string, double> metric;  // shard:name -> value
  for (const auto& m : reg.MetricsOfSweep("numbers")) metric[m.shard.hex + ":" + m.name] = m.value;
  std::map<std::string, std::vector<double>> values;  // "adapter|rank|metric"
  std::map<std::string, size_t> expected;
  for (const auto& s : reg.Shards("numbers", "steer")) {
    for (std::string name : {"steer_delta", "kl_at_1"}) {
      std::string key = s.key.axes()["adapter"].get<std::string>() + "|" +
                        s.key.axes()["lora.rank"].dump() + "|" + name;
      ++expected[key];
      if (s.status == ShardStatus::kDone)
        values[key].push_back(metric.at(s.key.id().hex + ":" + name));
    }
  }
  const std::map<size_t, double> t975 = {{3, 3.182446305284263}, {4, 2.7764451051977987}};
  auto rows = ReadCsv(Slurp(out.path() / "tables" / "steer.csv"));
  ASSERT_EQ(rows.size(), 8u);
  for (const auto& r : rows) {
    std::string key = r.at("adapter") + "|" + r.at("lora.rank") + "|" + r.at("metric");
    ASSERT_TRUE(values.count(key)) << key;
    const auto& v = values[key];
    double n = static_cast<double>(v.size()), sum = 0, sq = 0;
    for (double x : v) sum += x, sq += x * x;
    double mean = sum / n;
    double sd = std::sqrt((sq - n * mean * mean) / (n - 1));
    double sem = sd / std::sqrt(n);
    double half = t975.at(v.size() - 1) * sem;
    size_t agree =
        std::count_if(v.begin(), v.end(), [&](double x) { return (x > 0) == (mean > 0); });
    EXPECT_EQ(std::stoul(r.at("n")), v.size()) << key;
    EXPECT_EQ(std::stoul(r.at("expected")), expected[key]) << key;
    EXPECT_EQ(r.at("complete"), v.size() == expected[key] ? "true" : "false") << key;
    EXPECT_EQ(r.at("ddof"), "1");
    auto near = [&](const char* col, double want) {
      EXPECT_NEAR(std::stod(r.at(col)), want, 1e-9 * std::max(1.0, std::abs(want)))
          << key << " " << col;
    };
    near("mean", mean);
    near("std", sd);
    near("sem", sem);
    near("ci95_low", mean - half);
    near("ci95_high", mean + half);
    near("min", *std::min_element(v.begin(), v.end()));
    near("max", *std::max_element(v.begin(), v.end()));
    near("sign_agreement", static_cast<double>(agree) / n);
  }
}

// ---- multi-seed analysis: ranking and paired comparisons ----

// Three adapters × five seeds; dora's seed 4 failed (left out of the rankings). Recomputed here
// from the registry with formulas other than the report's: ranks by sorting (no ties in random
// data), ρ = 1 − 6Σd²/(n(n² − 1)), W = 12·S/(m²(n³ − n)), the sign test's p by summing binomial
// terms, the t quantile from a table.
TEST(Report, RankingAndPairedEqualAnIndependentComputation) {
  SweepFixture f("multi",
                 "name: multi\nreport:\n  ranking: {stage: steer, metric: steer_delta}\n"
                 "  paired:\n    - {stage: steer, metric: steer_delta, a: {adapter: lora}, "
                 "b: {adapter: ia3}}\n");
  std::mt19937 rng(11);
  std::uniform_real_distribution<double> u(-1.0, 2.0);
  const std::vector<std::string> adapters = {"dora", "ia3", "lora"};  // table order: by value
  std::map<std::string, std::map<int64_t, double>> value;
  for (const auto& a : adapters) {
    for (int64_t seed = 0; seed < 5; ++seed) {
      const bool failed = a == "dora" && seed == 4;
      const double v = u(rng) + (a == "lora" ? 0.5 : 0.0);
      if (!failed) value[a][seed] = v;
      f.Add({"steer",
             0,
             "lora_steer",
             {{"adapter", a}},
             seed,
             failed ? ShardStatus::kFailed : ShardStatus::kDone,
             failed ? std::vector<std::pair<std::string, double>>{}
                    : std::vector<std::pair<std::string, double>>{{"steer_delta", v}}});
    }
  }
  TempDir out;
  ReportOptions o = Options(f, out.path());
  o.figures = false;
  ReportResult r = WriteReport(o);
  ASSERT_EQ(r.rankings.size(), 1u);

  // Ranks: per seed 0..3, configs sorted by value, highest first.
  std::map<std::string, std::map<int64_t, double>> rank;
  for (int64_t seed = 0; seed < 4; ++seed) {
    std::vector<std::string> order = adapters;
    std::sort(order.begin(), order.end(), [&](const std::string& x, const std::string& y) {
      return value[x][seed] > value[y][seed];
    });
    for (size_t i = 0; i < order.size(); ++i) rank[order[i]][seed] = static_cast<double>(i + 1);
  }
  double rho = 0;
  int pairs = 0;
  for (int64_t s = 0; s < 4; ++s) {
    for (int64_t t = s + 1; t < 4; ++t) {
      double d2 = 0;
      for (const auto& a : adapters) d2 += std::pow(rank[a][s] - rank[a][t], 2);
      rho += 1 - 6 * d2 / (3 * (9 - 1)), ++pairs;
    }
  }
  rho /= pairs;
  double S = 0;
  for (const auto& a : adapters) {
    double sum = 0;
    for (int64_t s = 0; s < 4; ++s) sum += rank[a][s];
    S += std::pow(sum - 4 * 2.0, 2);  // mean rank sum m(n + 1)/2 = 8
  }
  const double W = 12 * S / (16 * (27 - 3));
  auto rows = ReadCsv(Slurp(out.path() / "tables" / "ranking-steer-steer_delta.csv"));
  ASSERT_EQ(rows.size(), 12u);  // 3 configs × 4 complete seeds
  for (const auto& row : rows) {
    const std::string a = row.at("config").substr(std::string("adapter=").size());
    const int64_t seed = std::stoll(row.at("seed"));
    EXPECT_EQ(std::stod(row.at("rank")), rank[a][seed]) << a << " seed " << seed;
    EXPECT_DOUBLE_EQ(std::stod(row.at("value")), value[a][seed]);
    EXPECT_EQ(row.at("best"), "max");
    EXPECT_EQ(row.at("n_seeds"), "4");
    EXPECT_NEAR(std::stod(row.at("mean_spearman")), rho, 1e-12);
    EXPECT_EQ(row.at("spearman_pairs"), "6");
    EXPECT_NEAR(std::stod(row.at("kendall_w")), W, 1e-12);
  }
  EXPECT_THAT(r.rankings[0].dropped, ::testing::ElementsAre("seed 4: no value for adapter=dora"));

  // Paired lora − ia3 over seeds 0..4.
  std::vector<double> d;
  for (int64_t seed = 0; seed < 5; ++seed) d.push_back(value["lora"][seed] - value["ia3"][seed]);
  double mean = 0;
  for (double x : d) mean += x / 5;
  double ss = 0;
  for (double x : d) ss += (x - mean) * (x - mean);
  const double sd = std::sqrt(ss / 4), half = 2.7764451051977987 * sd / std::sqrt(5.0);
  const auto plus = std::count_if(d.begin(), d.end(), [](double x) { return x > 0; });
  const auto minus = std::count_if(d.begin(), d.end(), [](double x) { return x < 0; });
  const long n = plus + minus, k = std::min(plus, minus);
  double tail = 0, binom = 1;  // Σ_{i≤k} C(n, i) / 2^n
  for (long i = 0; i <= k; ++i) {
    tail += binom / std::pow(2.0, static_cast<double>(n));
    binom = binom * static_cast<double>(n - i) / static_cast<double>(i + 1);
  }
  auto paired = ReadCsv(Slurp(out.path() / "tables" / "paired.csv"));
  ASSERT_EQ(paired.size(), 1u);
  const auto& p = paired[0];
  EXPECT_EQ(p.at("a"), "adapter=lora");
  EXPECT_EQ(p.at("b"), "adapter=ia3");
  EXPECT_EQ(p.at("n"), "5");
  EXPECT_NEAR(std::stod(p.at("mean_diff")), mean, 1e-12);
  EXPECT_NEAR(std::stod(p.at("std")), sd, 1e-12);
  EXPECT_NEAR(std::stod(p.at("ci95_low")), mean - half, 1e-12);
  EXPECT_NEAR(std::stod(p.at("ci95_high")), mean + half, 1e-12);
  EXPECT_EQ(std::stol(p.at("a_greater")), plus);
  EXPECT_EQ(std::stol(p.at("b_greater")), minus);
  EXPECT_NEAR(std::stod(p.at("sign_p")), std::min(1.0, 2 * tail), 1e-12);
  EXPECT_EQ(p.at("pairs"), "seed 0;seed 1;seed 2;seed 3;seed 4");

  // Both are in report.md and report.html.
  const std::string md = Slurp(r.index_md), html = Slurp(r.html);
  EXPECT_THAT(md, HasSubstr("## Rankings across seeds"));
  EXPECT_THAT(md, HasSubstr("## Paired comparisons"));
  EXPECT_THAT(html, HasSubstr("Kendall's W"));
  EXPECT_THAT(html, HasSubstr("sign test p"));
}

// Pairs match on every axis neither side names; a selection that matches nothing is an error.
TEST(Report, PairedMatchesOtherAxesAndRejectsEmptySelections) {
  SweepFixture f("pairs",
                 "name: pairs\nreport:\n  paired:\n    - {metric: m, a: {adapter: lora}, "
                 "b: {adapter: ia3}}\n");
  for (std::string a : {"lora", "ia3"}) {
    for (int rank : {1, 4}) {
      for (int64_t seed = 0; seed < 2; ++seed) {
        f.Add({"steer",
               0,
               "lora_steer",
               {{"adapter", a}, {"lora.rank", rank}},
               seed,
               ShardStatus::kDone,
               {{"m", (a == "lora" ? 10.0 : 0.0) + rank + seed}}});
      }
    }
  }
  TempDir out;
  ReportOptions o = Options(f, out.path());
  o.figures = false;
  ReportResult r = WriteReport(o);
  ASSERT_EQ(r.paired.size(), 1u);
  EXPECT_EQ(r.paired[0].pairs.size(), 4u);  // (seed, lora.rank)
  EXPECT_EQ(r.paired[0].pairs[0], "seed 0, lora.rank=1");
  EXPECT_DOUBLE_EQ(r.paired[0].summary.diff.mean, 10.0);
  EXPECT_DOUBLE_EQ(r.paired[0].summary.diff.std, 0.0);
  EXPECT_EQ(r.paired[0].summary.a_greater, 4u);

  SweepFixture bad("nopair",
                   "name: nopair\nreport:\n  paired:\n    - {metric: m, a: {adapter: lora}, "
                   "b: {adapter: dora}}\n");
  bad.Add({"steer", 0, "lora_steer", {{"adapter", "lora"}}, 0, ShardStatus::kDone, {{"m", 1}}});
  try {
    WriteReport(Options(bad, out.path()));
    FAIL() << "no error";
  } catch (const UsageError& e) {
    EXPECT_THAT(e.what(), HasSubstr("paired adapter=lora vs adapter=dora: no stage with metric "
                                    "'m' has shards of both"));
  }
}

// ---- plot figures from the spec's report: section ----

// Rows of a gnuplot .dat file by block: each block starts with "# <label>" and holds numbers.
std::map<std::string, std::vector<std::vector<double>>> DatBlocks(const std::string& text) {
  std::map<std::string, std::vector<std::vector<double>>> out;
  std::istringstream in(text);
  std::string line, label;
  bool header = false;
  for (std::string l; std::getline(in, l);) {
    if (l.starts_with("# ")) {
      if (!header) label = l.substr(2);  // the first comment of a block names it
      header = true;
      continue;
    }
    header = false;
    if (l.empty()) continue;
    std::istringstream row(l);
    std::vector<double> v;
    for (std::string w; row >> w;) v.push_back(w == "NaN" ? NAN : std::stod(w));
    out[label].push_back(v);
  }
  return out;
}

const char* kPlotSpec = R"(name: plots
report:
  figures:
    - {type: line, stage: steer, x: lora.rank, y: steer_delta, group_by: adapter}
    - {type: line, stage: ablate, y: "retained.layer.*.keep", xlabel: layer}
    - {type: bars, stage: steer, y: steer_delta, group_by: adapter}
    - {type: scatter, stage: steer, x: kl_at_1, y: steer_delta, front: true}
    - {type: heatmap, stage: ablate, y: "retained.*"}
)";

// Four adapters × three ranks × three seeds (one failed), and an ablation stage.
void AddPlotSweep(SweepFixture& f, std::map<std::string, std::vector<double>>& values) {
  std::mt19937 rng(5);
  std::normal_distribution<double> noise(0.0, 1.0);
  for (std::string a : {"lora", "ia3", "dora", "oft"}) {
    for (int rank : {1, 2, 4}) {
      for (int seed = 0; seed < 3; ++seed) {
        const bool failed = a == "oft" && rank == 2 && seed == 1;
        const double v = rank * (a == "lora" ? 1.0 : 0.5) + 0.3 * noise(rng);
        if (!failed) values[fmt::format("{}|{}", a, rank)].push_back(v);
        f.Add({"steer",
               0,
               "lora_steer",
               {{"adapter", a}, {"lora.rank", rank}},
               seed,
               failed ? ShardStatus::kFailed : ShardStatus::kDone,
               failed ? std::vector<std::pair<std::string, double>>{}
                      : std::vector<std::pair<std::string, double>>{
                            {"steer_delta", v}, {"kl_at_1", 0.01 * rank + 0.001 * noise(rng)}}});
      }
    }
  }
  for (std::string a : {"lora", "ia3"}) {
    for (int seed = 0; seed < 3; ++seed) {
      const double l0 = 0.3 + 0.1 * noise(rng), l1 = 1.03 + 0.01 * seed;
      values["layer0|" + a].push_back(l0);
      values["layer1|" + a].push_back(l1);
      f.Add({"ablate",
             1,
             "ablation",
             {{"adapter", a}},
             seed,
             ShardStatus::kDone,
             {{"retained.full", 1.0},
              {"retained.zero", 0.0},
              {"retained.layer.0.keep", l0},
              {"retained.layer.1.keep", l1},
              {"retained.module.attention.keep", -0.0001 * (seed + 1)}}});
    }
  }
}

TEST(Report, PlotFiguresEqualAnIndependentComputation) {
  SweepFixture f("plots", kPlotSpec);
  std::map<std::string, std::vector<double>> values;
  AddPlotSweep(f, values);
  TempDir out;
  ReportResult r = WriteReport(Options(f, out.path()));
  std::map<std::string, const report::Figure*> by_id;
  for (const auto& fig : r.figures) by_id[fig.id] = &fig;
  for (const char* id :
       {"steer-line-steer_delta-lora.rank", "ablate-line-retained.layer._.keep",
        "steer-bars-steer_delta", "steer-scatter-steer_delta-kl_at_1", "ablate-heatmap-retained._"})
    ASSERT_TRUE(by_id.count(id)) << id;

  // Independent: mean and mean ± t(0.975, n − 1)·s/√n, t from a table.
  const std::map<size_t, double> t975 = {{2, 12.706204736174698}, {3, 4.302652729911275}};
  auto expect_point = [&](const std::vector<double>& row, const std::vector<double>& v,
                          const std::string& what) {
    const double n = static_cast<double>(v.size());
    double mean = 0, ss = 0;
    for (double x : v) mean += x / n;
    for (double x : v) ss += (x - mean) * (x - mean);
    const double half = t975.at(v.size()) * std::sqrt(ss / (n - 1)) / std::sqrt(n);
    ASSERT_EQ(row.size(), 5u) << what;
    EXPECT_NEAR(row[1], mean, 1e-5 * std::max(1.0, std::abs(mean))) << what;
    EXPECT_NEAR(row[2], mean - half, 1e-5 * std::max(1.0, std::abs(mean))) << what;
    EXPECT_NEAR(row[3], mean + half, 1e-5 * std::max(1.0, std::abs(mean))) << what;
    EXPECT_EQ(row[4], n) << what;
  };
  auto line = DatBlocks(Slurp(out.path() / "figures" / "steer-line-steer_delta-lora.rank.dat"));
  ASSERT_EQ(line.size(), 4u);  // one line per adapter
  for (std::string a : {"lora", "ia3", "dora", "oft"}) {
    const auto& rows = line["adapter=" + a];
    ASSERT_EQ(rows.size(), 3u) << a;
    for (size_t i = 0; i < 3; ++i) {
      const int rank = std::vector<int>{1, 2, 4}[i];
      EXPECT_EQ(rows[i][0], rank);  // sorted by x
      expect_point(rows[i], values[fmt::format("{}|{}", a, rank)], a);
    }
  }
  auto layers = DatBlocks(Slurp(out.path() / "figures" / "ablate-line-retained.layer._.keep.dat"));
  ASSERT_EQ(layers.size(), 2u);
  for (std::string a : {"lora", "ia3"}) {
    ASSERT_EQ(layers["adapter=" + a].size(), 2u) << a;  // the default groups: every axis
    EXPECT_EQ(layers["adapter=" + a][0][0], 0);         // x = the '*' of the pattern
    expect_point(layers["adapter=" + a][0], values["layer0|" + a], a);
    expect_point(layers["adapter=" + a][1], values["layer1|" + a], a);
  }
  // Captions say what the bars are.
  EXPECT_THAT(by_id["steer-line-steer_delta-lora.rank"]->caption, HasSubstr("95% CI (Student t)"));
  EXPECT_THAT(by_id["steer-bars-steer_delta"]->caption, HasSubstr("95% CI (Student t)"));
  EXPECT_THAT(by_id["steer-scatter-steer_delta-kl_at_1"]->caption, HasSubstr("95% CI (Student t)"));
  // Scatter: one point per done seed, per config.
  size_t points = 0;
  std::vector<std::pair<double, double>> means, front;
  for (const auto& [label, rows] :
       DatBlocks(Slurp(out.path() / "figures" / "steer-scatter-steer_delta-kl_at_1.dat"))) {
    if (label.ends_with(": mean"))
      means.emplace_back(rows.at(0).at(0), rows.at(0).at(1));
    else if (label.starts_with("Pareto front"))
      for (const auto& r : rows) front.emplace_back(r.at(0), r.at(1));
    else
      points += rows.size();
  }
  EXPECT_EQ(points, 35u);
  // `front: true`: exactly the means no other mean beats with a lower x and a higher y, by brute
  // force here, in increasing x.
  std::vector<std::pair<double, double>> expected;
  for (const auto& a : means) {
    bool beaten = false;
    for (const auto& b : means) beaten |= b.first <= a.first && b.second >= a.second && b != a;
    if (!beaten) expected.push_back(a);
  }
  std::sort(expected.begin(), expected.end());
  ASSERT_FALSE(expected.empty());
  ASSERT_EQ(front.size(), expected.size());
  for (size_t i = 0; i < front.size(); ++i) {
    EXPECT_NEAR(front[i].first, expected[i].first, 1e-9 * (1 + std::fabs(expected[i].first)));
    EXPECT_NEAR(front[i].second, expected[i].second, 1e-9 * (1 + std::fabs(expected[i].second)));
  }
  EXPECT_THAT(by_id["steer-scatter-steer_delta-kl_at_1"]->caption, HasSubstr("Pareto front"));
  // Heatmap cells: mean, n and interval per cell in the cells CSV, the same numbers.
  auto cells = ReadCsv(Slurp(out.path() / "figures" / "ablate-heatmap-retained._.cells.csv"));
  ASSERT_EQ(cells.size(), 10u);  // 5 metrics × 2 adapters
  for (const auto& c : cells) {
    if (c.at("row") != "retained.layer.1.keep") continue;
    const auto& v = values["layer1|" + c.at("column").substr(std::string("adapter=").size())];
    expect_point({0, std::stod(c.at("mean")), std::stod(c.at("ci95_low")),
                  std::stod(c.at("ci95_high")), std::stod(c.at("n"))},
                 v, c.at("column"));
  }
  // In the HTML the cells show n and the CI on hover (title), and are linked as CSV.
  const std::string html = Slurp(r.html);
  EXPECT_THAT(html, HasSubstr("title=\"mean 1.04, n = 3/3, 95% CI ["));
  EXPECT_THAT(html, HasSubstr("figures/ablate-heatmap-retained._.cells.csv"));
  if (report::FindOnPath("gnuplot").empty()) GTEST_SKIP() << "gnuplot not installed";
  EXPECT_TRUE(r.warnings.empty()) << r.warnings.front();
  for (const auto& fig : r.figures) {
    ASSERT_FALSE(fig.png.empty()) << fig.id;
    EXPECT_GT(fs::file_size(out.path() / fig.png), 2000u) << fig.id;
  }
  // The heatmap's labels: the mean 1.04 of 1.03, 1.04, 1.05 unclipped, 0.00 and no "-0.00" for
  // the means of −0.0001·(seed + 1).
  const std::string svg = Slurp(out.path() / "figures" / "ablate-heatmap-retained._.svg");
  EXPECT_NE(svg.find("<text>1.04</text>"), std::string::npos);
  EXPECT_NE(svg.find("<text>0.00</text>"), std::string::npos);
  EXPECT_EQ(svg.find("-0.00"), std::string::npos);
}

TEST(Report, UncertaintyStdMakesBandsMeanPlusMinusStd) {
  std::string spec = kPlotSpec;
  spec.insert(spec.find("report:\n") + 8, "  uncertainty: std\n");
  SweepFixture f("plots", spec);
  std::map<std::string, std::vector<double>> values;
  AddPlotSweep(f, values);
  TempDir out;
  ReportOptions o = Options(f, out.path());
  ReportResult r = WriteReport(o);
  auto line = DatBlocks(Slurp(out.path() / "figures" / "steer-line-steer_delta-lora.rank.dat"));
  const auto& v = values["lora|2"];
  double mean = 0, ss = 0;
  for (double x : v) mean += x / 3;
  for (double x : v) ss += (x - mean) * (x - mean);
  ASSERT_EQ(line["adapter=lora"].size(), 3u);
  EXPECT_NEAR(line["adapter=lora"][1][2], mean - std::sqrt(ss / 2), 1e-5);
  EXPECT_NEAR(line["adapter=lora"][1][3], mean + std::sqrt(ss / 2), 1e-5);
  for (const auto& fig : r.figures) {
    if (fig.id.find("heatmap") == std::string::npos)
      EXPECT_THAT(fig.caption, HasSubstr("±1 std (ddof = 1)")) << fig.id;
  }
}

// HTML: every table sortable by an inline script, no scroll box that would cut a long table
// when printed or captured, figures linked full-size.
TEST(Report, HtmlTablesAreSortableAndNotScrollBoxed) {
  SweepFixture f("plots", kPlotSpec);
  std::map<std::string, std::vector<double>> values;
  AddPlotSweep(f, values);
  TempDir out;
  ReportResult r = WriteReport(Options(f, out.path()));
  const std::string html = Slurp(r.html);
  EXPECT_THAT(html, Not(HasSubstr("overflow:auto")));
  EXPECT_THAT(html, Not(HasSubstr("max-height")));
  EXPECT_THAT(html, Not(HasSubstr("class=\"scroll\"")));
  EXPECT_THAT(html, HasSubstr("@media print"));
  std::regex table("<table class=\"([^\"]*)\">");
  size_t tables = 0;
  for (auto it = std::sregex_iterator(html.begin(), html.end(), table);
       it != std::sregex_iterator(); ++it) {
    const std::string cls = (*it)[1];
    if (cls == "heatcells") continue;
    ++tables;
    EXPECT_THAT(cls, HasSubstr("sortable"));
  }
  EXPECT_GE(tables, 2u);  // the stage tables
  EXPECT_THAT(html, HasSubstr("querySelectorAll(\"table.sortable\")"));
  EXPECT_THAT(html, Not(HasSubstr("<script src")));  // inline, no CDN
  if (!r.figures.empty() && !r.figures[0].png.empty())
    EXPECT_THAT(html, HasSubstr("<a href=\"" + r.figures[0].svg + "\" target=\"_blank\""));
}

// ---- several sweeps side by side ----

TEST(Report, SeveralSweepsSideBySideGroupedByTheirSharedAxes) {
  SweepFixture f("first");
  std::map<std::string, std::vector<double>> values;  // "sweep|adapter"
  std::mt19937 rng(2);
  std::uniform_real_distribution<double> u(0.0, 1.0);
  for (std::string sweep : {"first", "second"}) {
    if (sweep == "second") f.AddSweep(sweep);
    for (std::string a : {"lora", "ia3"}) {
      for (int seed = 0; seed < 3; ++seed) {
        const double v = u(rng) + (sweep == "second" ? 1.0 : 0.0);
        values[sweep + "|" + a].push_back(v);
        Json axes = {{"adapter", a}};
        if (sweep == "second") axes["lr"] = 0.1;  // an axis only the second sweep has
        f.Add({"steer",
               0,
               "lora_steer",
               axes,
               seed,
               ShardStatus::kDone,
               {{"steer_delta", v}, {"only_first", 1.0 * (sweep == "first")}}});
      }
    }
  }
  TempDir out;
  ReportOptions o = Options(f, out.path());
  o.sweep = "first";
  o.compare = {"second"};
  ReportResult r = WriteReport(o);
  ASSERT_EQ(r.tables.size(), 1u);
  EXPECT_EQ(r.tables[0].keys, (std::vector<std::string>{"sweep", "adapter"}));  // lr not shared
  EXPECT_EQ(r.tables[0].groups.size(), 4u);
  auto rows = ReadCsv(Slurp(out.path() / "tables" / "steer.csv"));
  size_t checked = 0;
  for (const auto& row : rows) {
    if (row.at("metric") != "steer_delta") continue;
    const auto& v = values.at(row.at("sweep") + "|" + row.at("adapter"));
    double mean = 0;
    for (double x : v) mean += x / 3;
    EXPECT_NEAR(std::stod(row.at("mean")), mean, 1e-12);
    EXPECT_EQ(row.at("n"), "3");
    ++checked;
  }
  EXPECT_EQ(checked, 4u);
  ASSERT_FALSE(r.figures.empty());
  EXPECT_EQ(r.figures[0].id, "compare-steer-steer_delta");
  const std::string md = Slurp(r.index_md);
  EXPECT_THAT(md, HasSubstr("# Comparison: sweeps first, second"));
  EXPECT_THAT(md, HasSubstr("| first | lora |"));
  EXPECT_THAT(md, HasSubstr("| second | ia3 |"));
  // A stage no sweep shares is a usage error.
  o.stage = "nope";
  EXPECT_THROW(WriteReport(o), UsageError);
}

// ---- a failed seed ----

class FailedSeed : public ::testing::Test {
 protected:
  void SetUp() override {
    for (int seed = 0; seed < 3; ++seed) {
      f_.Add({"steer",
              1,
              "lora_steer",
              {{"adapter", "lora"}},
              seed,
              seed == 1 ? ShardStatus::kFailed : ShardStatus::kDone,
              seed == 1
                  ? std::vector<std::pair<std::string, double>>{}
                  : std::vector<std::pair<std::string, double>>{{"steer_delta", 1.0 + seed}}});
    }
    ReportOptions o = Options(f_, out_.path());
    o.figures = false;
    result_ = WriteReport(o);
  }
  SweepFixture f_{"failing"};
  TempDir out_;
  ReportResult result_;
};

TEST_F(FailedSeed, ShowsNTwoListsTheMissingSeedAndFlagsTheGroup) {
  ASSERT_EQ(result_.tables.size(), 1u);
  const auto& g = result_.tables[0].groups.at(0);
  EXPECT_FALSE(g.complete);
  EXPECT_EQ(g.cells.at(0).summary.n, 2u);
  EXPECT_EQ(g.cells.at(0).expected, 3u);
  EXPECT_DOUBLE_EQ(g.cells.at(0).summary.mean, 2.0);  // seeds 0 and 2: 1 and 3

  auto rows = ReadCsv(Slurp(out_.path() / "tables" / "steer.csv"));
  ASSERT_EQ(rows.size(), 1u);
  EXPECT_EQ(rows[0].at("n"), "2");
  EXPECT_EQ(rows[0].at("expected"), "3");
  EXPECT_EQ(rows[0].at("complete"), "false");
  EXPECT_EQ(rows[0].at("seeds"), "0;2");
  EXPECT_EQ(rows[0].at("missing"), "seed 1 failed");

  std::string md = Slurp(out_.path() / "tables" / "steer.md");
  EXPECT_THAT(md, HasSubstr("| 2/3 ⚠ |"));
  EXPECT_THAT(md, HasSubstr("seed 1 failed"));
  std::string tex = Slurp(out_.path() / "tables" / "steer.tex");
  EXPECT_THAT(tex, HasSubstr("2/3$^\\dagger$"));
  EXPECT_THAT(tex, HasSubstr("seed 1 failed"));
  std::string index = Slurp(result_.index_md);
  EXPECT_THAT(index, HasSubstr("1 group INCOMPLETE"));
  EXPECT_THAT(index, HasSubstr("- adapter=lora: seed 1 failed"));
  EXPECT_THAT(index, HasSubstr("**1 shard is not done**"));
  std::string html = Slurp(result_.html);
  EXPECT_THAT(html, HasSubstr("<tr class=\"incomplete\">"));
  EXPECT_THAT(html, HasSubstr("seed 1 failed"));
}

TEST(Report, RunningPendingAndMetriclessSeedsAreListedWithTheirReason) {
  SweepFixture f("running");
  f.Add({"s", 0, "chaos", {}, 0, ShardStatus::kDone, {{"value", 1}}});
  f.Add({"s", 0, "chaos", {}, 1, ShardStatus::kRunning, {}});
  f.Add({"s", 0, "chaos", {}, 2, ShardStatus::kPending, {}});
  f.Add({"s", 0, "chaos", {}, 3, ShardStatus::kDone, {{"other", 1}}});
  f.Add({"s", 0, "chaos", {}, 4, ShardStatus::kDone, {{"value", NAN}}});
  TempDir out;
  ReportResult r = WriteReport(Options(f, out.path()));
  ASSERT_EQ(r.tables.size(), 1u);
  ASSERT_EQ(r.tables[0].metrics, (std::vector<std::string>{"other", "value"}));
  const auto& c = r.tables[0].groups.at(0).cells.at(1);
  EXPECT_EQ(c.summary.n, 1u);
  EXPECT_EQ(report::MissingText(c),
            "seed 1 running; seed 2 pending; seed 3 no metric; seed 4 not finite (nan)");
  EXPECT_TRUE(r.figures.empty());  // chaos only: tables only
  EXPECT_TRUE(r.warnings.empty()) << r.warnings.front();
}

// ---- options ----

TEST(Report, GroupByPoolsTheOtherAxes) {
  SweepFixture f("pool");
  for (int rank : {1, 4}) {
    for (int seed = 0; seed < 2; ++seed) {
      f.Add({"steer",
             0,
             "lora_steer",
             {{"adapter", "lora"}, {"lora.rank", rank}},
             seed,
             ShardStatus::kDone,
             {{"steer_delta", rank + 0.1 * seed}}});
    }
  }
  TempDir out;
  ReportOptions o = Options(f, out.path());
  o.group_by = {"adapter"};
  o.figures = false;
  ReportResult r = WriteReport(o);
  ASSERT_EQ(r.tables.size(), 1u);
  EXPECT_EQ(r.tables[0].keys, std::vector<std::string>{"adapter"});
  ASSERT_EQ(r.tables[0].groups.size(), 1u);
  EXPECT_EQ(r.tables[0].groups[0].cells.at(0).summary.n, 4u);
  EXPECT_NEAR(r.tables[0].groups[0].cells.at(0).summary.mean, (1 + 1.1 + 4 + 4.1) / 4, 1e-12);
}

TEST(Report, UsageErrorsAreReportedAllAtOnce) {
  SweepFixture f("errs");
  f.Add({"steer",
         0,
         "lora_steer",
         {{"adapter", "lora"}},
         0,
         ShardStatus::kDone,
         {{"steer_delta", 1}}});
  TempDir out;
  ReportOptions o = Options(f, out.path());
  o.sweep = "nope";
  try {
    WriteReport(o);
    FAIL() << "no error for an unknown sweep";
  } catch (const UsageError& e) {
    EXPECT_THAT(e.what(), HasSubstr("unknown sweep 'nope'"));
    EXPECT_THAT(e.what(), HasSubstr("errs"));
  }
  o = Options(f, out.path());
  o.stage = "steer";
  o.metrics = {"steer_delta", "no_such_metric"};
  o.group_by = {"no_such_axis"};
  o.formats = {"md", "pdf"};
  try {
    WriteReport(o);
    FAIL() << "no error";
  } catch (const UsageError& e) {
    EXPECT_THAT(e.what(), HasSubstr("unknown format 'pdf'"));
    EXPECT_THAT(e.what(), HasSubstr("no metric 'no_such_metric' (metrics: steer_delta)"));
    EXPECT_THAT(e.what(), HasSubstr("no axis or param 'no_such_axis'"));
  }
  o = Options(f, out.path());
  o.stage = "nostage";
  EXPECT_THROW(WriteReport(o), UsageError);
  EXPECT_FALSE(fs::exists(out.path() / "report.md"));  // nothing written on a usage error
}

TEST(Report, SpecReportSectionPicksTablesAndRejectsUnknownKeys) {
  SweepFixture f("section",
                 "name: section\nstages: []\nreport:\n  tables:\n"
                 "    - {stage: steer, metrics: [steer_delta], group_by: [adapter]}\n"
                 "  formats: [md, csv]\n");
  for (int rank : {1, 2}) {
    f.Add({"steer",
           0,
           "lora_steer",
           {{"adapter", "lora"}, {"lora.rank", rank}},
           0,
           ShardStatus::kDone,
           {{"steer_delta", 1.0 * rank}, {"kl_at_1", 0.1}}});
  }
  TempDir out;
  ReportResult r = WriteReport(Options(f, out.path()));
  ASSERT_EQ(r.tables.size(), 1u);
  EXPECT_EQ(r.tables[0].metrics, std::vector<std::string>{"steer_delta"});
  EXPECT_EQ(r.tables[0].keys, std::vector<std::string>{"adapter"});
  EXPECT_TRUE(fs::exists(out.path() / "tables" / "steer.csv"));
  EXPECT_FALSE(fs::exists(out.path() / "tables" / "steer.tex"));
  EXPECT_TRUE(r.html.empty());

  // A section the launch would have refused (a registry written by hand or by an older
  // seedgrid) is refused here too, with where: the section is read through ParseReportSpec.
  SweepFixture bad("bad", "name: bad\nreport:\n  tabels: []\n  formats: [md, pdf]\n");
  bad.Add({"steer", 0, "lora_steer", {}, 0, ShardStatus::kDone, {{"steer_delta", 1}}});
  try {
    WriteReport(Options(bad, out.path()));
    FAIL() << "no error";
  } catch (const UsageError& e) {
    EXPECT_THAT(e.what(), HasSubstr("stored spec of sweep 'bad':3: report: unknown key 'tabels'"));
    EXPECT_THAT(e.what(),
                HasSubstr("stored spec of sweep 'bad':4: report: formats: unknown format 'pdf'"));
  }
  // Figure types are the report's own check.
  SweepFixture pie("pie", "name: pie\nreport:\n  figures: [pie_chart]\n");
  pie.Add({"steer", 0, "lora_steer", {}, 0, ShardStatus::kDone, {{"steer_delta", 1}}});
  try {
    WriteReport(Options(pie, out.path()));
    FAIL() << "no error";
  } catch (const UsageError& e) {
    EXPECT_THAT(e.what(), HasSubstr("unknown figure type 'pie_chart'"));
  }
}

TEST(Report, LatexSpecialCharactersInParamsAreEscaped) {
  SweepFixture f("latex");
  const std::string nasty = "50%_&$#{x}~^\\y";
  f.Add({"st_age", 0, "chaos", {{"lr_sched", nasty}}, 0, ShardStatus::kDone, {{"loss_%", 1.5}}});
  f.Add({"st_age", 0, "chaos", {{"lr_sched", nasty}}, 1, ShardStatus::kDone, {{"loss_%", 2.5}}});
  TempDir out;
  WriteReport(Options(f, out.path()));
  std::string tex = Slurp(out.path() / "tables" / "st_age.tex");
  EXPECT_THAT(tex, HasSubstr("lr\\_sched & metric"));
  EXPECT_THAT(tex, HasSubstr("50\\%\\_\\&\\$\\#\\{x\\}\\textasciitilde{}\\textasciicircum{}"
                             "\\textbackslash{}y & loss\\_\\% &"));
  EXPECT_THAT(tex, HasSubstr("stage st\\_age (chaos)"));
  EXPECT_THAT(tex, Not(HasSubstr(nasty)));
  // In the data row, once escapes and math are taken out, only the 9 column separators remain.
  bool seen = false;
  std::istringstream lines(tex);
  for (std::string line; std::getline(lines, line);) {
    if (!line.starts_with("50")) continue;
    seen = true;
    std::string s =
        std::regex_replace(line, std::regex(R"(\\text[a-z]+\{\}|\\[&%$#_{}]|\$[^$]*\$|\\\\$)"), "");
    EXPECT_EQ(std::count(s.begin(), s.end(), '&'), 9) << line;
    s.erase(std::remove(s.begin(), s.end(), '&'), s.end());
    EXPECT_EQ(s.find_first_of("%#_{}~^\\$"), std::string::npos) << line << " -> " << s;
  }
  EXPECT_TRUE(seen);
  // The CSV keeps the raw value, quoted where RFC 4180 says so.
  auto rows = ReadCsv(Slurp(out.path() / "tables" / "st_age.csv"));
  ASSERT_EQ(rows.size(), 1u);
  EXPECT_EQ(rows[0].at("lr_sched"), nasty);
}

TEST(Report, HostileAxisValuesReachNeitherMarkdownAsHtmlNorCsvAsFormulas) {
  SweepFixture f("hostile");
  const std::string script = "<script>alert(1)</script>|x";
  const std::string formula = "=HYPERLINK(\"http://evil.example\",\"click\")";
  const Json axes = {{"mode", script}, {"note", formula}, {"alpha", -0.5}, {"tag", "-1"}};
  f.Add({"st", 0, "chaos", axes, 0, ShardStatus::kDone, {{"loss", -1.5}}});
  f.Add({"st", 0, "chaos", axes, 1, ShardStatus::kFailed, {}});  // an incomplete group: listed
  TempDir out;
  WriteReport(Options(f, out.path()));
  for (const fs::path& md : {out.path() / "report.md", out.path() / "tables" / "st.md"}) {
    SCOPED_TRACE(md.string());
    const std::string text = Slurp(md);
    EXPECT_THAT(text, Not(HasSubstr("<script")));
    EXPECT_THAT(text, HasSubstr("&lt;script&gt;alert(1)&lt;/script&gt;\\|x"));
  }
  // The incomplete-group list in report.md quotes the label (axis values) outside the table.
  EXPECT_THAT(Slurp(out.path() / "report.md"), HasSubstr("- alpha=-0.5, mode=&lt;script&gt;"));
  auto rows = ReadCsv(Slurp(out.path() / "tables" / "st.csv"));
  ASSERT_EQ(rows.size(), 1u);
  EXPECT_EQ(rows[0].at("note"), "'" + formula);
  EXPECT_EQ(rows[0].at("mode"), script);
  EXPECT_EQ(rows[0].at("alpha"), "-0.5");  // numbers stay numbers
  EXPECT_EQ(rows[0].at("tag"), "-1");
  EXPECT_EQ(rows[0].at("values"), "-1.5");
}

// ---- every family, links and figures ----

void AddEveryFamily(SweepFixture& f) {
  std::mt19937 rng(3);
  std::normal_distribution<double> noise(0.0, 1.0);
  f.Add({"base",
         0,
         "pretrain",
         {},
         0,
         ShardStatus::kDone,
         {{"final_loss", 0.12}, {"task_accuracy", 0.98}},
         [&](H5Writer& w) {
           std::vector<float> loss(300);
           for (size_t i = 0; i < loss.size(); ++i)
             loss[i] = 4.0f * std::exp(-0.02f * i) + 0.1f + 0.02f * noise(rng);
           w.Write("train/loss", loss);
         }});
  for (std::string adapter : {"lora", "ia3"}) {
    for (int seed = 0; seed < 3; ++seed) {
      double slope = adapter == "lora" ? 1.5 : 0.7;
      f.Add({"steer",
             1,
             "lora_steer",
             {{"adapter", adapter}},
             seed,
             seed == 2 && adapter == "ia3" ? ShardStatus::kFailed : ShardStatus::kDone,
             {{"steer_delta", slope + 0.1 * noise(rng)}, {"kl_at_1", 0.01}},
             [&](H5Writer& w) {
               std::vector<double> alphas = {-2, -1, 0, 1, 2};
               std::vector<float> lr(5 * 16);
               for (size_t a = 0; a < 5; ++a) {
                 for (size_t r = 0; r < 16; ++r)
                   lr[a * 16 + r] = slope * alphas[a] + 0.3 * noise(rng) + 0.2 * seed;
               }
               w.Write("eval/alphas", alphas);
               w.Write("eval/logratio", lr.data(), Shape{5, 16});
               std::vector<float> pos(120), neg(120);
               for (size_t i = 0; i < pos.size(); ++i) {
                 pos[i] = 2.0f * std::exp(-0.03f * i) + 0.3f + 0.05f * noise(rng);
                 neg[i] = 2.2f * std::exp(-0.025f * i) + 0.35f + 0.05f * noise(rng);
               }
               w.Write("train/loss_pos", pos);
               w.Write("train/loss_neg", neg);
             }});
    }
  }
  for (std::string adapter : {"lora", "ia3"}) {
    for (int seed = 0; seed < 3; ++seed) {
      std::vector<std::pair<std::string, double>> m = {
          {"retained.full", 1.0},
          {"retained.zero", 0.0},
          {"retained.random_norm_matched", 0.02 * noise(rng)},
          {"retained.attention_keep", 0.6 + 0.05 * noise(rng)},
          {"retained.mlp_keep", 0.35 + 0.05 * noise(rng)},
          {"retained.layer0_keep", 0.2},
          {"retained.svd_top25_keep", 0.8 + 0.05 * noise(rng)},
          {"retained.svd_top25_drop", 0.15 - 0.3 * (adapter == "ia3")}};
      f.Add({"ablate", 2, "ablation", {{"adapter", adapter}}, seed, ShardStatus::kDone, m});
    }
  }
  f.Add({"heads",
         3,
         "ablation",
         {},
         0,
         ShardStatus::kDone,
         {{"max_delta_ce", 0.9}},
         [&](H5Writer& w) {
           std::vector<double> prev(2 * 4, 0.05), ind(2 * 4, 0.03), dce(2 * 4, 0.01);
           prev[1] = 0.92;     // layer 0 head 1: previous-token head
           ind[4 + 2] = 0.85;  // layer 1 head 2: induction head
           dce[4 + 2] = 0.9;
           w.Write("heads/prev_token", prev.data(), Shape{2, 4});
           w.Write("heads/induction", ind.data(), Shape{2, 4});
           w.Write("heads/delta_ce", dce.data(), Shape{2, 4});
         }});
  for (int i = 0; i < 2; ++i) {
    f.Add({"harvest",
           4,
           "harvest",
           {},
           0,
           ShardStatus::kDone,
           {},
           [](H5Writer& w) { w.Write("partial", std::vector<int64_t>{1}); },
           "map"});
  }
  f.Add({"harvest",
         4,
         "harvest",
         {},
         0,
         ShardStatus::kDone,
         {{"n_tokens", 4096}, {"dead_fraction", 0.1}},
         [&](H5Writer& w) {
           std::vector<double> d(512);
           for (size_t c = 0; c < d.size(); ++c)
             d[c] = c % 10 == 0 ? 0.0
                                : std::pow(10.0, -3.5 + 3.0 * (c % 97) / 97.0 + 0.2 * noise(rng));
           w.Write("firing_density", d);
         },
         "reduce"});
}

// Link targets: every `open`...`close` span (a plain scan: std::regex recurses per character and
// overflows the stack on the embedded base64 images).
std::vector<std::string> Links(const std::string& text, const std::string& open, char close) {
  std::vector<std::string> out;
  for (size_t at = text.find(open); at != std::string::npos; at = text.find(open, at + 1)) {
    size_t start = at + open.size();
    size_t end = text.find(close, start);
    if (end == std::string::npos) break;
    std::string target = text.substr(start, end - start);
    if (target.starts_with("data:") || target.starts_with("http") || target.starts_with("#"))
      continue;
    out.push_back(target);
  }
  return out;
}

TEST(Report, EveryLinkInReportMdAndHtmlPointsToAFileThatExists) {
  SweepFixture f("family");
  AddEveryFamily(f);
  TempDir out;
  ReportResult r = WriteReport(Options(f, out.path()));
  std::string md = Slurp(r.index_md);
  std::string html = Slurp(r.html);
  auto md_links = Links(md, "](", ')');
  auto html_links = Links(html, "href=\"", '"');
  for (auto& l : Links(html, "src=\"", '"')) html_links.push_back(l);
  // 5 stages × 3 formats, 1 html, and per figure at least data + script.
  EXPECT_GE(md_links.size(), 16u + 2 * r.figures.size());
  EXPECT_GE(html_links.size(), 16u);
  for (const auto& l : md_links)
    EXPECT_TRUE(fs::is_regular_file(out.path() / l)) << "report.md → " << l;
  for (const auto& l : html_links)
    EXPECT_TRUE(fs::is_regular_file(out.path() / l)) << "report.html → " << l;
  // The incomplete ia3 group is flagged in the steer table.
  EXPECT_THAT(md, HasSubstr("adapter=ia3: seed 2 failed"));
  // Harvest is tabulated over its reduce shard only.
  auto harvest = std::find_if(r.tables.begin(), r.tables.end(),
                              [](const auto& t) { return t.stage == "harvest"; });
  ASSERT_NE(harvest, r.tables.end());
  EXPECT_TRUE(harvest->reduce_only);
  EXPECT_EQ(harvest->groups.at(0).cells.at(0).expected, 1u);
  // Ablation defaults to the retained.* numbers.
  auto ablate = std::find_if(r.tables.begin(), r.tables.end(),
                             [](const auto& t) { return t.stage == "ablate"; });
  ASSERT_NE(ablate, r.tables.end());
  EXPECT_EQ(ablate->metrics.size(), 8u);
  EXPECT_TRUE(ablate->metrics.front().starts_with("retained."));

  std::set<std::string> ids;
  for (const auto& fig : r.figures) {
    ids.insert(fig.id);
    // The kinds' curves say what their bands are: the default 95% t-interval.
    if (fig.id == "steer-steering_curve" || fig.id == "base-loss_curves")
      EXPECT_THAT(fig.title + " " + fig.caption, HasSubstr("95% CI (Student t)")) << fig.id;
    EXPECT_THAT(fig.caption, Not(HasSubstr("{band}"))) << fig.id;
  }
  EXPECT_EQ(ids, (std::set<std::string>{"base-loss_curves", "steer-steering_curve",
                                        "steer-loss_curves", "ablate-ablation_heatmap",
                                        "heads-heads-prev_token", "heads-heads-induction",
                                        "heads-heads-delta_ce", "harvest-firing_density"}));
  if (report::FindOnPath("gnuplot").empty())
    GTEST_SKIP() << "gnuplot not installed: images not checked";
  EXPECT_TRUE(r.warnings.empty()) << r.warnings.front();
  for (const auto& fig : r.figures) {
    ASSERT_FALSE(fig.png.empty()) << fig.id;
    EXPECT_GT(fs::file_size(out.path() / fig.png), 2000u) << fig.id;
    EXPECT_THAT(Slurp(out.path() / fig.svg), HasSubstr("<svg")) << fig.id;
    EXPECT_THAT(md, HasSubstr("](" + fig.png + ")"));
  }
  // The steering curve's data are the seed means: lora at α = 2 is near 2·1.5 + 0.2·mean(seed).
  std::string dat = Slurp(out.path() / "figures" / "steer-steering_curve.dat");
  EXPECT_THAT(dat, HasSubstr("adapter=ia3 (n=2 of 3)"));
  EXPECT_THAT(dat, HasSubstr("adapter=lora (n=3)"));
}

TEST(Report, ManyConfigsAreSplitIntoFiguresOfTenLines) {
  SweepFixture f("many");
  for (int lr = 0; lr < 12; ++lr) {
    f.Add({"steer",
           0,
           "lora_steer",
           {{"train.lr", 0.001 * (lr + 1)}},
           0,
           ShardStatus::kDone,
           {{"steer_delta", 1.0}},
           [&](H5Writer& w) {
             w.Write("eval/alphas", std::vector<double>{0, 1});
             w.Write("eval/logratio", std::vector<double>{0, 0.1 * lr});  // [A] without a row axis
           }});
  }
  TempDir out;
  ReportResult r = WriteReport(Options(f, out.path()));
  std::vector<std::string> ids;
  for (const auto& fig : r.figures) ids.push_back(fig.id);
  EXPECT_EQ(ids, (std::vector<std::string>{"steer-steering_curve-1", "steer-steering_curve-2"}));
  std::string second = Slurp(out.path() / "figures" / "steer-steering_curve-2.dat");
  EXPECT_THAT(second, HasSubstr("train.lr=0.011 (n=1)"));
  EXPECT_THAT(second, HasSubstr("train.lr=0.012 (n=1)"));
  EXPECT_THAT(second, Not(HasSubstr("train.lr=0.001 ")));
}

TEST(Report, WithoutGnuplotItWarnsClearlyAndStillWritesTheTables) {
  SweepFixture f("nognuplot");
  AddEveryFamily(f);
  TempDir out, empty_bin;
  ReportOptions o = Options(f, out.path());
  int rc = -1;
  std::string err, printed;
  {
    EnvGuard guard("PATH");
    ::setenv("PATH", empty_bin.path().c_str(), 1);
    ::testing::internal::CaptureStderr();
    ::testing::internal::CaptureStdout();
    rc = RunReport(o);
    printed = ::testing::internal::GetCapturedStdout();
    err = ::testing::internal::GetCapturedStderr();
  }
  EXPECT_EQ(rc, 0);
  EXPECT_THAT(err, HasSubstr("warning: gnuplot not found on PATH: figures not drawn"));
  EXPECT_THAT(err, HasSubstr("gnuplot-nox"));
  EXPECT_THAT(printed, HasSubstr("report: " + (out.path() / "report.md").string()));
  for (const char* stage : {"base", "steer", "ablate", "heads", "harvest"}) {
    for (const char* ext : {"md", "tex", "csv"}) {
      EXPECT_TRUE(fs::exists(out.path() / "tables" / (std::string(stage) + "." + ext)))
          << stage << ext;
    }
  }
  std::string md = Slurp(out.path() / "report.md");
  EXPECT_THAT(md, HasSubstr("gnuplot was not found on PATH"));
  EXPECT_THAT(md, Not(HasSubstr(".png)")));
  EXPECT_TRUE(fs::exists(out.path() / "figures" / "steer-steering_curve.gp"));
  EXPECT_TRUE(fs::exists(out.path() / "figures" / "steer-steering_curve.dat"));
  EXPECT_FALSE(fs::exists(out.path() / "figures" / "steer-steering_curve.png"));
}

TEST(Report, DefaultDirectoryIsUnderTheRegistrysOutDir) {
  SweepFixture f("where");
  f.Add({"s", 0, "chaos", {}, 0, ShardStatus::kDone, {{"value", 1}}});
  ReportOptions o;
  o.registry_path = f.registry_path();
  o.sweep = "where";
  ReportResult r = WriteReport(o);
  EXPECT_EQ(fs::path(r.index_md), f.root() / "runs" / "where" / "report" / "report.md");
  EXPECT_TRUE(fs::exists(r.index_md));
}

}  // namespace
}  // namespace seedgrid

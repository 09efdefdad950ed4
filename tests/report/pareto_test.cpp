// The Pareto front (coordinator/report/pareto.h) and the kPareto figure renderer, through
// WriteReport on a registry whose kind offers such a figure.
#include "coordinator/report/pareto.h"

#include <cmath>
#include <fstream>
#include <sstream>

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include "coordinator/report/report.h"
#include "tests/report/fixture.h"

namespace seedgrid {
namespace {

namespace fs = std::filesystem;
using report::ParetoFront;
using ::testing::ElementsAre;
using ::testing::HasSubstr;
using testing::ShardSpec;
using testing::SweepFixture;
using testing::TempDir;

TEST(ParetoFront, KeepsOnlyUndominatedPointsSortedByCost) {
  //            0    1    2    3    4    5
  const std::vector<double> x = {1.0, 2.0, 3.0, 2.5, 0.5, 4.0};
  const std::vector<double> y = {0.5, 0.8, 0.9, 0.7, 0.1, 0.9};
  // 3 is beaten by 1 (cheaper and better), 5 by 2 (same gain, cheaper).
  EXPECT_THAT(ParetoFront(x, y), ElementsAre(4, 0, 1, 2));
}

TEST(ParetoFront, EqualPointsAreAllOnTheFrontAndTiesInCostKeepTheBest) {
  EXPECT_THAT(ParetoFront({1, 1, 1}, {0.5, 0.5, 0.2}), ElementsAre(0, 1));
  EXPECT_THAT(ParetoFront({1, 2}, {0.5, 0.5}), ElementsAre(0));
}

TEST(ParetoFront, NonFinitePointsAreLeftOutAndDominateNothing) {
  EXPECT_THAT(ParetoFront({NAN, 1, 2}, {9, 0.5, 0.7}), ElementsAre(1, 2));
  EXPECT_THAT(ParetoFront({0, 1}, {INFINITY, 0.5}), ElementsAre(1));
  EXPECT_TRUE(ParetoFront({}, {}).empty());
  EXPECT_THROW(ParetoFront({1}, {}), std::invalid_argument);
}

KindRegistry FrontierKinds() {
  KindConfig k;
  k.name = "frontier";
  KindFigure f;
  f.type = "frontier_front";
  f.renderer = FigureRenderer::kPareto;
  f.x = "cost";
  f.y = "gain";
  f.group = "size";
  f.title = "Front of {stage}";
  f.caption = "a front per {group}, {seeds} seeds";
  k.report.figures = {f};
  KindRegistry r;
  r.Add(k);
  return r;
}

// The report of `f` into `out` with the frontier kind's defaults.
ReportResult Report(const SweepFixture& f, const TempDir& out) {
  const KindRegistry kinds = FrontierKinds();
  ReportOptions o;
  o.registry_path = f.registry_path();
  o.sweep = f.sweep();
  o.out_dir = out.path().string();
  o.kinds = &kinds;
  return WriteReport(o);
}

std::string Slurp(const fs::path& p) {
  std::ifstream in(p);
  std::stringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

// The data blocks of a .dat file (separated by two blank lines), each as its non-comment lines.
std::vector<std::vector<std::string>> Blocks(const std::string& dat) {
  std::vector<std::vector<std::string>> out(1);
  std::istringstream in(dat);
  int blank = 0;
  for (std::string line; std::getline(in, line);) {
    if (line.empty()) {
      if (++blank == 2) out.emplace_back();
      continue;
    }
    blank = 0;
    if (line[0] != '#') out.back().push_back(line);
  }
  if (out.back().empty()) out.pop_back();
  return out;
}

TEST(ParetoFigure, AFrontPerGroupValueOverTheSeedMeansOfEachConfig) {
  SweepFixture f("front");
  // size 1: λ ∈ {0, 1, 10} with (cost, gain) seed means (0.9, 0.95), (0.2, 0.9), (0.5, 0.5):
  // λ=10 is beaten by λ=1. size 8: λ ∈ {0, 1} both on the front. Two seeds each, differing by
  // ±0.01 around the mean.
  const std::vector<std::tuple<int, int, double, double>> configs = {
      {1, 0, 0.9, 0.95}, {1, 1, 0.2, 0.9}, {1, 10, 0.5, 0.5}, {8, 0, 0.6, 0.99}, {8, 1, 0.1, 0.7}};
  for (const auto& [size, lambda, cost, gain] : configs) {
    for (int seed = 0; seed < 2; ++seed) {
      const double d = seed == 0 ? -0.01 : 0.01;
      f.Add({.stage = "edit",
             .kind = "frontier",
             .axes = {{"lambda", lambda}, {"size", size}},
             .seed = seed,
             .metrics = {{"cost", cost + d}, {"gain", gain - d}}});
    }
  }
  TempDir out;
  const ReportResult r = Report(f, out);
  ASSERT_EQ(r.figures.size(), 1u);
  EXPECT_EQ(r.figures[0].id, "edit-frontier_front");
  EXPECT_EQ(r.figures[0].caption, "a front per size, 2 seeds");
  const auto blocks = Blocks(Slurp(out.path() / "figures" / "edit-frontier_front.dat"));
  ASSERT_EQ(blocks.size(), 6u);  // per front: seeds, configs, front
  EXPECT_EQ(blocks[0].size(), 6u);
  EXPECT_THAT(blocks[1], ElementsAre("0.9 0.95 \"lambda=0\"", "0.2 0.9 \"lambda=1\"",
                                     "0.5 0.5 \"lambda=10\""));
  EXPECT_THAT(blocks[2], ElementsAre("0.2 0.9", "0.9 0.95"));
  EXPECT_THAT(blocks[5], ElementsAre("0.1 0.7", "0.6 0.99"));
  EXPECT_THAT(Slurp(out.path() / "figures" / "edit-frontier_front.gp"),
              HasSubstr("title 'size=8 front'"));
  if (!report::FindOnPath("gnuplot").empty()) {
    EXPECT_TRUE(r.warnings.empty()) << r.warnings.front();
    EXPECT_FALSE(r.figures[0].png.empty());
  }
}

TEST(ParetoFigure, WithoutTheGroupAxisOneFrontForTheStage) {
  SweepFixture f("onefront");
  f.Add({.stage = "edit",
         .kind = "frontier",
         .axes = {{"lambda", 0}},
         .metrics = {{"cost", 1}, {"gain", 1}}});
  f.Add({.stage = "edit",
         .kind = "frontier",
         .axes = {{"lambda", 1}},
         .metrics = {{"cost", 2}, {"gain", 0.5}}});
  TempDir out;
  const ReportResult r = Report(f, out);
  ASSERT_EQ(r.figures.size(), 1u);
  EXPECT_EQ(r.figures[0].caption, "a front per stage, 1 seeds");
  const auto blocks = Blocks(Slurp(out.path() / "figures" / "edit-frontier_front.dat"));
  ASSERT_EQ(blocks.size(), 3u);
  EXPECT_THAT(blocks[2], ElementsAre("1 1"));
}

TEST(ParetoFigure, AKindWhoseParetoFigureLacksItsMetricsIsRejectedAtRegistration) {
  KindConfig k;
  k.name = "broken";
  KindFigure f;
  f.type = "broken_front";
  f.renderer = FigureRenderer::kPareto;
  f.x = "cost";
  k.report.figures = {f};
  KindRegistry r;
  EXPECT_THROW(r.Add(k), std::logic_error);
}

}  // namespace
}  // namespace seedgrid

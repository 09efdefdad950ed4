#include "core/spec.h"

#include <chrono>
#include <map>
#include <set>
#include <string>

#include <sys/resource.h>

#include <fmt/format.h>
#include <gmock/gmock.h>
#include <gtest/gtest.h>

namespace seedgrid {
namespace {

using ::testing::ElementsAre;
using ::testing::HasSubstr;
using ::testing::Not;
using ::testing::StartsWith;

// Test kinds, independent of the real ones: train (nested params, gang, figure loss_curves),
// harvest (reduce), eval (flat, floats, figure steering_curve).
KindRegistry TestKinds() {
  KindRegistry kinds;
  KindConfig train;
  train.name = "train";
  train.defaults = Json::parse(R"({
    "model": {"d_model": 64, "n_layers": 2},
    "train": {"steps": 300, "lr": 0.001},
    "adapter": "lora",
    "lora": {"rank": 4, "alpha": 8.0},
    "use_bias": false,
    "extra": null,
    "layers": [0, 1]
  })");
  train.validate = [](const Json& p) {
    std::vector<std::string> out;
    if (p["lora"]["rank"].get<int64_t>() < 1) out.push_back("lora.rank: must be >= 1");
    return out;
  };
  train.supports_gang = true;
  train.report.figures = {{.type = "loss_curves", .renderer = FigureRenderer::kSeries}};
  kinds.Add(train);
  KindConfig harvest;
  harvest.name = "harvest";
  harvest.defaults = {{"rows", 100}, {"layer", 0}};
  harvest.has_reduce = true;
  kinds.Add(harvest);
  KindConfig eval;
  eval.name = "eval";
  eval.defaults = {{"alpha", 1.0}, {"split", "test"}};
  eval.report.figures = {{.type = "steering_curve", .renderer = FigureRenderer::kCurve}};
  kinds.Add(eval);
  return kinds;
}

const KindRegistry& Kinds() {
  static const KindRegistry kinds = TestKinds();
  return kinds;
}

SweepSpec Parse(const std::string& yaml, const std::vector<std::string>& overrides = {}) {
  return ParseSpec(yaml, "spec.yaml", overrides, Kinds());
}

Plan Expand(const std::string& yaml, const std::vector<std::string>& overrides = {}) {
  return ExpandSpec(Parse(yaml, overrides), Kinds());
}

// The problems ParseSpec reports (fails the test when it accepts the spec).
std::vector<std::string> Problems(const std::string& yaml,
                                  const std::vector<std::string>& overrides = {}) {
  try {
    Parse(yaml, overrides);
  } catch (const SpecError& e) {
    return e.problems();
  }
  ADD_FAILURE() << "spec accepted:\n" << yaml;
  return {};
}

// The single problem of a spec, checked to start with "spec.yaml:<line>: ".
std::string OneProblem(const std::string& yaml, int line) {
  auto problems = Problems(yaml);
  EXPECT_EQ(problems.size(), 1u) << ::testing::PrintToString(problems);
  if (problems.empty()) return "";
  EXPECT_THAT(problems[0], StartsWith("spec.yaml:" + std::to_string(line) + ": "));
  return problems[0];
}

std::vector<const ShardPlan*> StageShards(const Plan& plan, const std::string& stage) {
  std::vector<const ShardPlan*> out;
  for (const auto& s : plan.shards) {
    if (s.key.stage() == stage) out.push_back(&s);
  }
  return out;
}

// ---- Parsing
// -------------------------------------------------------------------------------------

TEST(SpecParseTest, ShorthandIsOneStageNamedAfterTheSweep) {
  SweepSpec spec = Parse(R"(
name: quick
kind: train
seeds: 3
params: {train: {steps: 10}}
resources: {timeout: 90s, grace: 1m, memory: 2G, ranks: 2, isolation: inline}
)");
  EXPECT_EQ(spec.name, "quick");
  EXPECT_EQ(spec.out, "runs");
  ASSERT_EQ(spec.stages.size(), 1u);
  const StageSpec& st = spec.stages[0];
  EXPECT_EQ(st.name, "quick");
  EXPECT_EQ(st.kind, "train");
  EXPECT_THAT(st.seeds, ElementsAre(0, 1, 2));
  EXPECT_TRUE(st.seeds_given);
  EXPECT_EQ(st.params["train"]["steps"], 10);
  EXPECT_EQ(st.params["train"]["lr"], 0.001);  // defaults survive the deep merge
  EXPECT_EQ(st.params["model"]["d_model"], 64);
  EXPECT_EQ(st.resources.timeout_s, 90);
  EXPECT_EQ(st.resources.grace_s, 60);
  EXPECT_EQ(st.resources.memory_mb, 2048);
  EXPECT_EQ(st.resources.ranks, 2);
  EXPECT_EQ(st.resources.isolation, Isolation::kInline);
  EXPECT_EQ(st.resources.max_attempts, 3);
  EXPECT_EQ(spec.FindStage("quick"), &spec.stages[0]);
  EXPECT_EQ(spec.FindStage("nope"), nullptr);
}

TEST(SpecParseTest, ShorthandWithoutNameIsMainAndSweepIsFileStem) {
  SweepSpec spec = ParseSpec("kind: eval\n", "configs/my-sweep.yaml", {}, Kinds());
  EXPECT_EQ(spec.name, "my-sweep");
  ASSERT_EQ(spec.stages.size(), 1u);
  EXPECT_EQ(spec.stages[0].name, "main");
  EXPECT_THAT(spec.stages[0].seeds, ElementsAre(0));
  EXPECT_FALSE(spec.stages[0].seeds_given);
  EXPECT_EQ(spec.stages[0].params, Json::parse(R"({"alpha": 1.0, "split": "test"})"));
}

TEST(SpecParseTest, SeedForms) {
  auto seeds = [](const std::string& form) {
    return Parse("kind: eval\nseeds: " + form).stages[0].seeds;
  };
  EXPECT_THAT(seeds("[3, 1, 2]"), ElementsAre(3, 1, 2));
  EXPECT_THAT(seeds("4"), ElementsAre(0, 1, 2, 3));
  EXPECT_THAT(seeds("{from: 2, to: 4}"), ElementsAre(2, 3, 4));
  EXPECT_THAT(OneProblem("kind: eval\nseeds: []", 2), HasSubstr("empty"));
  EXPECT_THAT(OneProblem("kind: eval\nseeds: 0", 2), HasSubstr("seeds"));
  EXPECT_THAT(OneProblem("kind: eval\nseeds: [1, 1]", 2), HasSubstr("seed 1 appears twice"));
  EXPECT_THAT(OneProblem("kind: eval\nseeds: {from: 4, to: 2}", 2), HasSubstr("below"));
  EXPECT_THAT(OneProblem("kind: eval\nseeds: [-1]", 2), HasSubstr("seeds"));
  EXPECT_THAT(OneProblem("kind: eval\nseeds:\n  from: 0\n  upto: 3\n  to: 3\n", 4),
              HasSubstr("unknown key 'upto'"));
}

TEST(SpecParseTest, YamlScalarsBecomeTypedJson) {
  SweepSpec spec = Parse(R"(
kind: train
params:
  extra: {i: 1, f: 1.5, b: true, s: lora, e: 1e-3, n: null, q: "1", l: [1, two], neg: -3,
          hex: 0x10, t: ~, big: 9223372036854775807, m: {x: [true, 2.0]}}
)");
  const Json& e = spec.stages[0].params["extra"];
  EXPECT_TRUE(e["i"].is_number_integer());
  EXPECT_EQ(e["i"], 1);
  EXPECT_TRUE(e["f"].is_number_float());
  EXPECT_EQ(e["f"], 1.5);
  EXPECT_EQ(e["b"], true);
  EXPECT_EQ(e["s"], "lora");
  EXPECT_TRUE(e["e"].is_number_float());
  EXPECT_DOUBLE_EQ(e["e"].get<double>(), 1e-3);
  EXPECT_TRUE(e["n"].is_null());
  EXPECT_EQ(e["q"], "1");
  EXPECT_EQ(e["l"], Json::parse(R"([1, "two"])"));
  EXPECT_EQ(e["neg"], -3);
  EXPECT_EQ(e["hex"], 16);
  EXPECT_TRUE(e["t"].is_null());
  EXPECT_EQ(e["big"], INT64_MAX);
  EXPECT_EQ(e["m"], Json::parse(R"({"x": [true, 2.0]})"));
  EXPECT_THAT(OneProblem("kind: train\nparams: {extra: 99999999999999999999}", 2),
              HasSubstr("64 bits"));
  EXPECT_THAT(OneProblem("kind: train\nparams: {extra: .inf}", 2), HasSubstr("non-finite"));
}

TEST(SpecParseTest, ParamTypesAreCheckedAgainstDefaults) {
  // An int where a float is expected is fine, and becomes a float (canonical for hashing).
  EXPECT_TRUE(Parse("kind: eval\nparams: {alpha: 2}").stages[0].params["alpha"].is_number_float());
  EXPECT_THAT(OneProblem("kind: train\nparams:\n  train: {steps: abc}\n", 3),
              HasSubstr("params.train.steps: expected integer, got string 'abc'"));
  EXPECT_THAT(OneProblem("kind: train\nparams: {train: {steps: 1.5}}", 2),
              HasSubstr("expected integer, got float 1.5"));
  EXPECT_THAT(OneProblem("kind: train\nparams: {use_bias: 1}", 2), HasSubstr("expected bool"));
  EXPECT_THAT(OneProblem("kind: train\nparams: {adapter: 3}", 2), HasSubstr("quote it"));
  EXPECT_THAT(OneProblem("kind: train\nparams: {model: 5}", 2),
              HasSubstr("params.model: expected a map"));
  EXPECT_THAT(OneProblem("kind: train\nparams: {layers: 5}", 2), HasSubstr("expected list"));
  EXPECT_THAT(OneProblem("kind: train\nparams: [1]", 2), HasSubstr("params: expected a map"));
  // A null default accepts anything.
  EXPECT_EQ(Parse("kind: train\nparams: {extra: [1, {a: b}]}").stages[0].params["extra"],
            Json::parse(R"([1, {"a": "b"}])"));
}

TEST(SpecParseTest, UnknownKeysAtEveryLevelSayWhatIsAccepted) {
  EXPECT_THAT(OneProblem("kind: eval\nsedes: 3\n", 2),
              AllOf(HasSubstr("top-level unknown key 'sedes'"), HasSubstr("did you mean 'seeds'"),
                    HasSubstr("accepted: name, out, stages, report")));
  EXPECT_THAT(
      OneProblem("stages:\n  - name: a\n    kind: eval\n    parms: {}\n", 4),
      AllOf(HasSubstr("stage 'a': unknown key 'parms'"), HasSubstr("accepted: name, kind")));
  EXPECT_THAT(
      OneProblem("kind: eval\nresources:\n  timeout: 10\n  gpu: 1\n", 4),
      AllOf(HasSubstr("stage 'main': resources: unknown key 'gpu'"),
            HasSubstr("did you mean 'gpus'"),
            HasSubstr("accepted: timeout, grace, ranks, gpus, memory, isolation, max_attempts")));
  EXPECT_THAT(OneProblem("kind: train\nparams:\n  train:\n    stepz: 3\n", 4),
              AllOf(HasSubstr("params.train.stepz: unknown param"),
                    HasSubstr("did you mean 'steps'"), HasSubstr("accepted: lr, steps")));
  EXPECT_THAT(OneProblem("stages: [{name: a, kind: eval}]\nkind: eval\n", 2),
              HasSubstr("put it inside a stage"));
}

TEST(SpecParseTest, EveryErrorClassHasFileAndLine) {
  EXPECT_THAT(OneProblem("kind: train\ngrid:\n  adapter: []\n", 3), HasSubstr("empty axis"));
  EXPECT_THAT(OneProblem("kind: train\ngrid:\n  adapter: lora\n", 3),
              HasSubstr("expected a list of values"));
  EXPECT_THAT(OneProblem("kind: train\nzip:\n  adapter: [a, b]\n  lora.rank: [1]\n", 2),
              HasSubstr("zip lists differ in length (adapter has 2, lora.rank has 1)"));
  EXPECT_THAT(OneProblem("kind: train\ngrid:\n  lora.rnk: [1]\n", 3),
              AllOf(HasSubstr("unknown param"), HasSubstr("did you mean 'rank'"),
                    HasSubstr("under 'lora'")));
  EXPECT_THAT(OneProblem("kind: train\ngrid:\n  lora.rank: [1, x]\n", 3),
              HasSubstr("expected integer, got string 'x'"));
  EXPECT_THAT(OneProblem("kind: train\ngrid:\n  lora.rank: [1, 1]\n", 3), HasSubstr("twice"));
  EXPECT_THAT(OneProblem("kind: train\ngrid:\n  lora: [{rank: 2}]\n  lora.rank: [1]\n", 4),
              HasSubstr("overlaps"));
  EXPECT_THAT(OneProblem("name: x\n\nkind: tran\n", 3),
              HasSubstr("unknown kind 'tran' (kinds: eval, harvest, train)"));
  EXPECT_THAT(OneProblem("stages:\n  - name: a\n    kind: eval\n    needs: [b]\n", 4),
              HasSubstr("stage 'a' needs 'b', which is not a stage (stages: a)"));
  EXPECT_THAT(OneProblem("stages:\n  - {name: a, kind: eval, needs: a}\n", 2),
              HasSubstr("needs itself"));
  EXPECT_THAT(OneProblem(R"(stages:
  - {name: a, kind: eval, needs: c}
  - {name: b, kind: eval, needs: a}
  - {name: c, kind: eval, needs: b}
)",
                         3),
              HasSubstr("needs form a cycle: a -> c -> b -> a"));
  EXPECT_THAT(OneProblem("stages:\n  - {name: a, kind: eval}\n  - {name: a, kind: eval}\n", 3),
              HasSubstr("duplicate stage name 'a' (first at line 2)"));
  EXPECT_THAT(OneProblem("kind: eval\nresources: {timeout: 10x}\n", 2),
              HasSubstr("resources.timeout: expected seconds or a duration"));
  EXPECT_THAT(OneProblem("kind: eval\nresources: {timeout: 10,\n  grace: -2}\n", 3),
              HasSubstr("resources.grace: expected seconds or a duration"));
  EXPECT_THAT(OneProblem("kind: eval\nresources:\n  memory: lots\n", 3),
              HasSubstr("resources.memory: expected MiB or a size"));
  EXPECT_THAT(OneProblem("kind: eval\nresources: {ranks: 4}\n", 2),
              HasSubstr("kind 'eval' does not run as a gang (gang kinds: train)"));
  EXPECT_THAT(OneProblem("kind: eval\nresources: {isolation: docker}\n", 2),
              HasSubstr("accepted: executor, inline"));
  EXPECT_THAT(OneProblem("kind: eval\nresources: {max_attempts: 0}\n", 2),
              HasSubstr("max_attempts"));
  EXPECT_THAT(OneProblem("kind: eval\nshards: 0\n", 2), HasSubstr("shards"));
  EXPECT_THAT(OneProblem("kind: eval\nshards: two\n", 2), HasSubstr("shards"));
  EXPECT_THAT(OneProblem("name: x\nstages: []\n", 2), HasSubstr("non-empty list"));
  EXPECT_THAT(OneProblem("name: x\n", 1), HasSubstr("no stages"));
  EXPECT_THAT(OneProblem("kind: eval\nneeds: {a: 1}\n", 2), HasSubstr("needs: expected"));
  EXPECT_THAT(OneProblem("kind: eval\nkind: train\n", 2), HasSubstr("duplicate key 'kind'"));
  EXPECT_THAT(OneProblem("name: x\nstages:\n  - {name: a\n", 4), HasSubstr("YAML syntax error"));
  EXPECT_THAT(OneProblem("name: x\n  bad: indent\n", 2), HasSubstr("YAML syntax error"));
}

TEST(SpecParseTest, KindValidateProblemsPointAtTheParam) {
  EXPECT_THAT(OneProblem("kind: train\nparams:\n  lora:\n    rank: 0\n", 4),
              HasSubstr("stage 'main': params.lora.rank: must be >= 1"));
  // An axis value is validated too, and blamed on its own line.
  EXPECT_THAT(OneProblem("kind: train\ngrid:\n  lora.rank:\n    - 2\n    - 0\n", 5),
              HasSubstr("with grid lora.rank = 0: params.lora.rank: must be >= 1"));
}

TEST(SpecParseTest, ReportsAllProblemsAtOnceInLineOrder) {
  auto problems = Problems(R"(name: many
stages:
  - name: a
    kind: nope
  - name: b
    kind: eval
    params: {alpha: high}
  - name: c
    kind: eval
    needs: zzz
)");
  ASSERT_EQ(problems.size(), 3u) << ::testing::PrintToString(problems);
  EXPECT_THAT(problems[0], StartsWith("spec.yaml:4: stage 'a': unknown kind 'nope'"));
  EXPECT_THAT(problems[1], StartsWith("spec.yaml:7: stage 'b': params.alpha: expected float"));
  EXPECT_THAT(problems[2], StartsWith("spec.yaml:10: stage 'c' needs 'zzz'"));
  try {
    Parse("kind: nope\nseeds: x\n");
    FAIL();
  } catch (const SpecError& e) {
    EXPECT_THAT(e.what(), HasSubstr("2 problems"));
  }
}

// ---- The report section ----------------------------------------------------------------------

const char* kReported = R"(name: reported
stages:
  - name: base
    kind: train
  - name: steer
    kind: eval
    needs: base
report:
  tables:
    - {stage: steer, metrics: [steer_delta, "retained.*"], group_by: adapter}
    - {stage: base}
  figures: [loss_curves, {type: steering_curve, stage: steer}]
  formats: [md, csv]
)";

TEST(SpecReportTest, ValidSectionIsTyped) {
  const ReportSpec r = Parse(kReported).report;
  ASSERT_EQ(r.tables.size(), 2u);
  EXPECT_EQ(r.tables[0].stage, "steer");
  EXPECT_THAT(r.tables[0].metrics, ElementsAre("steer_delta", "retained.*"));
  EXPECT_THAT(r.tables[0].group_by, ElementsAre("adapter"));  // one string: a list of one
  EXPECT_EQ(r.tables[1].stage, "base");
  EXPECT_TRUE(r.tables[1].metrics.empty());
  ASSERT_TRUE(r.figures.has_value());
  ASSERT_EQ(r.figures->size(), 2u);
  EXPECT_EQ((*r.figures)[0].type, "loss_curves");
  EXPECT_EQ((*r.figures)[0].stage, "");
  EXPECT_EQ((*r.figures)[1].type, "steering_curve");
  EXPECT_EQ((*r.figures)[1].stage, "steer");
  EXPECT_THAT(r.formats, ElementsAre("md", "csv"));

  // Absent: defaults (no figures list at all); `figures: []`: no figures.
  const ReportSpec none = Parse("kind: eval\n").report;
  EXPECT_TRUE(none.tables.empty());
  EXPECT_FALSE(none.figures.has_value());
  EXPECT_TRUE(none.formats.empty());
  EXPECT_FALSE(Parse("kind: eval\nreport:\n").report.figures.has_value());
  const ReportSpec empty = Parse("kind: eval\nreport: {figures: []}\n").report;
  ASSERT_TRUE(empty.figures.has_value());
  EXPECT_TRUE(empty.figures->empty());
  // The shorthand's stage is named after the sweep, or `main`.
  EXPECT_EQ(Parse("kind: eval\nreport: {tables: [{stage: main}]}\n").report.tables[0].stage,
            "main");
  // Overrides reach the section like any other key.
  EXPECT_THAT(Parse(kReported, {"report.formats=[html]"}).report.formats, ElementsAre("html"));
}

TEST(SpecReportTest, UnknownKeysHaveFileAndLine) {
  EXPECT_THAT(OneProblem("kind: eval\nreport:\n  tabels: []\n", 3),
              AllOf(HasSubstr("report: unknown key 'tabels'; did you mean 'tables'?"),
                    HasSubstr("accepted: tables, figures, formats, uncertainty, ranking, paired")));
  EXPECT_THAT(
      OneProblem("kind: eval\nreport:\n  tables:\n    - stage: main\n      metric: [a]\n", 5),
      AllOf(HasSubstr("report: tables[0]: unknown key 'metric'; did you mean 'metrics'?"),
            HasSubstr("accepted: stage, metrics, group_by")));
  EXPECT_THAT(
      OneProblem("kind: eval\nreport:\n  figures:\n    - {type: loss_curves, stages: x}\n", 4),
      AllOf(HasSubstr("report: figures[0]: unknown key 'stages'"),
            HasSubstr("accepted: type, stage")));
}

TEST(SpecReportTest, WrongTypesAndBadValuesAreProblems) {
  EXPECT_THAT(OneProblem("kind: eval\nreport: [tables]\n", 2),
              HasSubstr("report: expected a map (tables, figures, formats, uncertainty, ranking, "
                        "paired), got a list"));
  EXPECT_THAT(
      OneProblem("kind: eval\nreport:\n  tables: {stage: main}\n", 3),
      HasSubstr("report: tables: expected a list of {stage, metrics, group_by}, got a map"));
  EXPECT_THAT(
      OneProblem("kind: eval\nreport:\n  tables:\n    - main\n", 4),
      HasSubstr("report: tables[0]: expected a map {stage, metrics, group_by}, got string 'main'"));
  EXPECT_THAT(OneProblem("kind: eval\nreport:\n  tables:\n    - {metrics: [a]}\n", 4),
              HasSubstr("report: tables[0]: missing 'stage'"));
  EXPECT_THAT(
      OneProblem("kind: eval\nreport:\n  tables:\n    - stage: main\n      metrics: {a: 1}\n", 5),
      HasSubstr("report: tables[0].metrics: expected a string or a list of strings, got a map"));
  EXPECT_THAT(
      OneProblem("kind: eval\nreport:\n  tables:\n    - stage: main\n      group_by: [a, [b]]\n",
                 5),
      HasSubstr("report: tables[0].group_by[1]: expected a string, got a list"));
  EXPECT_THAT(
      OneProblem("kind: eval\nreport:\n  figures: [[loss_curves]]\n", 3),
      HasSubstr("report: figures[0]: expected a figure type or {type, stage, ...}, got a list"));
  EXPECT_THAT(OneProblem("kind: eval\nreport:\n  figures:\n    - {stage: main}\n", 4),
              HasSubstr("report: figures[0]: missing 'type'"));
  // Figure types are the kinds' (KindConfig::report.figures), checked at plan time.
  EXPECT_THAT(OneProblem("kind: eval\nreport:\n  figures: [loss_curves,\n    pie_chart]\n", 4),
              HasSubstr("report: figures[1]: unknown figure type 'pie_chart' (accepted: "
                        "loss_curves, steering_curve, line, bars, scatter, heatmap)"));
  EXPECT_THAT(
      OneProblem("kind: eval\nreport:\n  figures:\n    - {stage: main, type: los_curves}\n", 4),
      HasSubstr("report: figures[0]: unknown figure type 'los_curves'; did you mean "
                "'loss_curves'?"));
  EXPECT_THAT(OneProblem("kind: eval\nreport:\n  formats: [md,\n    pdf]\n", 4),
              HasSubstr("report: formats: unknown format 'pdf' (accepted: md, tex, csv, html)"));
  EXPECT_THAT(OneProblem("kind: eval\nreport:\n  formats: {md: 1}\n", 3),
              HasSubstr("report: formats: expected a string or a list of strings, got a map"));
  // A stage the spec does not have, at the line that names it.
  EXPECT_THAT(OneProblem("stages:\n  - {name: steer, kind: eval}\nreport:\n  tables:\n"
                         "    - {stage: stear}\n",
                         5),
              HasSubstr("report: tables[0].stage: 'stear' is not a stage; did you mean 'steer'? "
                        "(stages: steer)"));
  EXPECT_THAT(
      OneProblem("kind: eval\nreport:\n  figures:\n    - {type: loss_curves, stage: base}\n", 4),
      HasSubstr("report: figures[0].stage: 'base' is not a stage (stages: main)"));
  // An override is blamed by its text.
  auto problems = Problems("kind: eval\n", {"report.formats=pdf"});
  ASSERT_EQ(problems.size(), 1u);
  EXPECT_THAT(problems[0],
              StartsWith("override 'report.formats=pdf': report: formats: unknown format"));
}

// ---- Plot figures, ranking, paired, uncertainty: typed and checked at plan time (#18) ----

const char* kAnalysed = R"(name: analysed
stages:
  - name: base
    kind: train
    grid: {lora.rank: [1, 4]}
  - name: steer
    kind: eval
    needs: base
    seeds: [0, 1, 2]
    grid: {alpha: [0.5, 1.0]}
report:
  uncertainty: std
  figures:
    - {type: line, stage: steer, x: alpha, y: steer_delta, group_by: lora.rank}
    - {type: line, stage: steer, y: "retained.layer.*.keep", title: Retained by layer}
    - {type: bars, stage: steer, y: [steer_delta, kl], group_by: [lora.rank]}
    - {type: scatter, stage: steer, x: kl, y: steer_delta}
    - {type: heatmap, stage: steer, x: split, y: "retained.*"}
  ranking: {metric: steer_delta, stage: steer, best: min}
  paired:
    - {stage: steer, metric: steer_delta, a: {lora.rank: 1}, b: {lora.rank: 4}}
)";

TEST(SpecReportTest, PlotFiguresRankingAndPairedAreTyped) {
  const ReportSpec r = Parse(kAnalysed).report;
  EXPECT_EQ(r.uncertainty, "std");
  EXPECT_EQ(Parse("kind: eval\n").report.uncertainty, "ci95");  // the default
  ASSERT_EQ(r.figures->size(), 5u);
  const ReportFigureSpec& line = (*r.figures)[0];
  EXPECT_EQ(line.type, "line");
  EXPECT_EQ(line.stage, "steer");
  EXPECT_EQ(line.x, "alpha");  // an axis inherited... no: steer's own grid axis
  EXPECT_THAT(line.y, ElementsAre("steer_delta"));
  EXPECT_THAT(line.group_by, ElementsAre("lora.rank"));  // inherited from base through needs
  EXPECT_EQ((*r.figures)[1].title, "Retained by layer");
  EXPECT_THAT((*r.figures)[2].y, ElementsAre("steer_delta", "kl"));
  EXPECT_EQ((*r.figures)[3].x, "kl");     // scatter: a metric, not checked against the axes
  EXPECT_EQ((*r.figures)[4].x, "split");  // a param of the stage's kind
  ASSERT_EQ(r.rankings.size(), 1u);
  EXPECT_EQ(r.rankings[0].metric, "steer_delta");
  EXPECT_FALSE(r.rankings[0].higher_is_better);
  ASSERT_EQ(r.paired.size(), 1u);
  ASSERT_EQ(r.paired[0].a.size(), 1u);
  EXPECT_EQ(r.paired[0].a[0].first, "lora.rank");
  EXPECT_EQ(r.paired[0].a[0].second, Json(1));
  EXPECT_EQ(r.paired[0].b[0].second, Json(4));
  // A list of rankings is accepted as well as one.
  EXPECT_EQ(
      Parse("kind: eval\nreport:\n  ranking: [{metric: a}, {metric: b}]\n").report.rankings.size(),
      2u);
}

TEST(SpecReportTest, BadPlotFiguresFailAtPlanTimeWithFileAndLine) {
  const std::string head =
      "stages:\n  - {name: steer, kind: eval, grid: {alpha: [1, 2]}}\nreport:\n";
  EXPECT_THAT(OneProblem(head + "  figures:\n    - {type: line, stage: steer, y: m}\n", 5),
              HasSubstr("report: figures[0]: a 'line' figure needs 'x' (a numeric axis)"));
  EXPECT_THAT(OneProblem(head + "  figures:\n    - {type: bars, stage: steer}\n", 5),
              HasSubstr("report: figures[0]: a 'bars' figure needs 'y' (metrics)"));
  EXPECT_THAT(OneProblem(head + "  figures:\n    - {type: bars, y: m}\n", 5),
              HasSubstr("report: figures[0]: a 'bars' figure needs 'stage'"));
  EXPECT_THAT(OneProblem(head + "  figures:\n    - {type: scatter, stage: steer, y: m}\n", 5),
              HasSubstr("a 'scatter' figure needs 'x' (a metric)"));
  EXPECT_THAT(
      OneProblem(head + "  figures:\n    - {type: scatter, stage: steer, x: a, y: [m, n]}\n", 5),
      HasSubstr("a 'scatter' figure needs one 'y' metric (no '*')"));
  EXPECT_THAT(OneProblem(head + "  figures:\n    - {type: line, stage: steer, x: alpha,\n"
                                "       y: \"a.*.b.*\"}\n",
                         6),
              HasSubstr("report: figures[0].y: 'a.*.b.*' has more than one '*'"));
  // Keys are checked against the stage: an axis of it or of a stage it needs, or a param.
  EXPECT_THAT(OneProblem(head + "  figures:\n    - type: line\n      stage: steer\n"
                                "      y: m\n      x: alpah\n",
                         8),
              HasSubstr("report: figures[0]: 'alpah' is neither an axis nor a param of stage "
                        "'steer'"));
  EXPECT_THAT(OneProblem(head + "  figures:\n    - {type: heatmap, stage: steer, y: m,\n"
                                "       group_by: adapter}\n",
                         6),
              HasSubstr("'adapter' is neither an axis nor a param of stage 'steer'"));
  EXPECT_THAT(
      OneProblem(head + "  figures:\n    - {type: line, stage: steeer, x: alpha, y: m}\n", 5),
      HasSubstr("'steeer' is not a stage; did you mean 'steer'?"));
  EXPECT_THAT(OneProblem(head + "  figures:\n    - line\n", 5),
              HasSubstr("report: figures[0]: a 'line' figure needs a map {type, stage, y, ...}"));
  EXPECT_THAT(OneProblem(head + "  figures:\n    - {type: loss_curves, x: alpha}\n", 5),
              HasSubstr("'x' is for the plot types (line, bars, scatter, heatmap)"));
  EXPECT_THAT(OneProblem(head + "  figures:\n    - {type: line, stage: steer, x: alpha, y: m,\n"
                                "       colour: red}\n",
                         6),
              HasSubstr("unknown key 'colour'"));
  EXPECT_THAT(OneProblem(head + "  figures:\n    - {type: scatter, stage: steer, x: a, y: m,\n"
                                "       front: yes please}\n",
                         6),
              HasSubstr("report: figures[0].front: must be true or false"));
  EXPECT_THAT(
      OneProblem(head + "  figures:\n    - {type: bars, stage: steer, y: m, front: true}\n", 5),
      HasSubstr("report: figures[0]: 'front' is for 'scatter' figures, not 'bars'"));
}

TEST(SpecReportTest, BadRankingPairedAndUncertaintyFailAtPlanTime) {
  const std::string head =
      "stages:\n  - {name: steer, kind: eval, grid: {alpha: [1, 2]}}\nreport:\n";
  EXPECT_THAT(OneProblem(head + "  uncertainty: sem\n", 4),
              HasSubstr("report: uncertainty: 'sem' is not ci95 or std"));
  EXPECT_THAT(OneProblem(head + "  ranking: {stage: steer}\n", 4),
              HasSubstr("report: ranking: missing 'metric'"));
  EXPECT_THAT(OneProblem(head + "  ranking: {metric: m, best: highest}\n", 4),
              HasSubstr("report: ranking.best: 'highest' is not max or min"));
  EXPECT_THAT(OneProblem(head + "  ranking: [{metric: m}, {metric: \"m.*\"}]\n", 4),
              HasSubstr("report: ranking[1].metric: one metric, not a pattern"));
  EXPECT_THAT(OneProblem(head + "  ranking: {metric: m, stage: stear}\n", 4),
              HasSubstr("report: ranking: 'stear' is not a stage"));
  EXPECT_THAT(OneProblem(head + "  paired:\n    - {metric: m, a: {alpha: 1}}\n", 5),
              HasSubstr("report: paired[0]: missing 'b'"));
  EXPECT_THAT(OneProblem(head + "  paired:\n    - {metric: m, a: {alpha: 1}, b: {alpha: 1}}\n", 5),
              HasSubstr("report: paired[0]: a and b select the same shards"));
  EXPECT_THAT(OneProblem(head + "  paired:\n    - {metric: m, a: lora, b: {alpha: 1}}\n", 5),
              HasSubstr("report: paired[0].a: expected a map of axis values"));
  EXPECT_THAT(OneProblem(head + "  paired:\n    - stage: steer\n      metric: m\n"
                                "      a: {adapter: lora}\n      b: {alpha: 2}\n",
                         7),
              HasSubstr("report: paired[0]: 'adapter' is neither an axis nor a param of stage "
                        "'steer'"));
}

TEST(SpecReportTest, ParseReportSpecReadsTheSectionAlone) {
  // The rest of a stored spec is not checked again (no kinds needed, stages not resolved).
  const ReportSpec r =
      ParseReportSpec("stages: []\nreport:\n  formats: csv\n  tables: [{stage: x}]\n", "stored");
  EXPECT_THAT(r.formats, ElementsAre("csv"));
  ASSERT_EQ(r.tables.size(), 1u);
  EXPECT_EQ(r.tables[0].stage, "x");
  EXPECT_FALSE(ParseReportSpec("name: x\n", "stored").figures.has_value());
  try {
    ParseReportSpec("name: x\nreport:\n  formats: [pdf]\n", "stored");
    FAIL() << "accepted";
  } catch (const SpecError& e) {
    ASSERT_EQ(e.problems().size(), 1u);
    EXPECT_THAT(e.problems()[0], StartsWith("stored:3: report: formats: unknown format 'pdf'"));
  }
}

// ---- Overrides
// -----------------------------------------------------------------------------------

const char* kMulti = R"(name: multi
stages:
  - name: base
    kind: train
    params: {train: {steps: 300}}
  - name: steer
    kind: train
    needs: base
    seeds: [0, 1, 2]
    grid: {adapter: [lora, ia3], lora.rank: [2, 4]}
)";

TEST(SpecOverrideTest, TypedValuesIntoTheDocument) {
  SweepSpec spec =
      Parse(kMulti, {"stages.base.params.train.steps=10", "stages.steer.seeds=[1]",
                     "stages.1.params.train.lr=1e-2", "out=/scratch/runs",
                     "stages.steer.grid.lora.rank=[8, 16]", "stages.base.params.use_bias=true"});
  EXPECT_EQ(spec.out, "/scratch/runs");
  const StageSpec& base = *spec.FindStage("base");
  const StageSpec& steer = *spec.FindStage("steer");
  EXPECT_TRUE(base.params["train"]["steps"].is_number_integer());
  EXPECT_EQ(base.params["train"]["steps"], 10);
  EXPECT_EQ(base.params["use_bias"], true);
  EXPECT_THAT(steer.seeds, ElementsAre(1));
  EXPECT_DOUBLE_EQ(steer.params["train"]["lr"].get<double>(), 0.01);
  ASSERT_EQ(steer.grid.size(), 2u);
  EXPECT_EQ(steer.grid[1].key, "lora.rank");
  EXPECT_EQ(steer.grid[1].values, (std::vector<Json>{8, 16}));
  EXPECT_EQ(spec.overrides.size(), 6u);
  // Shorthand: top-level keys, created where absent.
  SweepSpec quick =
      Parse("kind: train\n", {"seeds=[0,1]", "params.train.steps=10", "grid.lora.rank=[1,2]"});
  EXPECT_THAT(quick.stages[0].seeds, ElementsAre(0, 1));
  EXPECT_EQ(quick.stages[0].params["train"]["steps"], 10);
  ASSERT_EQ(quick.stages[0].grid.size(), 1u);
  EXPECT_EQ(quick.stages[0].grid[0].key, "lora.rank");
}

TEST(SpecOverrideTest, BadOverridesAreProblemsLikeTheOthers) {
  auto problems = Problems(
      kMulti, {"stages.nope.seeds=1", "name.x=1", "noequals", "stages.9.seeds=1",
               "stages.base.params.train.steps=abc", "stages.base.params.bogus=1", "seeds=[0"});
  ASSERT_EQ(problems.size(), 7u) << ::testing::PrintToString(problems);
  EXPECT_THAT(problems[0], AllOf(StartsWith("override 'stages.nope.seeds=1': bad path"),
                                 HasSubstr("names: base, steer")));
  EXPECT_THAT(problems[1], StartsWith("override 'name.x=1': bad path: 'name' is string 'multi'"));
  EXPECT_THAT(problems[2], StartsWith("override 'noequals': expected key=value"));
  EXPECT_THAT(problems[3], HasSubstr("index 9 is past the end of 'stages' (2 elements)"));
  EXPECT_THAT(problems[4], StartsWith("override 'stages.base.params.train.steps=abc': stage "
                                      "'base': params.train.steps: expected integer"));
  EXPECT_THAT(problems[5], HasSubstr("params.bogus: unknown param"));
  EXPECT_THAT(problems[6], AllOf(StartsWith("override 'seeds=[0'"), HasSubstr("not valid YAML")));
}

TEST(SpecOverrideTest, HashCoversTextAndOverrides) {
  const std::string h = Parse(kMulti).Hash();
  EXPECT_EQ(h.size(), 64u);
  EXPECT_EQ(Parse(kMulti).Hash(), h);
  EXPECT_NE(Parse(kMulti, {"stages.steer.seeds=[1]"}).Hash(), h);
  EXPECT_NE(Parse(std::string(kMulti) + "\n").Hash(), h);
}

// ---- Expansion
// -----------------------------------------------------------------------------------

// The token cache rule of expansion (core/spec/expand.cpp), with a stand-in tokens kind: a shard
// reading text needs one implicit tokens shard, which with its stage asks for 0 GPUs (CPU work)
// whatever the consumer's stage asks for; the consumers keep their own resources.
TEST(SpecExpandTest, ImplicitTokensShardsAskForNoGpu) {
  KindRegistry kinds;
  KindConfig reader;
  reader.name = "reader";
  reader.defaults = {{"data", {{"source", "synthetic"}, {"path", ""}}}};
  kinds.Add(reader);
  KindConfig tokens;
  tokens.name = "tokens";
  tokens.defaults = {{"format", ""}, {"data", nullptr}, {"data_dir", ""}};
  tokens.resolve = [](Json& p, const KindConfig::StageContext&) {
    p["format"] = "corpus";
    return std::vector<std::string>{};
  };
  kinds.Add(tokens);
  const Plan plan =
      ExpandSpec(ParseSpec("kind: reader\nseeds: 2\nparams: {data: {source: text, path: a.txt}}\n"
                           "resources: {gpus: 2, memory: 1G}\n",
                           "spec.yaml", {}, kinds),
                 kinds);
  ASSERT_EQ(plan.shards.size(), 3u);
  int caches = 0;
  for (const auto& s : plan.shards) {
    const bool cache = s.key.kind() == "tokens";
    caches += cache;
    EXPECT_EQ(s.resources.gpus, cache ? 0 : 2) << s.key.kind();
    EXPECT_EQ(s.resources.memory_mb, cache ? 0 : 1024) << s.key.kind();
  }
  EXPECT_EQ(caches, 1);
  ASSERT_EQ(plan.spec.stages.size(), 2u);
  EXPECT_EQ(plan.spec.stages[1].kind, "tokens");
  EXPECT_EQ(plan.spec.stages[1].resources.gpus, 0);
  EXPECT_EQ(plan.spec.stages[1].resources.max_attempts, Resources{}.max_attempts);
}

TEST(SpecExpandTest, SeedsTimesGridTimesZip) {
  Plan plan = Expand(R"(
kind: train
seeds: [0, 1]
grid:
  adapter: [lora, ia3]
  lora.rank: [2, 4, 8]
zip:
  train.steps: [10, 20]
  train.lr: [0.1, 1]
params: {model: {n_layers: 3}}
)");
  ASSERT_EQ(plan.shards.size(), 2u * 2 * 3 * 2);
  std::set<std::tuple<int64_t, std::string, int64_t, int64_t>> seen;
  for (const auto& s : plan.shards) {
    EXPECT_EQ(s.key.role(), ShardRole::kSingle);
    EXPECT_EQ(s.key.params()["model"]["n_layers"], 3);  // the stage's params stay under the axes
    EXPECT_EQ(s.key.params()["model"]["d_model"], 64);
    EXPECT_EQ(s.key.params()["lora"]["alpha"], 8.0);
    EXPECT_EQ(s.key.axes()["adapter"], s.key.params()["adapter"]);
    EXPECT_EQ(s.key.axes()["lora.rank"], s.key.params()["lora"]["rank"]);
    const Json& train = s.key.params()["train"];
    EXPECT_TRUE(train["lr"].is_number_float());
    // zip pairs: steps 10 with lr 0.1, steps 20 with lr 1.0
    EXPECT_EQ(train["lr"].get<double>(), train["steps"] == 10 ? 0.1 : 1.0);
    EXPECT_EQ(s.key.axes().size(), 4u);
    seen.insert({s.key.seed(), s.key.params()["adapter"].get<std::string>(),
                 s.key.params()["lora"]["rank"].get<int64_t>(), train["steps"].get<int64_t>()});
  }
  EXPECT_EQ(seen.size(), plan.shards.size());
  // Order: seeds, then the grid (last axis fastest), then zip.
  EXPECT_EQ(plan.shards[0].key.seed(), 0);
  EXPECT_EQ(plan.shards[0].key.params()["adapter"], "lora");
  EXPECT_EQ(plan.shards[0].key.params()["lora"]["rank"], 2);
  EXPECT_EQ(plan.shards[1].key.params()["train"]["steps"], 20);
  EXPECT_EQ(plan.shards[2].key.params()["lora"]["rank"], 4);
  EXPECT_EQ(plan.shards[12].key.seed(), 1);
  std::set<ShardId> ids;
  for (const auto& s : plan.shards) ids.insert(s.key.id());
  EXPECT_EQ(ids.size(), plan.shards.size());
}

TEST(SpecExpandTest, MapAxisValueMergesIntoTheParam) {
  Plan plan = Expand(
      "kind: train\nparams: {model: {n_layers: 5}}\ngrid:\n  model: [{d_model: 32}, {d_model: "
      "128}]\n");
  ASSERT_EQ(plan.shards.size(), 2u);
  EXPECT_EQ(plan.shards[1].key.params()["model"],
            Json::parse(R"({"d_model": 128, "n_layers": 5})"));
}

TEST(SpecExpandTest, NeedsFanOutAndInheritance) {
  Plan plan = Expand(std::string(kMulti) + R"(
  - name: ablate
    kind: eval
    needs: steer
  - name: fixed
    kind: eval
    needs: [steer]
    seeds: [7]
  - name: summary
    kind: eval
    needs: [base]
)");
  auto base = StageShards(plan, "base");
  auto steer = StageShards(plan, "steer");
  auto ablate = StageShards(plan, "ablate");
  auto fixed = StageShards(plan, "fixed");
  ASSERT_EQ(base.size(), 1u);
  ASSERT_EQ(steer.size(), 12u);
  ASSERT_EQ(ablate.size(), 12u);
  ASSERT_EQ(fixed.size(), 12u);
  ASSERT_EQ(StageShards(plan, "summary").size(), 1u);
  for (const ShardPlan* s : steer) EXPECT_THAT(s->key.needs(), ElementsAre(base[0]->key.id()));
  std::map<ShardId, const ShardPlan*> by_id;
  for (const auto& s : plan.shards) by_id[s.key.id()] = &s;
  for (size_t i = 0; i < ablate.size(); ++i) {
    ASSERT_EQ(ablate[i]->key.needs().size(), 1u);
    const ShardPlan* up = by_id.at(ablate[i]->key.needs()[0]);
    EXPECT_EQ(up, steer[i]);  // one ablation per steer shard, in the same order
    EXPECT_EQ(ablate[i]->key.seed(), up->key.seed());
    EXPECT_EQ(ablate[i]->key.axes(), up->key.axes());
    EXPECT_EQ(fixed[i]->key.seed(), 7);
    EXPECT_EQ(fixed[i]->key.axes(), up->key.axes());
    EXPECT_EQ(ablate[i]->key.params(), (Json{{"alpha", 1.0}, {"split", "test"}}));
  }
  // Every shard comes after the shards it needs.
  std::set<ShardId> done;
  for (const auto& s : plan.shards) {
    for (const auto& n : s.key.needs()) EXPECT_TRUE(done.count(n)) << s.key.stage();
    done.insert(s.key.id());
  }
}

TEST(SpecExpandTest, ForwardNeedsAreOrderedAfterTheirNeeds) {
  Plan plan = Expand(R"(stages:
  - {name: late, kind: eval, needs: early}
  - {name: early, kind: eval, params: {alpha: 2}}
)");
  ASSERT_EQ(plan.shards.size(), 2u);
  EXPECT_EQ(plan.shards[0].key.stage(), "early");
  EXPECT_EQ(plan.shards[0].stage_index, 1);
  EXPECT_EQ(plan.shards[1].key.stage(), "late");
  EXPECT_THAT(plan.shards[1].key.needs(), ElementsAre(plan.shards[0].key.id()));
}

TEST(SpecExpandTest, FanOutOverSeveralNeededStagesIsACartesianProduct) {
  Plan plan = Expand(R"(stages:
  - {name: a, kind: eval, seeds: [0, 1]}
  - {name: b, kind: eval, seeds: 3, params: {split: train}}
  - {name: c, kind: eval, needs: [a, b], grid: {split: [x, y]}}
)");
  auto c = StageShards(plan, "c");
  ASSERT_EQ(c.size(), 2u * 3 * 2);
  std::set<std::vector<ShardId>> needs;
  for (const ShardPlan* s : c) {
    ASSERT_EQ(s->key.needs().size(), 2u);
    needs.insert(s->key.needs());
  }
  EXPECT_EQ(needs.size(), 6u);
  EXPECT_EQ(c[0]->key.seed(), 0);  // inherited from the first needed stage
  EXPECT_EQ(c.back()->key.seed(), 1);
}

TEST(SpecExpandTest, InheritedAxisThatCollidesIsPrefixedWithItsStage) {
  Plan plan = Expand(R"(stages:
  - {name: a, kind: eval, grid: {alpha: [1, 2]}}
  - {name: b, kind: eval, needs: a, grid: {alpha: [5]}}
)");
  auto b = StageShards(plan, "b");
  ASSERT_EQ(b.size(), 2u);
  EXPECT_EQ(b[1]->key.axes(), Json::parse(R"({"alpha": 5.0, "a:alpha": 2.0})"));
}

TEST(SpecExpandTest, ShardsWithReduceAndReplicas) {
  Plan plan = Expand(R"(stages:
  - {name: base, kind: train}
  - {name: harvest, kind: harvest, needs: base, shards: 4, seeds: [0, 1]}
  - {name: post, kind: eval, needs: harvest}
  - {name: rep, kind: eval, shards: 3}
)");
  auto harvest = StageShards(plan, "harvest");
  ASSERT_EQ(harvest.size(), 2u * 5);
  for (int seed = 0; seed < 2; ++seed) {
    std::vector<ShardId> maps;
    for (int i = 0; i < 4; ++i) {
      const ShardPlan& m = *harvest[seed * 5 + i];
      EXPECT_EQ(m.key.role(), ShardRole::kMap);
      EXPECT_EQ(m.key.seed(), seed);
      EXPECT_EQ(m.key.params()["shard_index"], i);
      EXPECT_EQ(m.key.params()["shard_count"], 4);
      EXPECT_THAT(m.key.needs(), ElementsAre(StageShards(plan, "base")[0]->key.id()));
      maps.push_back(m.key.id());
    }
    const ShardPlan& r = *harvest[seed * 5 + 4];
    EXPECT_EQ(r.key.role(), ShardRole::kReduce);
    EXPECT_EQ(r.key.params()["role"], "reduce");
    EXPECT_EQ(r.key.params()["shard_count"], 4);
    EXPECT_EQ(r.key.needs(), maps);
  }
  // Only the reduce shards are the stage's outputs.
  auto post = StageShards(plan, "post");
  ASSERT_EQ(post.size(), 2u);
  EXPECT_THAT(post[0]->key.needs(), ElementsAre(harvest[4]->key.id()));
  EXPECT_THAT(post[1]->key.needs(), ElementsAre(harvest[9]->key.id()));
  // Without a reducer, shards are independent replicas.
  auto rep = StageShards(plan, "rep");
  ASSERT_EQ(rep.size(), 3u);
  for (int i = 0; i < 3; ++i) {
    EXPECT_EQ(rep[i]->key.role(), ShardRole::kSingle);
    EXPECT_EQ(rep[i]->key.params()["shard_index"], i);
    EXPECT_TRUE(rep[i]->key.needs().empty());
  }
}

TEST(SpecExpandTest, IdenticalShardsInTwoStagesAreAnError) {
  try {
    Expand("stages:\n  - {name: a, kind: eval}\n  - {name: b, kind: eval}\n");
    FAIL();
  } catch (const SpecError& e) {
    ASSERT_EQ(e.problems().size(), 1u);
    EXPECT_THAT(e.problems()[0], AllOf(StartsWith("spec.yaml:3: "), HasSubstr("repeats shard")));
  }
}

TEST(SpecExpandTest, MaxShardsFailsBeforeMaterialising) {
  std::string values = "[1";
  for (int i = 2; i <= 1000; ++i) values += ", " + std::to_string(i);
  values += "]";
  const std::string yaml = "kind: train\ngrid:\n  lora.rank: " + values +
                           "\n  train.steps: " + values + "\n  model.d_model: " + values +
                           "\n  model.n_layers: " + values + "\n";
  SweepSpec spec = Parse(yaml);
  auto start = std::chrono::steady_clock::now();
  try {
    ExpandSpec(spec, Kinds());
    FAIL();
  } catch (const SpecError& e) {
    EXPECT_THAT(e.problems().at(0),
                AllOf(StartsWith("spec.yaml:1: "), HasSubstr("1000000000000 shards"),
                      HasSubstr("more than max_shards = 1000000")));
  }
  EXPECT_LT(std::chrono::steady_clock::now() - start, std::chrono::milliseconds(200));
  // The limit is exact.
  SweepSpec small = Parse("kind: harvest\nseeds: 2\nshards: 2\n");  // 2 x (2 maps + 1 reduce)
  EXPECT_EQ(ExpandSpec(small, Kinds(), 6).shards.size(), 6u);
  EXPECT_THROW(ExpandSpec(small, Kinds(), 5), SpecError);
}

TEST(SpecExpandTest, CountShardsAgreesWithExpansionWithoutBuildingShards) {
  // What the self-launcher checks before it starts MPI.
  for (const char* yaml : {
           "kind: harvest\nseeds: 2\nshards: 2\n",
           "stages:\n  - {name: base, kind: train, seeds: [0, 1, 2]}\n"
           "  - {name: steer, kind: train, needs: base, grid: {lora.rank: [1, 2]}}\n",
       }) {
    SweepSpec spec = Parse(yaml);
    EXPECT_EQ(CountShards(spec, Kinds()), ExpandSpec(spec, Kinds()).shards.size()) << yaml;
  }
  SweepSpec small = Parse("kind: harvest\nseeds: 2\nshards: 2\n");
  EXPECT_EQ(CountShards(small, Kinds(), 6), 6u);
  EXPECT_THROW(CountShards(small, Kinds(), 5), SpecError);
  EXPECT_THROW(CountShards(Parse("stages:\n  - {name: a, kind: train, needs: b}\n"
                                 "  - {name: b, kind: train, needs: a}\n"),
                           Kinds()),
               SpecError);
  // Two stages giving the same shard: only the expansion, which builds them, can tell.
  SweepSpec twice = Parse("stages:\n  - {name: a, kind: train}\n  - {name: b, kind: train}\n");
  EXPECT_EQ(CountShards(twice, Kinds()), 2u);
  EXPECT_THROW(ExpandSpec(twice, Kinds()), SpecError);
}

// ---- Shard ids
// -----------------------------------------------------------------------------------

TEST(ShardIdTest, GoldenValue) {
  // Computed once (and reproduced independently with Python hashlib + json.dumps(sort_keys)); if
  // this changes, every existing registry's shards would be recomputed.
  ShardId id =
      ComputeShardId("train", Json::parse(R"({"lr": 0.001, "steps": 10, "tag": "x"})"), 3,
                     {ShardId{"00000000000000aa"}, ShardId{"00000000000000bb"}}, "seedgrid-1");
  EXPECT_EQ(id.hex, "e208c2532e50c49f");
  EXPECT_EQ(id.hex.size(), 16u);
  EXPECT_EQ(id.hex.find_first_not_of("0123456789abcdef"), std::string::npos);
}

TEST(ShardIdTest, InvariantUnderKeyOrderAndNeedsOrder) {
  Json a = {{"steps", 10}, {"lr", 0.001}, {"model", {{"d", 1}, {"n", 2}}}};
  Json b = Json::parse(R"({"model": {"n": 2, "d": 1}, "lr": 0.001, "steps": 10})");
  ShardId x{"1111111111111111"}, y{"2222222222222222"};
  EXPECT_EQ(ComputeShardId("k", a, 0, {x, y}, "t"), ComputeShardId("k", b, 0, {y, x}, "t"));
  // And through the spec: YAML key order and axis order do not matter.
  Plan p1 = Expand(
      "kind: train\nseeds: [1]\nparams: {train: {steps: 5, lr: 0.5}}\n"
      "grid: {adapter: [a], lora.rank: [2]}\n");
  Plan p2 = Expand(
      "grid: {lora.rank: [2], adapter: [a]}\nparams: {train: {lr: 0.5, steps: 5}}\n"
      "seeds: [1]\nkind: train\n");
  EXPECT_EQ(p1.shards.at(0).key.id(), p2.shards.at(0).key.id());
  // Same id whether a value comes from params, an axis or an override; 2 and 2.0 for a float.
  Plan p3 = Expand("kind: train\nseeds: [1]\nparams: {adapter: a, lora: {rank: 2}}\n",
                   {"params.train.steps=5", "params.train.lr=0.5"});
  EXPECT_EQ(p3.shards.at(0).key.id(), p1.shards[0].key.id());
  EXPECT_EQ(Expand("kind: eval\nparams: {alpha: 2}").shards[0].key.id(),
            Expand("kind: eval\nparams: {alpha: 2.0}").shards[0].key.id());
}

TEST(ShardIdTest, ChangesWithEveryInput) {
  const Json params = {{"steps", 10}};
  const ShardId need{"1111111111111111"};
  const ShardId base = ComputeShardId("k", params, 0, {need}, "t");
  std::set<ShardId> ids = {base};
  ids.insert(ComputeShardId("k2", params, 0, {need}, "t"));
  ids.insert(ComputeShardId("k", {{"steps", 11}}, 0, {need}, "t"));
  ids.insert(ComputeShardId("k", {{"steps", 10.0}}, 0, {need}, "t"));
  ids.insert(ComputeShardId("k", {{"steps", "10"}}, 0, {need}, "t"));
  ids.insert(ComputeShardId("k", params, 1, {need}, "t"));
  ids.insert(ComputeShardId("k", params, 0, {}, "t"));
  ids.insert(ComputeShardId("k", params, 0, {ShardId{"1111111111111112"}}, "t"));
  ids.insert(ComputeShardId("k", params, 0, {need}, "t2"));
  // Fields are length-prefixed: moving bytes from one field to the next changes the id.
  ids.insert(ComputeShardId("kt", params, 0, {need}, ""));
  EXPECT_EQ(ids.size(), 10u);
  // Changing one axis value keeps the other shards' ids.
  Plan a = Expand("kind: eval\ngrid: {alpha: [1, 2, 3]}\n");
  Plan b = Expand("kind: eval\ngrid: {alpha: [1, 2, 4]}\n");
  EXPECT_EQ(a.shards[0].key.id(), b.shards[0].key.id());
  EXPECT_EQ(a.shards[1].key.id(), b.shards[1].key.id());
  EXPECT_NE(a.shards[2].key.id(), b.shards[2].key.id());
  // A change upstream changes the ids downstream (needs are part of the id).
  Plan c = Expand(kMulti);
  Plan d = Expand(kMulti, {"stages.base.params.train.steps=301"});
  EXPECT_NE(c.shards.back().key.id(), d.shards.back().key.id());
}

// ---- Params that do not apply (KindConfig::inapplicable)
// ---------------------------------------------------------

// The test kinds and `adapt`: train, with lora.* not applying to other adapters (or, without
// the hook, what its ids were before it).
KindRegistry AdaptKinds(bool hook) {
  KindRegistry kinds = TestKinds();
  KindConfig adapt = *kinds.Find("train");
  adapt.name = "adapt";
  if (hook) {
    adapt.inapplicable = [](const Json& p) {
      return p["adapter"] == "lora" ? std::vector<std::string>{} : std::vector<std::string>{"lora"};
    };
  }
  kinds.Add(adapt);
  return kinds;
}

Plan ExpandAdapt(const std::string& yaml, const std::vector<std::string>& overrides = {},
                 bool hook = true) {
  const KindRegistry kinds = AdaptKinds(hook);
  return ExpandSpec(ParseSpec(yaml, "spec.yaml", overrides, kinds), kinds);
}

const char* kAdaptGrid = R"(name: adapt
stages:
  - name: steer
    kind: adapt
    seeds: [0, 1]
    grid: {adapter: [lora, ia3], lora.rank: [1, 4]}
  - name: probe
    kind: eval
    needs: steer
)";

TEST(SpecCollapseTest, ConfigsDifferingOnlyInParamsThatDoNotApplyAreOneShard) {
  Plan plan = ExpandAdapt(kAdaptGrid);
  auto steer = StageShards(plan, "steer");
  ASSERT_EQ(steer.size(), 2u * 3);  // per seed: lora×1, lora×4, ia3
  std::set<ShardId> ids;
  for (const ShardPlan* s : steer) {
    ids.insert(s->key.id());
    if (s->key.params()["adapter"] == "ia3") {
      EXPECT_EQ(s->key.params()["lora"]["rank"], 4);  // back to the default
      EXPECT_TRUE(s->key.axes()["lora.rank"].is_null()) << s->key.axes().dump();
      EXPECT_EQ(s->key.axes()["adapter"], "ia3");
    } else {
      EXPECT_EQ(s->key.axes()["lora.rank"], s->key.params()["lora"]["rank"]);
    }
  }
  EXPECT_EQ(ids.size(), steer.size());
  // Downstream fans out over the distinct outputs only: no "repeats shard" problem.
  EXPECT_EQ(StageShards(plan, "probe").size(), steer.size());
  ASSERT_EQ(plan.collapsed.size(), 2u);  // ia3 × rank 4, per seed
  for (const auto& c : plan.collapsed) {
    EXPECT_EQ(c.stage, "steer");
    EXPECT_EQ(c.axes, Json::parse(R"({"adapter": "ia3", "lora.rank": 4})"));
    auto same = std::find_if(steer.begin(), steer.end(),
                             [&](const ShardPlan* s) { return s->key.id() == c.same_as; });
    ASSERT_NE(same, steer.end());
    EXPECT_EQ((*same)->key.seed(), c.seed);
    EXPECT_EQ((*same)->key.params()["adapter"], "ia3");
  }
  // Without a lora.rank axis nothing collapses.
  Plan one_rank = ExpandAdapt(kAdaptGrid, {"stages.steer.grid.lora.rank=[2]"});
  EXPECT_TRUE(one_rank.collapsed.empty());
  EXPECT_EQ(StageShards(one_rank, "steer").size(), 2u * 2);
}

TEST(SpecCollapseTest, IdsOfConfigsThatUseEveryParamAreUnchanged) {
  Plan with = ExpandAdapt(kAdaptGrid);
  Plan without = ExpandAdapt(kAdaptGrid, {}, false);
  std::map<std::string, ShardId> before;
  for (const ShardPlan* s : StageShards(without, "steer"))
    before[s->key.axes().dump() + std::to_string(s->key.seed())] = s->key.id();
  auto id_before = [&](const std::string& adapter, int rank, int64_t seed) {
    Json axes = {{"adapter", adapter}, {"lora.rank", rank}};
    return before.at(axes.dump() + std::to_string(seed));
  };
  for (const ShardPlan* s : StageShards(with, "steer")) {
    const std::string adapter = s->key.params()["adapter"];
    const int rank = s->key.params()["lora"]["rank"];
    // lora uses every param: same id; ia3 is the config whose lora.* are the defaults.
    EXPECT_EQ(s->key.id(), id_before(adapter, rank, s->key.seed())) << adapter << rank;
  }
}

TEST(SpecCollapseTest, RealKindsSayWhatDoesNotApply) {
  const char* spec = R"(name: real
stages:
  - name: base
    kind: pretrain
  - name: steer
    kind: lora_steer
    needs: base
    seeds: [0, 1, 2]
    grid: {adapter: [lora, ia3], lora.rank: [1, 4]}
  - name: harvest
    kind: harvest
    needs: base
    grid: {data.dataset: [tokens, other]}
)";
  Plan plan = ExpandSpec(ParseSpec(spec, "real.yaml", {}, AllKinds()), AllKinds());
  EXPECT_EQ(StageShards(plan, "steer").size(), 3u * 3);
  // A synthetic source reads no dataset: one harvest shard.
  EXPECT_EQ(StageShards(plan, "harvest").size(), 1u);
  EXPECT_EQ(plan.collapsed.size(), 3u + 1);
}

TEST(SpecOverrideTest, OverridingAParamThatAnAxisSetsNamesTheAxis) {
  auto problems = Problems(kMulti, {"stages.steer.params.lora.rank=8"});
  ASSERT_EQ(problems.size(), 1u) << ::testing::PrintToString(problems);
  EXPECT_THAT(problems[0],
              AllOf(StartsWith("override 'stages.steer.params.lora.rank=8': stage 'steer': param "
                               "'lora.rank' is a grid axis of the stage (line 10: 2, 4)"),
                    HasSubstr("override the axis instead: stages.steer.grid.lora.rank=[8]")));
  problems = Problems("kind: train\nzip: {train.lr: [0.1, 0.2]}\n", {"params.train={lr: 1}"});
  ASSERT_EQ(problems.size(), 1u) << ::testing::PrintToString(problems);
  EXPECT_THAT(problems[0], HasSubstr("override the axis instead: zip.train.lr=[1]"));
  // Other params beside the axis, and the axis itself, may be overridden.
  SweepSpec ok =
      Parse(kMulti, {"stages.steer.params.lora.alpha=2", "stages.steer.grid.lora.rank=[8]"});
  EXPECT_EQ(ok.FindStage("steer")->params["lora"]["alpha"], 2.0);
  EXPECT_EQ(ok.FindStage("steer")->grid[1].values, std::vector<Json>{8});
}

// ---- Durations and sizes
// -------------------------------------------------------------------------

TEST(SpecUnitsTest, Durations) {
  EXPECT_EQ(ParseDuration("90s"), 90);
  EXPECT_EQ(ParseDuration("10m"), 600);
  EXPECT_EQ(ParseDuration("1h30m"), 5400);
  EXPECT_EQ(ParseDuration("2h"), 7200);
  EXPECT_EQ(ParseDuration("1d2h3m4s"), 86400 + 7200 + 180 + 4);
  EXPECT_DOUBLE_EQ(ParseDuration("500ms"), 0.5);
  EXPECT_DOUBLE_EQ(ParseDuration("1m30s500ms"), 90.5);
  EXPECT_DOUBLE_EQ(ParseDuration("12.5"), 12.5);
  EXPECT_DOUBLE_EQ(ParseDuration(" 1.5h "), 5400);
  EXPECT_EQ(ParseDuration("0"), 0);
  for (const char* bad :
       {"", "abc", "10x", "-5s", "1h1h", "30m1h", "1h30", "s", "1.2.3s", "inf", "nan"}) {
    EXPECT_THROW(ParseDuration(bad), std::invalid_argument) << bad;
  }
}

TEST(SpecUnitsTest, MemorySizes) {
  EXPECT_EQ(ParseMemoryMb("512M"), 512);
  EXPECT_EQ(ParseMemoryMb("2G"), 2048);
  EXPECT_EQ(ParseMemoryMb("1.5G"), 1536);
  EXPECT_EQ(ParseMemoryMb("100"), 100);
  EXPECT_EQ(ParseMemoryMb("2GiB"), 2048);
  EXPECT_EQ(ParseMemoryMb("2gb"), 2048);
  EXPECT_EQ(ParseMemoryMb("1T"), 1024 * 1024);
  EXPECT_EQ(ParseMemoryMb("512K"), 1);  // rounded up to whole MiB
  EXPECT_EQ(ParseMemoryMb("0"), 0);
  for (const char* bad : {"", "lots", "-1G", "2X", "G", "1.5.1G", "2 G B"}) {
    EXPECT_THROW(ParseMemoryMb(bad), std::invalid_argument) << bad;
  }
}

TEST(SpecLoadTest, MissingFileIsASpecError) {
  try {
    LoadSpec("/nonexistent/spec.yaml", {}, Kinds());
    FAIL();
  } catch (const SpecError& e) {
    EXPECT_THAT(e.problems().at(0), StartsWith("/nonexistent/spec.yaml: cannot read"));
  }
}

// ---- Hostile input: limits and encoding ---------------------------------------------------------

// "Billion laughs": every level names the one above ten times, so level k expands to ~10^k nodes.
std::string AliasBomb(int levels) {
  std::string y = "kind: train\nparams:\n  extra:\n    l0: &l0 [x, x, x, x, x, x, x, x, x, x]\n";
  for (int k = 1; k < levels; ++k) {
    y += fmt::format("    l{0}: &l{0} [", k);
    for (int i = 0; i < 10; ++i) y += fmt::format("{}*l{}", i ? ", " : "", k - 1);
    y += "]\n";
  }
  return y;
}

int64_t PeakRssKb() {
  rusage u{};
  getrusage(RUSAGE_SELF, &u);
  return u.ru_maxrss;
}

TEST(SpecLimitsTest, AliasBombFailsFastAtTheLineThatExpandsPastTheLimit) {
  const int64_t rss_before = PeakRssKb();
  const auto start = std::chrono::steady_clock::now();
  // 9 levels: 10^9 scalars once expanded. l5 (line 9) is the first to pass 10^6 nodes.
  auto problems = Problems(AliasBomb(9));
  EXPECT_LT(std::chrono::steady_clock::now() - start, std::chrono::milliseconds(500));
  EXPECT_LT(PeakRssKb() - rss_before, 64 * 1024) << "KiB of peak RSS";
  ASSERT_EQ(problems.size(), 1u) << ::testing::PrintToString(problems);
  EXPECT_THAT(problems[0], AllOf(StartsWith("spec.yaml:9: "),
                                 HasSubstr("more than 1000000 nodes once its YAML aliases"),
                                 HasSubstr("limit")));
  // The same through an override (its value is YAML too).
  problems = Problems("kind: train\n", {"params.extra=" + AliasBomb(9).substr(29)});
  ASSERT_EQ(problems.size(), 1u) << ::testing::PrintToString(problems);
  EXPECT_THAT(problems[0],
              AllOf(StartsWith("override 'params.extra="), HasSubstr("more than 1000000 nodes")));
}

TEST(SpecLimitsTest, AliasesWithinTheLimitsAreExpanded) {
  // 5 levels: 111,111 nodes under extra, well within the limit.
  SweepSpec bomb = Parse(AliasBomb(5));
  const Json& l4 = bomb.stages[0].params["extra"]["l4"];
  ASSERT_EQ(l4.size(), 10u);
  EXPECT_EQ(l4[9][9][9][9][9], "x");
  SweepSpec spec = Parse(R"(
stages:
  - name: a
    kind: train
    params: &shared {train: {steps: 7}}
  - name: b
    kind: train
    seeds: [1]
    params: *shared
)");
  EXPECT_EQ(spec.stages[0].params["train"]["steps"], 7);
  EXPECT_EQ(spec.stages[1].params["train"]["steps"], 7);
}

std::string Nested(int depth) { return std::string(depth, '[') + "1" + std::string(depth, ']'); }

TEST(SpecLimitsTest, DeepNestingSaysWhatAndWhere) {
  // Level 1 is the top-level map, 2 params, 3 extra's list: 62 lists fit, 63 do not.
  const std::string head = "kind: train\nparams:\n  extra: ";
  EXPECT_EQ(Parse(head + Nested(62)).stages[0].params["extra"].dump().size(), 125u);
  EXPECT_THAT(OneProblem(head + Nested(63), 3),
              AllOf(HasSubstr("nesting deeper than 64 levels"), HasSubstr("limit")));
  // 5,000 levels: yaml-cpp's own guard stops first; its position is reported.
  const auto start = std::chrono::steady_clock::now();
  EXPECT_THAT(OneProblem(head + Nested(5000), 3),
              AllOf(HasSubstr("nesting deeper than 64 levels"), Not(HasSubstr("bad file"))));
  EXPECT_LT(std::chrono::steady_clock::now() - start, std::chrono::milliseconds(500));
  // Depth built from aliases: two 40-level lists, one inside the other, used on line 5.
  const std::string aliased = "kind: train\nparams:\n  extra:\n    a: &a " + Nested(40) +
                              "\n    b: " + std::string(40, '[') + "*a" + std::string(40, ']') +
                              "\n";
  EXPECT_THAT(OneProblem(aliased, 5), HasSubstr("nesting deeper than 64 levels"));
}

TEST(SpecUtf8Test, InvalidUtf8AnywhereIsAProblemWithItsLine) {
  auto problems = Problems(
      "kind: train\n"
      "grid:\n"
      "  adapter: [lora, \"caf\xE9\"]\n"  // Latin-1, line 3
      "params:\n"
      "  extra:\n"
      "    note: \"ok \xC3\xA9 \xF0\x9F\x98\x80\"\n"
      "    bad: \"x\xC0\xAF\"\n"  // overlong, line 7
      "    \"r\xFF\": 1\n");      // a key, line 8
  ASSERT_EQ(problems.size(), 3u) << ::testing::PrintToString(problems);
  EXPECT_THAT(problems[0], AllOf(StartsWith("spec.yaml:3: "),
                                 HasSubstr("'caf\\xE9' is not valid UTF-8 (byte 0xE9 at "
                                           "offset 3)")));
  EXPECT_THAT(problems[1], AllOf(StartsWith("spec.yaml:7: "), HasSubstr("'x\\xC0\\xAF'")));
  EXPECT_THAT(problems[2], AllOf(StartsWith("spec.yaml:8: "), HasSubstr("the key 'r\\xFF'")));
  // Surrogates, code points past U+10FFFF and truncated sequences are not UTF-8 either.
  for (const char* bad : {"\xED\xA0\x80", "\xF4\x90\x80\x80", "a\xE2\x82", "\x80"}) {
    SCOPED_TRACE(::testing::PrintToString(std::string(bad)));
    EXPECT_THAT(OneProblem(std::string("kind: train\nparams:\n  extra: \"") + bad + "\"\n", 3),
                HasSubstr("is not valid UTF-8"));
  }
  // Valid UTF-8 (2-, 3- and 4-byte sequences) is accepted as is.
  SweepSpec ok =
      Parse("kind: train\nparams:\n  adapter: \"\xC3\xA9\xE2\x82\xAC\xF0\x9F\x98\x80\"\n");
  EXPECT_EQ(ok.stages[0].params["adapter"], "\xC3\xA9\xE2\x82\xAC\xF0\x9F\x98\x80");
  // An override is checked too.
  problems = Problems("kind: train\n", {"params.adapter=\"\xE9t\xE9\""});
  ASSERT_EQ(problems.size(), 1u) << ::testing::PrintToString(problems);
  EXPECT_THAT(problems[0], AllOf(StartsWith("override '"), HasSubstr("is not valid UTF-8")));
}

TEST(KindRegistryTest, AddFindNames) {
  KindRegistry kinds = TestKinds();
  EXPECT_THAT(kinds.Names(), ElementsAre("eval", "harvest", "train"));
  ASSERT_NE(kinds.Find("harvest"), nullptr);
  EXPECT_TRUE(kinds.Find("harvest")->has_reduce);
  EXPECT_EQ(kinds.Find("missing"), nullptr);
  KindConfig dup;
  dup.name = "eval";
  EXPECT_THROW(kinds.Add(dup), std::logic_error);
}

}  // namespace
}  // namespace seedgrid

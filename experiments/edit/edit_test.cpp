// kind `edit`: the fire-position rules, the config checks, and the runner on the embedded demo
// model (λ → ∞ leaves the model as it was, λ = 0 maximises P(target)).
#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <cmath>
#include <fstream>
#include <iostream>
#include <numeric>

#include <torch/torch.h>

#include "core/store.h"
#include "experiments/data/synthetic.h"
#include "experiments/edit/edit.h"
#include "experiments/edit/fire.h"
#include "experiments/edit/layout.h"
#include "experiments/model/model.h"
#include "experiments/model/runtime_env.h"
#include "tests/experiments/demo_base.h"
#include "tests/experiments/test_context.h"

namespace seedgrid {
namespace {

namespace L = edit_layout;
using testing::DemoBase;
using ::testing::ElementsAre;
using ::testing::HasSubstr;
using testing::TempDir;
using testing::TestShardContext;

// ---- fire positions ----

TEST(FireJsonl, ParsesTokensPositionsAndOneOrManyTargets) {
  auto w =
      edit::ParseWindowLine(R"({"tokens": [5, 6, 7, 8], "positions": [2, 0], "target": 9})", 10);
  EXPECT_THAT(w.tokens, ElementsAre(5, 6, 7, 8));
  EXPECT_THAT(w.fire, ElementsAre(0, 2));
  EXPECT_THAT(w.target, ElementsAre(9, 9));
  w = edit::ParseWindowLine(R"({"tokens": [5, 6, 7], "positions": [2, 0], "target": [1, 3]})", 0);
  EXPECT_THAT(w.fire, ElementsAre(0, 2));
  EXPECT_THAT(w.target, ElementsAre(3, 1));  // each target stays with its position
}

TEST(FireJsonl, RejectsBadLinesSayingWhy) {
  const auto error = [](const std::string& line) {
    try {
      edit::ParseWindowLine(line, 10);
    } catch (const std::runtime_error& e) {
      return std::string(e.what());
    }
    return std::string("accepted");
  };
  EXPECT_THAT(error(R"({"tokens": [1], "positions": [0]})"), HasSubstr("missing \"target\""));
  EXPECT_THAT(error(R"({"tokens": [1, 2], "positions": [2], "target": 1})"),
              HasSubstr("positions: 2 is not a position in [0, 2)"));
  EXPECT_THAT(error(R"({"tokens": [1, 2], "positions": [1, 1], "target": 1})"),
              HasSubstr("1 given twice"));
  EXPECT_THAT(error(R"({"tokens": [1, 12], "positions": [0], "target": 1})"),
              HasSubstr("token 12 is outside the vocabulary [0, 10)"));
  EXPECT_THAT(error(R"({"tokens": [1, 2], "positions": [0, 1], "target": [1]})"),
              HasSubstr("\"target\" has 1 tokens for 2 positions"));
  EXPECT_THAT(error(R"({"tokens": [1], "positions": [0], "target": 1, "extra": 0})"),
              HasSubstr("unknown key \"extra\""));
  EXPECT_THAT(error("[1, 2]"), HasSubstr("not a JSON object"));
}

TEST(FireJsonl, FileErrorsNameTheFileAndLine) {
  TempDir dir;
  const std::string path = (dir.path() / "edits.jsonl").string();
  std::ofstream(path) << R"({"tokens": [1, 2], "positions": [1], "target": 3})"
                      << "\n\n"
                      << R"({"tokens": [1, 2], "positions": [5], "target": 3})"
                      << "\n";
  try {
    edit::ReadJsonlWindows(path, 10);
    FAIL() << "accepted";
  } catch (const std::runtime_error& e) {
    EXPECT_THAT(e.what(), HasSubstr(path + ":3: positions: 5"));
  }
  std::ofstream(path) << R"({"tokens": [1, 2], "positions": [1], "target": 3})"
                      << "\n\n";
  EXPECT_EQ(edit::ReadJsonlWindows(path, 10).size(), 1u);
}

TEST(FireRule, AfterTokenFiresWhereverTheTokenIsAndDropsRowsWithoutIt) {
  // rows: [2 5 2 6], [5 6 7 8], [9 9 9 2]
  const std::vector<int32_t> rows = {2, 5, 2, 6, 5, 6, 7, 8, 9, 9, 9, 2};
  const auto w = edit::WindowsAfterToken(rows, 3, 4, /*after=*/2, /*target=*/3);
  ASSERT_EQ(w.size(), 2u);
  EXPECT_THAT(w[0].tokens, ElementsAre(2, 5, 2, 6));
  EXPECT_THAT(w[0].fire, ElementsAre(0, 2));
  EXPECT_THAT(w[0].target, ElementsAre(3, 3));
  EXPECT_THAT(w[1].fire, ElementsAre(3));
}

TEST(FireRule, OnTheSyntheticTaskAfterQFiresAtTheAnswerPosition) {
  const synth::TaskSpec task;
  const auto rows = synth::MakePersonaRows(task, synth::Split::kSteerTrain, 0, 8);
  const auto w =
      edit::WindowsAfterToken(rows.tokens, rows.rows, rows.seq_len, synth::kQ, synth::kYes);
  ASSERT_EQ(w.size(), 8u);
  for (const auto& win : w) EXPECT_THAT(win.fire, ElementsAre(task.answer_pos() - 1));
}

TEST(FireHarvest, ReservoirSlotsFireAtTheirCentreCutToTheRow) {
  // k = 3 slots of w = 5 (context 2): full, at the row's start, empty.
  const std::vector<int32_t> t = {4, 5, 6, 7, 8, -1, -1, 6, 7, 8, -1, -1, -1, -1, -1};
  const auto w = edit::WindowsFromReservoir(t, 3, 5, 9);
  ASSERT_EQ(w.size(), 2u);
  EXPECT_THAT(w[0].tokens, ElementsAre(4, 5, 6, 7, 8));
  EXPECT_THAT(w[0].fire, ElementsAre(2));
  EXPECT_THAT(w[1].tokens, ElementsAre(6, 7, 8));
  EXPECT_THAT(w[1].fire, ElementsAre(0));
  EXPECT_THAT(w[1].target, ElementsAre(9));
}

std::vector<edit::Window> Numbered(int n) {
  std::vector<edit::Window> w(static_cast<size_t>(n));
  for (int i = 0; i < n; ++i) w[i] = {{i, i + 1}, {0}, {3}};
  return w;
}

TEST(FireSplit, HeldOutWindowsComeFirstWhateverNTrain) {
  auto s = edit::SplitWindows(Numbered(10), 3, 2);
  ASSERT_EQ(s.eval.size(), 3u);
  ASSERT_EQ(s.train.size(), 2u);
  EXPECT_EQ(s.eval[2].tokens[0], 2);
  EXPECT_EQ(s.train[0].tokens[0], 3);
  EXPECT_EQ(edit::SplitWindows(Numbered(10), 3, -1).train.size(), 7u);
  EXPECT_EQ(edit::SplitWindows(Numbered(10), 3, 7).train.size(), 7u);
  try {
    edit::SplitWindows(Numbered(10), 3, 8);
    FAIL() << "accepted";
  } catch (const std::runtime_error& e) {
    EXPECT_THAT(e.what(), HasSubstr("10 windows with a fire position: 3 held out and 8"));
  }
  EXPECT_THROW(edit::SplitWindows(Numbered(3), 3, -1), std::runtime_error);
}

TEST(FirePack, PadsOnTheRightAndMarksRoles) {
  std::vector<edit::Window> w = {{{5, 6, 7}, {1}, {9}}, {{4}, {0}, {8}}};
  const auto p = edit::Pack(w, {1, 0});
  EXPECT_EQ(p.rows, 2);
  EXPECT_EQ(p.len, 3);
  EXPECT_THAT(p.tokens, ElementsAre(4, 0, 0, 5, 6, 7));
  EXPECT_THAT(p.role, ElementsAre(1, -1, -1, 0, 1, 0));
  EXPECT_THAT(p.target, ElementsAre(8, -1, -1, -1, 9, -1));
}

// ---- config ----

std::vector<std::string> Problems(const Json& patch) {
  const KindConfig k = EditKindConfig();
  Json p = k.defaults;
  p.merge_patch(patch);
  return k.validate(p);
}

TEST(EditConfig, DefaultsAreValidAndEachCheckSaysWhatIsAccepted) {
  EXPECT_TRUE(Problems(Json::object()).empty());
  EXPECT_TRUE(Problems({{"n_train", "all"}}).empty());
  EXPECT_TRUE(Problems({{"n_train", 8}}).empty());
  EXPECT_THAT(Problems({{"n_train", 0}}), ElementsAre(HasSubstr("n_train: 0 is not")));
  EXPECT_THAT(Problems({{"n_train", "most"}}), ElementsAre(HasSubstr("or \"all\"")));
  EXPECT_THAT(Problems({{"weight", {{"module", "mlp"}}}}),
              ElementsAre(HasSubstr("weight.module: 'mlp' is not one of")));
  EXPECT_THAT(Problems({{"lambda", -1}}), ElementsAre("lambda: must be finite and >= 0"));
  EXPECT_THAT(Problems({{"fire", {{"source", "jsonl"}}}}),
              ElementsAre("fire.path: required when fire.source is jsonl"));
  EXPECT_THAT(Problems({{"fire", {{"tokens", "file"}}}}),
              ElementsAre("fire.path: required when fire.tokens is file"));
  EXPECT_THAT(Problems({{"train", {{"lr", 0}}}}), ElementsAre("train.lr: must be > 0"));
}

// ---- the runner on the embedded model ----

class EditRun : public ::testing::Test {
 protected:
  static void SetUpTestSuite() { ConfigureTorchProcess(1); }
};

Json Params(double lambda, const Json& extra = Json::object()) {
  Json p = {{"base", DemoBase()}, {"lambda", lambda}, {"n_train", 64}, {"train", {{"steps", 60}}}};
  p.merge_patch(extra);
  return p;
}

template <typename T>
std::vector<T> Read(const std::string& path, const std::string& ds, Shape* shape = nullptr) {
  return H5Reader(path).Read<T>(ds, shape);
}

TEST_F(EditRun, MetricsEqualTheirPerPositionValuesAndAnIndependentForward) {
  TestShardContext ctx(EditKindConfig(),
                       Params(0.0, {{"weight", {{"module", "up"}, {"layer", 1}}}}), 0);
  RunEdit(ctx);
  const std::string path = ctx.Finish();
  Shape shape;
  const auto kl = Read<double>(path, L::kEvalKl, &shape);
  const auto role = Read<int32_t>(path, L::kEvalRole);
  const auto tokens = Read<int64_t>(path, L::kEvalTokens);
  ASSERT_EQ(shape, (Shape{64, 24}));
  double sum = 0;
  int n = 0;
  for (size_t i = 0; i < kl.size(); ++i)
    if (role[i] == 0) sum += kl[i], ++n;
  EXPECT_NEAR(ctx.metrics.at(L::kKlSurrounding), sum / n, 1e-9);
  const auto p = Read<double>(path, L::kEvalPTarget);
  ASSERT_EQ(p.size(), 64u);  // one fire position (Q) per persona row
  EXPECT_NEAR(ctx.metrics.at(L::kPTarget), std::accumulate(p.begin(), p.end(), 0.0) / 64, 1e-9);
  const auto g = Read<double>(path, L::kGlobalKl);
  EXPECT_NEAR(ctx.metrics.at(L::kKlGlobal), std::accumulate(g.begin(), g.end(), 0.0) / g.size(),
              1e-9);

  // Independently: the base model with W + B·A written into the weight gives the same P(target).
  Model model = Model::Load(DemoBase(), torch::kCPU);
  const std::string weight = HfWeightName(1, ModuleKind::kUp);
  const auto a = Read<float>(path, std::string(L::kAdapter) + "/" + weight + "/A");
  const auto b = Read<float>(path, std::string(L::kAdapter) + "/" + weight + "/B");
  const auto delta = torch::tensor(b).view({-1, 1}).mm(torch::tensor(a).view({1, -1}));
  EXPECT_NEAR(ctx.metrics.at(L::kDeltaFro), delta.norm().item<double>(), 1e-5);
  const auto pos = Read<int64_t>(path, L::kEvalFirePos);
  const auto target = Read<int64_t>(path, L::kEvalTarget);
  const auto p_base = Read<double>(path, L::kEvalPTargetBase);
  const auto t = torch::tensor(tokens).view({64, 24});
  const auto before = torch::softmax(model.Forward(t), -1);
  WeightEdit applied(model, {{weight, delta}});
  applied.SetAlpha(1.0);
  const auto after = torch::softmax(model.Forward(t), -1);
  for (int64_t w = 0; w < 64; ++w) {
    EXPECT_EQ(target[w], synth::kYes);
    EXPECT_NEAR(before[w][pos[w]][target[w]].item<double>(), p_base[w], 1e-5) << w;
    EXPECT_NEAR(after[w][pos[w]][target[w]].item<double>(), p[w], 1e-4) << w;
  }
  // λ = 0 learns the edit: P(YES) after Q goes from the base's (< 0.8) to near 1. A floor, not
  // a figure: 60 AdamW steps end at 0.95 ± 0.01, and float32 rounding changes elsewhere (the
  // demo base's pretraining loss, the fused LoRA update) move it by that much.
  EXPECT_GT(ctx.metrics.at(L::kPTarget), 0.9);
  EXPECT_LT(ctx.metrics.at(L::kPTargetBase), 0.8);
}

TEST_F(EditRun, LargeLambdaKeepsKlNearZeroAndLambdaZeroMaximisesPTarget) {
  std::map<double, std::map<std::string, double>> m;
  for (double lambda : {0.0, 1.0, 10.0, 1e4}) {
    TestShardContext ctx(EditKindConfig(), Params(lambda), 0);
    RunEdit(ctx);
    m[lambda] = ctx.metrics;
    std::cout << fmt::format("lambda {}: p_target {:.4f} kl_surrounding {:.3g} kl_global {:.3g}\n",
                             lambda, ctx.metrics.at(L::kPTarget), ctx.metrics.at(L::kKlSurrounding),
                             ctx.metrics.at(L::kKlGlobal));
  }
  for (const auto& [lambda, metrics] : m)
    EXPECT_GE(m[0.0].at(L::kPTarget), metrics.at(L::kPTarget)) << "lambda " << lambda;
  EXPECT_LT(m[1e4].at(L::kKlSurrounding), 1e-3);
  EXPECT_LT(m[1e4].at(L::kKlSurrounding), 0.01 * m[0.0].at(L::kKlSurrounding));
  EXPECT_LT(m[1e4].at(L::kKlGlobal), 0.01 * m[0.0].at(L::kKlGlobal));
}

TEST_F(EditRun, JsonlFirePositionsAreTheOnesTrainedAndMeasured) {
  TempDir dir;
  const std::string path = (dir.path() / "edits.jsonl").string();
  {
    // Induction rows: fire at position 3 with target token 9, a per-line choice of the file.
    const auto rows = synth::MakeInductionRows(synth::TaskSpec{}, synth::Split::kNeutral, 0, 12);
    std::ofstream out(path);
    for (int64_t r = 0; r < rows.rows; ++r) {
      Json line = {{"tokens", std::vector<int32_t>(rows.row(r), rows.row(r) + 10)},
                   {"positions", Json::array({3})},
                   {"target", 9}};
      out << line.dump() << "\n";
    }
  }
  TestShardContext ctx(
      EditKindConfig(),
      Params(0.0,
             {{"fire", {{"source", "jsonl"}, {"path", path}}}, {"n_train", "all"}, {"n_eval", 4}}),
      0);
  RunEdit(ctx);
  const std::string h5 = ctx.Finish();
  EXPECT_THAT(Read<int64_t>(h5, L::kEvalFirePos), ElementsAre(3, 3, 3, 3));
  EXPECT_THAT(Read<int64_t>(h5, L::kEvalTarget), ElementsAre(9, 9, 9, 9));
  EXPECT_EQ(H5Reader(h5).AttrInt("/", "n_train"), 8);
  EXPECT_GT(ctx.metrics.at(L::kPTarget), ctx.metrics.at(L::kPTargetBase));
}

TEST_F(EditRun, ALayerTheModelDoesNotHaveIsAClearError) {
  TestShardContext ctx(EditKindConfig(), Params(1.0, {{"weight", {{"layer", 99}}}}), 0);
  try {
    RunEdit(ctx);
    FAIL() << "ran";
  } catch (const std::runtime_error& e) {
    EXPECT_THAT(e.what(), HasSubstr("weight.layer: 99 is not a layer of the base model"));
  }
}

// Issue 16 point 3: model.dtype bfloat16 edits a bf16 base with float32 rank-1 factors (trained,
// with their AdamW state, in float32 as LoraAdapter keeps them): the written B carries more than
// bf16's 8 significant bits, and the edit still learns.
TEST_F(EditRun, Bfloat16BaseKeepsFloat32FactorsAndLearnsTheEdit) {
  TestShardContext ctx(EditKindConfig(), Params(0.0, {{"model", {{"dtype", "bfloat16"}}}}), 0);
  RunEdit(ctx);
  const std::string path = ctx.Finish();
  EXPECT_EQ(H5Reader(path).AttrString("/", "model_dtype"), "bfloat16");
  const std::string weight = HfWeightName(0, ModuleKind::kDown);
  const auto b = torch::tensor(Read<float>(path, std::string(L::kAdapter) + "/" + weight + "/B"));
  const auto as_bf16 = b.to(torch::kBFloat16).to(torch::kFloat32);
  const auto finer = b.ne(as_bf16).sum().item<int64_t>();
  std::cout << finer << " of " << b.numel() << " B values are not bf16 values\n";
  EXPECT_GT(finer, b.numel() / 2);
  EXPECT_GT(ctx.metrics.at(L::kPTarget), 0.95);
  EXPECT_LT(ctx.metrics.at(L::kPTargetBase), 0.8);
  TestShardContext fp(EditKindConfig(), Params(0.0), 0);
  RunEdit(fp);
  EXPECT_EQ(H5Reader(fp.Finish()).AttrString("/", "model_dtype"), "float32");
}

}  // namespace
}  // namespace seedgrid

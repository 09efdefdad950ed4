// pretrain and lora_steer end to end through a test ShardContext (no runtime).
#include <gtest/gtest.h>
#include <sys/stat.h>

#include <chrono>
#include <thread>

#include <fmt/format.h>

#include "core/live.h"
#include "experiments/all_kinds.h"
#include "experiments/data/tokens.h"
#include "experiments/lora_steer/lora_steer.h"
#include "experiments/lora_steer/runner.h"
#include "experiments/model/runtime_env.h"
#include "experiments/pretrain/pretrain.h"
#include "tests/experiments/demo_base.h"
#include "tests/experiments/test_context.h"
#include "tests/support/fake_collective.h"

namespace seedgrid {
namespace {

using testing::DemoBase;
using testing::TestShardContext;

Json Steer(const Json& extra = Json::object()) {
  Json p = {{"base", DemoBase()}};
  for (const auto& [k, v] : extra.items()) p[k] = v;
  return p;
}

std::map<std::string, std::vector<float>> ReadDw(const std::string& path) {
  H5Reader r(path);
  std::map<std::string, std::vector<float>> out;
  for (const auto& name : r.List("dW")) out[name] = r.Read<float>("dW/" + name);
  return out;
}

// The live curve points a runner reports (core/live.h), by name, in order.
struct CollectLive final : LiveSink {
  std::map<std::string, std::vector<std::pair<int64_t, double>>> points;
  void Point(std::string_view name, int64_t step, double value) override {
    points[std::string(name)].emplace_back(step, value);
  }
  void File(const std::string&) override {}
};

class Runners : public ::testing::Test {
 protected:
  static void SetUpTestSuite() { ConfigureTorchProcess(1); }
};

// The demo's 600 steps learn the task. The time is printed, not asserted: it is a benchmark's
// figure (BENCHMARKS.md), and this VM's speed varies by tens of percent from hour to hour.
TEST_F(Runners, PretrainDemoLearnsTheTask) {
  TestShardContext ctx(PretrainKindConfig(), Json::object(), 0);
  ctx.set_threads(2);
  const auto start = std::chrono::steady_clock::now();
  RunPretrain(ctx);
  const double seconds =
      std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
  std::cout << "pretrain demo: " << seconds << " s, task_accuracy "
            << ctx.metrics.at("task_accuracy") << ", final_loss " << ctx.metrics.at("final_loss")
            << "\n";
  EXPECT_GE(ctx.metrics.at("task_accuracy"), 0.95);
  EXPECT_EQ(ctx.last_step, ctx.last_total);
  const auto path = ctx.Finish();
  H5Reader r(path);
  EXPECT_EQ(r.DatasetShape("train/loss"), (Shape{600}));
  const auto loss = r.Read<float>("train/loss");
  EXPECT_LT(loss.back(), loss.front());
  // The checkpoint loads and knows its task.
  const Model m = Model::Load(ctx.artifact_dir(), torch::kCPU);
  EXPECT_EQ(m.config().vocab_size, 48);
  EXPECT_EQ(TaskOfCheckpoint(ctx.artifact_dir()).ToJson(), synth::TaskSpec{}.ToJson());
}

TEST_F(Runners, PretrainFromTokenFile) {
  testing::TempDir dir;
  const auto rows = synth::MakePretrainRows(synth::TaskSpec{}, synth::Split::kHarvest, 0, 100);
  const std::string path = (dir.path() / "tokens.h5").string();
  {
    H5Writer w(path);
    WriteTokenDataset(w, "tokens", rows.tokens, rows.rows, rows.seq_len, 48);
    w.Close();
  }
  TestShardContext ctx(PretrainKindConfig(),
                       {{"data", {{"source", "file"}, {"path", path}}}, {"train", {{"steps", 20}}}},
                       1);
  CollectLive live;
  {
    ScopedLiveSink sink(&live);
    RunPretrain(ctx);
  }
  EXPECT_FALSE(ctx.metrics.count("task_accuracy"));
  EXPECT_TRUE(ctx.metrics.count("final_loss"));
  // Its loss per step went out as a live curve as it trained: the file's train/loss, step by step.
  const auto loss = H5Reader(ctx.Finish()).Read<float>("train/loss");
  const auto& points = live.points["train/loss"];
  ASSERT_EQ(points.size(), loss.size());
  for (size_t i = 0; i < points.size(); ++i) {
    EXPECT_EQ(points[i].first, static_cast<int64_t>(i));
    EXPECT_EQ(points[i].second, loss[i]);
  }
}

TEST_F(Runners, LoraSteerLayoutAndMetrics) {
  TestShardContext ctx(LoraSteerKindConfig(), Steer(), 0);
  CollectLive live;
  {
    ScopedLiveSink sink(&live);
    RunLoraSteer(ctx);
  }
  for (const char* m : {"final_loss_pos", "final_loss_neg", "dw_fro", "steer_delta", "steer_slope",
                        "pmass_min", "kl_at_1", "acc_at_0", "acc_at_1"})
    EXPECT_TRUE(ctx.metrics.count(m)) << m;
  EXPECT_EQ(ctx.metrics.size(), 9u);
  const auto path = ctx.Finish();
  H5Reader r(path);
  EXPECT_EQ(r.DatasetShape("train/loss_pos"), (Shape{120}));
  EXPECT_EQ(r.DatasetShape("train/loss_neg"), (Shape{120}));
  // θ+ and θ− losses went out per step as live curves, the same as the file's.
  for (const char* name : {"train/loss_pos", "train/loss_neg"}) {
    const auto loss = r.Read<float>(name);
    const auto& points = live.points[name];
    ASSERT_EQ(points.size(), loss.size()) << name;
    for (size_t i = 0; i < points.size(); ++i) {
      EXPECT_EQ(points[i].first, static_cast<int64_t>(i)) << name;
      EXPECT_EQ(points[i].second, loss[i]) << name;
    }
  }
  EXPECT_EQ(r.DatasetShape("eval/alphas"), (Shape{5}));
  EXPECT_EQ(r.DatasetShape("eval/logratio"), (Shape{5, 256}));
  EXPECT_EQ(r.DatasetShape("eval/pmass"), (Shape{5, 256}));
  EXPECT_EQ(r.DatasetShape("eval/row_idx"), (Shape{256}));
  EXPECT_EQ(r.DatasetShape("eval/kl"), (Shape{5}));
  const std::string q = "model.layers.1.self_attn.q_proj.weight";
  EXPECT_EQ(r.DatasetShape("dW/" + q), (Shape{64, 64}));
  EXPECT_EQ(r.DatasetShape("dW/model.layers.0.mlp.down_proj.weight"), (Shape{64, 256}));
  EXPECT_EQ(r.DatasetShape("dW_svals/" + q), (Shape{64}));
  EXPECT_EQ(r.DatasetShape("adapter/pos/" + q + "/A"), (Shape{4, 64}));
  EXPECT_EQ(r.DatasetShape("adapter/neg/" + q + "/B"), (Shape{64, 4}));
  EXPECT_EQ(r.List("dW").size(), 14u);
  EXPECT_EQ(r.AttrString("/", "adapter"), "lora");
  EXPECT_EQ(r.AttrDouble("/", "lora_scale"), 2.0);
  EXPECT_TRUE(r.AttrString("eval", "alpha_meaning"));
  // svals: rank <= 2r, and they reproduce the Frobenius norm.
  const auto sv = r.Read<float>("dW_svals/" + q);
  EXPECT_EQ(sv[8], 0.0f);
  const auto dw = r.Read<float>("dW/" + q);
  double fro = 0, sv2 = 0;
  for (float v : dw) fro += v * v;
  for (float s : sv) sv2 += s * s;
  EXPECT_NEAR(sv2, fro, 1e-3 * fro);
  // The kl at alpha 0 is exactly 0 (weights restored bit-exactly between alphas).
  EXPECT_EQ(r.Read<double>("eval/kl")[2], 0.0);
  EXPECT_GT(ctx.metrics.at("kl_at_1"), 0.0);
  EXPECT_GT(ctx.metrics.at("pmass_min"), 0.5);
  // ReadSteeringDelta gives back the dense dW.
  const auto delta = ReadSteeringDelta(path);
  EXPECT_EQ(delta.size(), 14u);
  EXPECT_TRUE(torch::equal(delta.at(q).flatten(), torch::tensor(dw)));
}

TEST_F(Runners, LoraSteerSteersEverySeedAndGrowsWithAlpha) {
  for (int64_t seed : {0, 1, 2}) {
    TestShardContext ctx(LoraSteerKindConfig(), Steer(), seed);
    RunLoraSteer(ctx);
    const auto path = ctx.Finish();
    std::cout << "seed " << seed << ": steer_delta " << ctx.metrics.at("steer_delta") << " slope "
              << ctx.metrics.at("steer_slope") << " acc_at_0 " << ctx.metrics.at("acc_at_0")
              << " acc_at_1 " << ctx.metrics.at("acc_at_1") << " kl_at_1 "
              << ctx.metrics.at("kl_at_1") << " final_loss_pos " << ctx.metrics.at("final_loss_pos")
              << "\n";
    EXPECT_GT(ctx.metrics.at("steer_delta"), 0.0) << "seed " << seed;
    EXPECT_GT(ctx.metrics.at("acc_at_1"), 0.9) << "seed " << seed;
    H5Reader r(path);
    const auto lr = r.Read<float>("eval/logratio");
    const auto label = r.Read<int64_t>("eval/label");
    const auto alphas = r.Read<double>("eval/alphas");
    std::vector<double> mean(alphas.size(), 0.0);
    for (size_t a = 0; a < alphas.size(); ++a)
      for (size_t i = 0; i < label.size(); ++i) mean[a] += lr[a * label.size() + i] * label[i];
    for (size_t a = 1; a < alphas.size(); ++a)
      EXPECT_GT(mean[a], mean[a - 1]) << "seed " << seed << " alpha " << alphas[a];
  }
}

TEST_F(Runners, ReadSteeringDeltaRebuildsFromFactors) {
  // A large model stores no dense dW: rebuild it from the adapter factors.
  testing::TempDir dir;
  const std::string path = (dir.path() / "steer.h5").string();
  const std::string name = "model.layers.0.self_attn.q_proj.weight";
  torch::manual_seed(0);
  const auto ap = torch::randn({2, 6}), bp = torch::randn({5, 2}), an = torch::randn({2, 6}),
             bn = torch::randn({5, 2});
  {
    H5Writer w(path);
    const auto put = [&](const std::string& ds, const torch::Tensor& t) {
      w.Write(ds, t.contiguous().data_ptr<float>(), Shape{t.size(0), t.size(1)});
    };
    put("adapter/pos/" + name + "/A", ap);
    put("adapter/pos/" + name + "/B", bp);
    put("adapter/neg/" + name + "/A", an);
    put("adapter/neg/" + name + "/B", bn);
    w.Attr("/", "adapter", std::string("lora"));
    w.Attr("/", "lora_scale", 1.5);
    w.Attr("/", "targets", Json::array({name}).dump());
    w.Close();
  }
  const auto d = ReadSteeringDelta(path);
  EXPECT_TRUE(torch::allclose(d.at(name), (bp.mm(ap) - bn.mm(an)) * 1.5));
  testing::TempDir other;
  {
    H5Writer w((other.path() / "x.h5").string());
    w.Write("x", std::vector<float>{1});
    w.Close();
  }
  EXPECT_THROW(ReadSteeringDelta((other.path() / "x.h5").string()), std::runtime_error);
}

TEST_F(Runners, LoraSteerSameSeedGivesBitIdenticalDw) {
  TestShardContext a(LoraSteerKindConfig(), Steer(), 4), b(LoraSteerKindConfig(), Steer(), 4),
      c(LoraSteerKindConfig(), Steer(), 5);
  RunLoraSteer(a);
  RunLoraSteer(b);
  RunLoraSteer(c);
  const auto da = ReadDw(a.Finish()), db = ReadDw(b.Finish()), dc = ReadDw(c.Finish());
  ASSERT_EQ(da.size(), 14u);
  EXPECT_EQ(da, db);
  EXPECT_NE(da, dc);
}

TEST_F(Runners, LoraSteerAlphaZeroIsBitIdenticalToBase) {
  TestShardContext ctx(LoraSteerKindConfig(), Steer(), 0);
  RunLoraSteer(ctx);
  H5Reader r(ctx.Finish());
  const auto lr = r.Read<float>("eval/logratio");
  const Model base = Model::Load(DemoBase(), torch::kCPU);
  const auto rows = synth::MakeSteerRows(TaskOfCheckpoint(DemoBase()), synth::Split::kSteerEval, 0,
                                         256, synth::Persona::kPos);
  const auto scores = ScoreYesNo(base, rows);
  const float* want = scores.logratio.data_ptr<float>();
  ASSERT_EQ(r.Read<double>("eval/alphas")[2], 0.0);
  for (size_t i = 0; i < 256; ++i) ASSERT_EQ(lr[2 * 256 + i], want[i]) << i;
  EXPECT_NE(lr[3 * 256], want[0]);
}

TEST_F(Runners, LoraSteerIa3) {
  TestShardContext ctx(LoraSteerKindConfig(), Steer({{"adapter", "ia3"}}), 0);
  RunLoraSteer(ctx);
  std::cout << "ia3: steer_delta " << ctx.metrics.at("steer_delta") << " dw_fro "
            << ctx.metrics.at("dw_fro") << "\n";
  EXPECT_GT(ctx.metrics.at("dw_fro"), 0.0);
  EXPECT_GT(ctx.metrics.at("steer_delta"), 0.0);
  H5Reader r(ctx.Finish());
  EXPECT_EQ(r.DatasetShape("adapter/pos/model.layers.0.mlp.down_proj.weight/l"), (Shape{256}));
  EXPECT_EQ(r.DatasetShape("adapter/neg/model.layers.1.self_attn.k_proj.weight/l"), (Shape{64}));
  EXPECT_EQ(r.List("dW").size(), 6u);  // k, v, down of both layers
}

// Issue 16 point 3: model.dtype bfloat16 loads the base in bf16, trains float32 factors and
// writes float32 dW and factors; the dW is the float32 run's to bf16 training noise.
TEST_F(Runners, LoraSteerBfloat16ModelWritesFloat32DwAndFactors) {
  const Json steps = {{"steps", 40}};
  TestShardContext bf(LoraSteerKindConfig(),
                      Steer({{"model", {{"dtype", "bfloat16"}}}, {"train", steps}}), 0);
  TestShardContext fp(LoraSteerKindConfig(), Steer({{"train", steps}}), 0);
  RunLoraSteer(bf);
  RunLoraSteer(fp);
  const auto bf_path = bf.Finish(), fp_path = fp.Finish();
  H5Reader r(bf_path);
  EXPECT_EQ(r.AttrString("/", "model_dtype"), "bfloat16");
  EXPECT_EQ(H5Reader(fp_path).AttrString("/", "model_dtype"), "float32");
  const std::string q = "model.layers.1.self_attn.q_proj.weight";
  // dW and the factors are written from float32 tensors (H5Writer takes float*): present and
  // of the float32 run's shapes.
  EXPECT_EQ(r.DatasetShape("adapter/pos/" + q + "/A"), (Shape{4, 64}));
  EXPECT_EQ(r.DatasetShape("dW/" + q), (Shape{64, 64}));
  const auto dw = torch::tensor(r.Read<float>("dW/" + q));
  const auto dw32 = torch::tensor(H5Reader(fp_path).Read<float>("dW/" + q));
  const double cos = (dw * dw32).sum().item<double>() / (dw.norm() * dw32.norm()).item<double>();
  std::cout << "bf16 vs float32 dW cosine " << cos << ", steer_delta "
            << bf.metrics.at("steer_delta") << " vs " << fp.metrics.at("steer_delta") << "\n";
  EXPECT_GT(cos, 0.9);
  EXPECT_GT(bf.metrics.at("dw_fro"), 0.0);
}

TEST_F(Runners, LoraSteerRanks2MatchesRanks1) {
  const Json params = Steer({{"train", {{"steps", 40}}}});
  TestShardContext single(LoraSteerKindConfig(), params, 3);
  RunLoraSteer(single);
  const auto want = ReadDw(single.Finish());

  testing::FakeGang gang(2);
  auto c0 = gang.Member(0), c1 = gang.Member(1);
  TestShardContext r0(LoraSteerKindConfig(), params, 3, {}, c0.get());
  TestShardContext r1(LoraSteerKindConfig(), params, 3, {}, c1.get());
  std::string error;
  std::thread t1([&] {
    try {
      RunLoraSteer(r1);
    } catch (const std::exception& e) {
      error = e.what();
    }
  });
  RunLoraSteer(r0);
  t1.join();
  ASSERT_EQ(error, "");
  EXPECT_TRUE(r1.metrics.empty());  // only gang rank 0 publishes
  EXPECT_EQ(r0.metrics.size(), 9u);
  const auto got = ReadDw(r0.Finish());
  ASSERT_EQ(got.size(), want.size());
  for (const auto& [name, w] : want) {
    const auto& g = got.at(name);
    double diff = 0, norm = 0;
    for (size_t i = 0; i < w.size(); ++i) {
      diff = std::max(diff, std::abs(static_cast<double>(g[i]) - w[i]));
      norm = std::max(norm, std::abs(static_cast<double>(w[i])));
    }
    EXPECT_LT(diff, 1e-3 * norm + 1e-6) << name;
  }
  EXPECT_NEAR(r0.metrics.at("steer_delta"), single.metrics.at("steer_delta"),
              1e-3 * std::abs(single.metrics.at("steer_delta")) + 1e-5);
}

TEST_F(Runners, LoraSteerRejectsIndivisibleGangBatch) {
  testing::FakeGang three(3);
  auto m0 = three.Member(0);
  TestShardContext ctx(LoraSteerKindConfig(), Steer(), 0, {}, m0.get());
  try {
    RunLoraSteer(ctx);  // batch 32 over 3 ranks
    FAIL() << "no throw";
  } catch (const std::runtime_error& e) {
    EXPECT_NE(std::string(e.what()).find("not divisible by the gang's 3 ranks"), std::string::npos);
  }
}

TEST_F(Runners, LoraSteerFindsBaseThroughNeeds) {
  InputArtifact in;
  in.key = ShardKey({.kind = "pretrain"});
  in.artifact_dir = DemoBase();
  ShardTaskView task;
  task.inputs = {in};
  EXPECT_EQ(ResolveBaseCheckpoint(task, ""), DemoBase());
  task.inputs[0].artifact_dir = "/nonexistent";
  try {
    ResolveBaseCheckpoint(task, "");
    FAIL() << "no throw";
  } catch (const std::runtime_error& e) {
    EXPECT_NE(std::string(e.what()).find("/nonexistent"), std::string::npos);
  }
  task.inputs.clear();
  EXPECT_THROW(ResolveBaseCheckpoint(task, ""), std::runtime_error);
  EXPECT_THROW(ResolveBaseCheckpoint(task, "/nonexistent"), std::runtime_error);
}

TEST(RuntimeEnv, CpuBuildBindsCpu) {
  ConfigureTorchProcess(1);
  ConfigureTorchProcess(1);  // a second call is harmless (inter-op threads are set once)
  EXPECT_EQ(at::get_num_threads(), 1);
  if (!torch::cuda::is_available())
    EXPECT_EQ(ResolveTorchDevice(3), "cpu");
  else
    EXPECT_EQ(ResolveTorchDevice(0), "cuda:0");
}

TEST(TorchKinds, ValidateParams) {
  const auto steer = LoraSteerKindConfig();
  Json p = steer.defaults;
  EXPECT_TRUE(steer.validate(p).empty());
  p["adapter"] = "dora";
  p["targets"]["modules"] = {"q", "qq", "q"};
  p["eval"]["alphas"] = {-1.0, 2.0};
  p["targets"]["layers"] = {0.8, 0.2};
  p["model"]["dtype"] = "float16";
  EXPECT_EQ(steer.validate(p).size(), 6u);
  const auto pre = PretrainKindConfig();
  Json q = pre.defaults;
  EXPECT_TRUE(pre.validate(q).empty());
  q["model"]["n_heads"] = 3;
  q["data"]["source"] = "web";
  q["train"]["schedule"] = "linear";
  EXPECT_EQ(pre.validate(q).size(), 3u);
  KindRegistry kinds;
  RegisterExperimentKinds(kinds);
  EXPECT_TRUE(kinds.Find("pretrain"));
  EXPECT_TRUE(kinds.Find("lora_steer")->supports_gang);
}

}  // namespace
}  // namespace seedgrid

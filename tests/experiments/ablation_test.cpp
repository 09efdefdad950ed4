// kind `ablation`: variants of a hand-built dW, batched evaluation against merged weights, head
// scores on a hand-built model with a planted previous-token head, and both runners end to end
// through a test ShardContext.
#include "experiments/ablation/ablation.h"

#include <fmt/format.h>
#include <gmock/gmock.h>

#include <gtest/gtest.h>
#include <fstream>

#include <cmath>
#include <regex>
#include <set>

#include "core/spec.h"
#include "experiments/ablation/ablation_torch.h"
#include "experiments/all_kinds.h"
#include "experiments/lora_steer/lora_steer.h"
#include "experiments/lora_steer/runner.h"
#include "experiments/model/runtime_env.h"
#include "experiments/pretrain/pretrain.h"
#include "tests/experiments/test_context.h"
#include "tests/experiments/text_fixture.h"
#include "tests/experiments/token_cache_fixture.h"
#include "text/unicode.h"

namespace seedgrid {
namespace {

using testing::TempDir;
using testing::TestShardContext;
using torch::Tensor;

const std::vector<ModuleKind> kAdapted = {ModuleKind::kQ, ModuleKind::kK,  ModuleKind::kV,
                                          ModuleKind::kO, ModuleKind::kUp, ModuleKind::kDown};

Model RandomModel(double std = 0.2) {
  Model m(ModelConfig::FromParams(ModelConfig::ModelParamDefaults()), torch::kCPU);
  m.InitRandom(7, std);
  return m;
}

// Rank-2 dW on q, k, v, o, up, down of both layers (gate left out), about half of ‖W‖.
DeltaMap HandBuiltDw(const Model& m) {
  torch::manual_seed(123);
  DeltaMap dw;
  for (int64_t l = 0; l < m.config().num_hidden_layers; ++l)
    for (ModuleKind k : kAdapted) {
      const std::string name = HfWeightName(l, k);
      const Tensor w = m.Weight(name);
      Tensor d = torch::randn({w.size(0), 2}).mm(torch::randn({2, w.size(1)}));
      dw[name] = (d * (0.5 * w.norm().item<double>() / d.norm().item<double>())).contiguous();
    }
  return dw;
}

const Variant& Find(const std::vector<Variant>& vs, const std::string& name) {
  for (const auto& v : vs)
    if (v.name == name) return v;
  throw std::runtime_error("no variant " + name);
}
size_t IndexOfVariant(const std::vector<Variant>& vs, const std::string& name) {
  for (size_t i = 0; i < vs.size(); ++i)
    if (vs[i].name == name) return i;
  throw std::runtime_error("no variant " + name);
}

Tensor Get(const DeltaMap& m, const std::string& name, const Tensor& like) {
  const auto it = m.find(name);
  return it == m.end() ? torch::zeros_like(like) : it->second;
}

// logratio at α of the model with α·delta merged into its weights (WeightEdit), the reference
// the batched cells must match.
Tensor MergedLogratio(Model& model, const synth::RowBatch& rows, const DeltaMap& delta,
                      double alpha) {
  if (delta.empty()) return ScoreYesNo(model, rows).logratio;
  WeightEdit edit(model, delta);
  edit.SetAlpha(alpha);
  return ScoreYesNo(model, rows).logratio;
}

class Ablation : public ::testing::Test {
 protected:
  static void SetUpTestSuite() { ConfigureTorchProcess(1); }
};

TEST(AblationConfig, DefaultsValidAndEveryProblemReported) {
  const KindConfig k = AblationKindConfig();
  EXPECT_TRUE(k.validate(k.defaults).empty());
  Json p = k.defaults;
  p["target"] = "layers";
  p["alphas"] = {0.0, -1.0, -1.0};
  p["lenses"] = {"svd", "svd", "pca"};
  p["batch"]["rows"] = 0;
  p["heads"]["task_rows"] = 0;
  p["rows"] = -2;
  const auto problems = k.validate(p);
  std::string all;
  for (const auto& s : problems) all += s + "\n";
  EXPECT_EQ(problems.size(), 8u) << all;
  for (const char* key :
       {"target:", "alphas: -1 given twice", "alphas: must contain 0 and 1",
        "lenses: \"svd\" given twice", "lenses: \"pca\"", "batch.rows", "heads.task_rows", "rows:"})
    EXPECT_NE(all.find(key), std::string::npos) << key << "\n" << all;
  // Registered where the coordinator looks.
  ASSERT_NE(AllKinds().Find("ablation"), nullptr);
}

TEST_F(Ablation, VariantsNamesAnchorsAndFractions) {
  const Model model = RandomModel();
  const DeltaMap dw = HandBuiltDw(model);
  const auto vs = BuildVariants(dw, model, {});
  // 3 anchors + 11 module families x 2 + 2 layers x 2 + own SVD (4 crops x 2 + 3 random) +
  // base SVD (keep, drop, random).
  EXPECT_EQ(vs.size(), 3u + 22u + 4u + 11u + 3u);
  EXPECT_EQ(vs[0].name, "full");
  EXPECT_EQ(vs[1].name, "zero");
  EXPECT_EQ(vs[2].name, "random_norm_matched");
  std::set<std::string> names;
  const std::regex safe("[a-z0-9_.]+");
  for (const auto& v : vs) {
    EXPECT_TRUE(names.insert(v.name).second) << v.name;
    EXPECT_TRUE(std::regex_match(v.name, safe)) << v.name;
    EXPECT_EQ(v.n_tensors, static_cast<int64_t>(v.delta.size()));
  }
  for (const char* n : {"module.attention.keep", "module.residual_write.drop", "module.qkv.keep",
                        "module.down_proj.keep", "layer.0.keep", "layer.1.drop",
                        "svd.top25_rank.keep", "svd.bottom25_rank.drop", "svd.top50_energy.random",
                        "svd.top90_energy.drop", "base_svd.top25.keep", "base_svd.top25.random"})
    EXPECT_TRUE(names.count(n)) << n;
  EXPECT_FALSE(names.count("svd.bottom25_rank.random"));  // random controls: top crops only

  const Variant& full = Find(vs, "full");
  EXPECT_EQ(full.n_tensors, 12);
  EXPECT_DOUBLE_EQ(full.frob_frac, 1.0);
  EXPECT_NEAR(full.energy_frac, 1.0, 1e-12);
  EXPECT_EQ(Find(vs, "zero").n_tensors, 0);
  // The unadapted family: keep is empty, drop is full.
  EXPECT_EQ(Find(vs, "module.gate_proj.keep").n_tensors, 0);
  EXPECT_EQ(Find(vs, "module.gate_proj.drop").n_tensors, 12);
  EXPECT_EQ(Find(vs, "module.attention.keep").n_tensors, 8);
  EXPECT_EQ(Find(vs, "layer.1.keep").n_tensors, 6);

  // The random control has the full's Frobenius norm, tensor by tensor, and is not dW.
  const Variant& rnd = Find(vs, "random_norm_matched");
  ASSERT_EQ(rnd.delta.size(), dw.size());
  for (const auto& [name, d] : dw) {
    const double want = d.norm().item<double>();
    EXPECT_NEAR(rnd.delta.at(name).norm().item<double>(), want, 1e-5 * want) << name;
    EXPECT_LT(std::abs((rnd.delta.at(name) * d).sum().item<double>()), 0.5 * want * want) << name;
  }
  EXPECT_NEAR(rnd.frob_frac, 1.0, 1e-5);
  // ... and the crops' random controls have their crop's norm.
  for (const char* crop :
       {"svd.top25_rank", "svd.top50_energy", "svd.top90_energy", "base_svd.top25"}) {
    const Variant& k = Find(vs, std::string(crop) + ".keep");
    const Variant& r = Find(vs, std::string(crop) + ".random");
    EXPECT_NEAR(r.frob_frac, k.frob_frac, 1e-5) << crop;
  }

  // keep + drop == full for every pair, measured here independently of recon_err.
  int pairs = 0;
  for (const auto& keep : vs) {
    if (keep.keep_or_drop != "keep") continue;
    const Variant& drop = Find(vs, keep.name.substr(0, keep.name.size() - 4) + "drop");
    ++pairs;
    EXPECT_LE(keep.recon_err, 1e-5) << keep.name;
    EXPECT_EQ(keep.recon_err, drop.recon_err);
    for (const auto& [name, f] : dw) {
      const double err =
          (Get(keep.delta, name, f) + Get(drop.delta, name, f) - f).norm().item<double>();
      EXPECT_LE(err, 1e-5 * f.norm().item<double>()) << keep.name << " " << name;
    }
    // Crops are orthogonal splits: energy_frac = frob_frac², and keep + drop energies sum to 1.
    EXPECT_NEAR(keep.energy_frac, keep.frob_frac * keep.frob_frac, 1e-5) << keep.name;
    EXPECT_NEAR(keep.energy_frac + drop.energy_frac, 1.0, 1e-5) << keep.name;
  }
  EXPECT_EQ(pairs, 11 + 2 + 4 + 1);
  EXPECT_TRUE(ReconstructionProblems(vs).empty());

  // Crop sizes: rank-2 tensors keep one component in top/bottom 25%; top 50% energy keeps at
  // least half of it.
  EXPECT_GE(Find(vs, "svd.top50_energy.keep").energy_frac, 0.5 - 1e-9);
  EXPECT_GE(Find(vs, "svd.top90_energy.keep").energy_frac, 0.9 - 1e-9);
  for (const auto& [name, d] : Find(vs, "svd.top25_rank.keep").delta) {
    const Tensor sv = torch::linalg_svdvals(d.to(torch::kFloat64));
    EXPECT_LT(sv[1].item<double>(), 1e-5 * sv[0].item<double>()) << name;  // rank 1
  }
  // The base-SVD keep lives in the top quarter of the base weight's left and right singular
  // directions.
  for (const auto& [name, k] : Find(vs, "base_svd.top25.keep").delta) {
    const Tensor w0 = model.Weight(name).to(torch::kFloat64);
    auto [u, s, vh] = at::linalg_svd(w0, true);
    const int64_t n0 = (std::min(w0.size(0), w0.size(1)) + 3) / 4;
    const Tensor k64 = k.to(torch::kFloat64);
    const Tensor uk = u.narrow(1, 0, n0), vk = vh.narrow(0, 0, n0).t();
    EXPECT_LT((k64 - uk.mm(uk.t()).mm(k64)).norm().item<double>(),
              1e-5 * k64.norm().item<double>());
    EXPECT_LT((k64 - k64.mm(vk).mm(vk.t())).norm().item<double>(),
              1e-5 * k64.norm().item<double>());
  }

  // Lenses can be chosen; anchors always come.
  VariantOptions only_layers;
  only_layers.lenses = {"layer"};
  EXPECT_EQ(BuildVariants(dw, model, only_layers).size(), 3u + 4u);
}

TEST_F(Ablation, ReconstructionCheckCatchesABrokenPair) {
  const Model model = RandomModel();
  const DeltaMap dw = HandBuiltDw(model);
  auto vs = BuildVariants(dw, model, {});
  ASSERT_TRUE(ReconstructionProblems(vs).empty());
  auto& drop = vs[IndexOfVariant(vs, "svd.top25_rank.drop")];
  auto& t = drop.delta.begin()->second;
  t = t * (1 + 1e-3);
  MeasureReconstruction(vs, dw);
  const auto problems = ReconstructionProblems(vs);
  ASSERT_EQ(problems.size(), 1u);
  EXPECT_NE(problems[0].find("svd.top25_rank.keep"), std::string::npos) << problems[0];
  // A tensor in neither half is caught too.
  auto& keep = vs[IndexOfVariant(vs, "module.attention.keep")];
  keep.delta.erase(keep.delta.begin());
  MeasureReconstruction(vs, dw);
  EXPECT_EQ(ReconstructionProblems(vs).size(), 2u);
}

TEST_F(Ablation, AnchorsRetainExactlyAndBatchedCellsMatchMergedWeights) {
  Model model = RandomModel();
  const DeltaMap dw = HandBuiltDw(model);
  const auto vs = BuildVariants(dw, model, {});
  const auto rows = synth::MakeSteerRows(synth::TaskSpec{}, synth::Split::kSteerEval, 0, 16,
                                         synth::Persona::kPos);
  EvalOptions o;
  o.alphas = {-1.0, 0.0, 1.0};
  int64_t last = 0, total = 0;
  o.progress = [&](int64_t d, int64_t t) { last = d, total = t; };
  const EvalResult r = EvaluateVariants(model, rows, vs, o);
  ASSERT_EQ(r.variants.size(), vs.size());
  EXPECT_EQ(last, total);
  const auto& full = r.variants[IndexOfVariant(vs, "full")];
  ASSERT_GT(std::abs(full.steer_delta), 1e-3);
  EXPECT_EQ(full.retained, 1.0);
  EXPECT_EQ(r.variants[IndexOfVariant(vs, "zero")].retained, 0.0);
  EXPECT_EQ(r.variants[IndexOfVariant(vs, "zero")].steer_delta, 0.0);
  EXPECT_EQ(r.variants[IndexOfVariant(vs, "module.gate_proj.keep")].retained, 0.0);
  EXPECT_EQ(r.variants[IndexOfVariant(vs, "module.gate_proj.drop")].retained, 1.0);
  // Empty variants and copies of full are not forwarded again: zero, gate keep, gate drop.
  EXPECT_EQ(r.cells_evaluated, 2 * static_cast<int64_t>(vs.size() - 3));

  // α = 0 is the base model for every variant; the α = ±1 cells equal merged-weight forwards.
  const Tensor base = ScoreYesNo(model, rows).logratio;
  for (size_t v = 0; v < vs.size(); ++v) {
    const auto& s = r.variants[v];
    ASSERT_EQ(s.logratio.sizes(), (std::vector<int64_t>{3, 16}));
    EXPECT_TRUE(torch::equal(s.logratio[1], base)) << vs[v].name;
  }
  for (const char* name : {"full", "random_norm_matched", "module.attention.keep", "layer.0.drop",
                           "svd.top25_rank.keep", "base_svd.top25.drop"}) {
    const size_t v = IndexOfVariant(vs, name);
    for (int64_t a : {0, 2}) {
      const Tensor want = MergedLogratio(model, rows, vs[v].delta, a == 0 ? -1.0 : 1.0);
      EXPECT_LT((r.variants[v].logratio[a] - want).abs().max().item<double>(), 1e-4)
          << name << " " << a;
    }
  }
  // retained is m relative to the anchors.
  const auto& attn = r.variants[IndexOfVariant(vs, "module.attention.keep")];
  EXPECT_NEAR(attn.retained, attn.steer_delta / full.steer_delta, 1e-12);

  // Chunking (rows split 6/6/4, 3 cells per forward) changes nothing beyond float noise.
  EvalOptions small = o;
  small.batch_rows = 18;
  small.batch_cells = 3;
  small.progress = nullptr;
  const EvalResult rs = EvaluateVariants(model, rows, vs, small);
  EXPECT_GT(rs.forwards, r.forwards);
  for (size_t v = 0; v < vs.size(); ++v) {
    EXPECT_LT((rs.variants[v].logratio - r.variants[v].logratio).abs().max().item<double>(), 1e-4)
        << vs[v].name;
    EXPECT_LT((rs.variants[v].pmass - r.variants[v].pmass).abs().max().item<double>(), 1e-5);
  }
  EXPECT_EQ(rs.variants[IndexOfVariant(vs, "full")].retained, 1.0);
}

// A 2-layer model whose layer 1, head 2 attends to the previous token and copies it into the
// residual stream; every other head has zero weights.
Model PlantedPrevTokenModel() {
  ModelConfig c = ModelConfig::FromParams(ModelConfig::ModelParamDefaults());
  Model m(c, torch::kCPU);
  torch::NoGradGuard no_grad;
  torch::manual_seed(5);
  const int64_t D = c.head_dim, h = 2, layer = 1;
  auto embed = m.Weight("model.embed_tokens.weight");  // every row has the same norm
  embed.zero_();
  embed.select(1, 0).fill_(1.0);
  for (int64_t t = 0; t < c.vocab_size; ++t) embed[t][1 + t] = 1.0;
  // q and k read the constant coordinate 0; RoPE makes q·k peak at offset 1:
  // z_k = z_q·e^{iθ_j} per frequency pair j, so the score is Σ_j cos((p − s − 1)·θ_j).
  const double amp = 2.0;
  auto wq = m.Weight(HfWeightName(layer, ModuleKind::kQ));
  auto wk = m.Weight(HfWeightName(layer, ModuleKind::kK));
  for (int64_t j = 0; j < D / 2; ++j) {
    const double theta =
        std::pow(c.rope_theta, -2.0 * static_cast<double>(j) / static_cast<double>(D));
    wq[h * D + j][0] = amp;
    wk[h * D + j][0] = amp * std::cos(theta);
    wk[h * D + D / 2 + j][0] = amp * std::sin(theta);
  }
  m.Weight(HfWeightName(layer, ModuleKind::kV))
      .narrow(0, h * D, D)
      .copy_(torch::randn({D, c.hidden_size}));
  m.Weight(HfWeightName(layer, ModuleKind::kO))
      .narrow(1, h * D, D)
      .copy_(torch::randn({c.hidden_size, D}));
  m.Weight("lm_head.weight").copy_(torch::randn({c.vocab_size, c.hidden_size}));
  return m;
}

TEST_F(Ablation, HeadScoresFindAPlantedPreviousTokenHead) {
  const Model m = PlantedPrevTokenModel();
  HeadOptions o;
  o.task_rows = 64;
  o.induction_rows = 32;
  o.batch_rows = 40;  // two batches each
  int64_t last = 0, total = 0;
  o.progress = [&](int64_t d, int64_t t) { last = d, total = t; };
  const HeadScores s = ScoreHeads(m, synth::TaskSpec{}, o);
  EXPECT_EQ(last, total);
  ASSERT_EQ(s.layers, 2);
  ASSERT_EQ(s.heads, 4);
  for (const auto* v : {&s.dce, &s.kl, &s.top1_changed, &s.prev_token, &s.induction})
    ASSERT_EQ(v->size(), 8u);
  const size_t planted = 1 * 4 + 2;
  EXPECT_GT(s.prev_token[planted], 0.95);
  EXPECT_GT(s.kl[planted], 1e-3);
  EXPECT_GT(s.top1_changed[planted], 0.0);
  EXPECT_NE(s.dce[planted], 0.0);
  for (size_t k = 0; k < 8; ++k) {
    EXPECT_GE(s.induction[k], 0.0);
    EXPECT_LE(s.induction[k], 1.0);
    if (k == planted) continue;
    EXPECT_LT(s.prev_token[k], 0.3) << k;  // uniform attention over the prefix
    // Heads with zero weights write nothing: zeroing them changes nothing at all.
    EXPECT_EQ(s.kl[k], 0.0) << k;
    EXPECT_EQ(s.top1_changed[k], 0.0) << k;
    EXPECT_EQ(s.dce[k], 0.0) << k;
  }
  EXPECT_GT(s.base_ce, 0.0);
}

// ---- Runners -------------------------------------------------------------------------------

std::string SaveModel(const Model& m, const TempDir& dir) {
  const std::string path = (dir.path() / "base").string();
  m.Save(path, {{"seedgrid_task", synth::TaskSpec{}.ToJson()}});
  return path;
}

InputArtifact PretrainInput(const std::string& dir) {
  InputArtifact in;
  in.key = ShardKey({.stage = "base", .kind = "pretrain"});
  in.artifact_dir = dir;
  return in;
}

TEST_F(Ablation, DwRunnerEndToEndOnARealSteerShard) {
  TempDir dir;
  const std::string base = SaveModel(RandomModel(0.02), dir);
  TestShardContext steer(LoraSteerKindConfig(),
                         {{"base", base},
                          {"targets", {{"modules", {"q", "k", "v", "o", "up", "down"}}}},
                          {"train", {{"steps", 12}}},
                          {"data", {{"n_train", 64}, {"n_eval", 32}, {"n_kl", 8}}},
                          {"eval", {{"alphas", {0.0, 1.0}}}}},
                         3);
  RunLoraSteer(steer);
  steer.Finish();
  const InputArtifact steer_in = steer.AsInput();

  for (bool with_pretrain : {true, false}) {
    std::vector<InputArtifact> inputs = {steer_in};
    if (with_pretrain) inputs.push_back(PretrainInput(base));  // else: the steer file's attribute
    TestShardContext ctx(AblationKindConfig(), Json::object(), 3, inputs);
    RunAblation(ctx);
    EXPECT_EQ(ctx.last_step, ctx.last_total);
    const auto& mx = ctx.metrics;
    EXPECT_EQ(mx.at("retained.full"), 1.0);
    EXPECT_EQ(mx.at("retained.zero"), 0.0);
    EXPECT_EQ(mx.at("retained.module.gate_proj.keep"), 0.0);
    EXPECT_EQ(mx.at("n_variants"), 43.0);
    EXPECT_LE(mx.at("recon_err_max"), 1e-5);
    // Same rows, same numbers as the steer shard.
    EXPECT_LT(mx.at("full_vs_steer_max_abs"), 1e-4);
    EXPECT_NEAR(mx.at("steer_delta.full"), steer.metrics.at("steer_delta"), 1e-4);
    EXPECT_NEAR(mx.at("dw_fro"), steer.metrics.at("dw_fro"), 1e-4 * steer.metrics.at("dw_fro"));
    for (const auto& [name, v] : mx) EXPECT_TRUE(std::isfinite(v)) << name;

    H5Reader r(ctx.Finish());
    EXPECT_EQ(r.Read<double>("alphas"), (std::vector<double>{0.0, 1.0}));
    EXPECT_EQ(r.DatasetShape("eval/row_idx"), (Shape{32}));
    const auto names = r.ReadStrings("manifest/variant");
    ASSERT_EQ(names.size(), 43u);
    for (const char* col : {"manifest/lens", "manifest/group", "manifest/keep_or_drop"})
      EXPECT_EQ(r.ReadStrings(col).size(), 43u) << col;
    for (const char* col : {"manifest/energy_frac", "manifest/frob_frac", "manifest/n_tensors",
                            "manifest/recon_err", "manifest/steer_delta", "manifest/retained"})
      EXPECT_EQ(r.DatasetShape(col), (Shape{43})) << col;
    for (const auto& n : names) {
      EXPECT_EQ(r.DatasetShape("variants/" + n + "/logratio"), (Shape{2, 32})) << n;
      EXPECT_EQ(r.DatasetShape("variants/" + n + "/pmass"), (Shape{2, 32})) << n;
      EXPECT_TRUE(mx.count("steer_delta." + n)) << n;
    }
    EXPECT_EQ(r.AttrString("/", "target"), "dw");
    EXPECT_EQ(r.AttrString("/", "base_checkpoint"), std::filesystem::absolute(base).string());
  }

  // Without a steer shard the dw target says what it needs.
  TestShardContext lonely(AblationKindConfig(), Json::object(), 0, {PretrainInput(base)});
  try {
    RunAblation(lonely);
    FAIL() << "expected a throw";
  } catch (const std::runtime_error& e) {
    EXPECT_NE(std::string(e.what()).find("lora_steer"), std::string::npos) << e.what();
  }
}

TEST_F(Ablation, HeadsRunnerWritesLayerByHeadArrays) {
  TempDir dir;
  const std::string base = SaveModel(PlantedPrevTokenModel(), dir);
  TestShardContext ctx(
      AblationKindConfig(),
      {{"target", "heads"}, {"heads", {{"task_rows", 32}, {"induction_rows", 16}}}}, 0,
      {PretrainInput(base)});
  RunAblation(ctx);
  for (const char* m :
       {"base_ce", "max_dce", "max_kl", "max_top1_changed", "max_prev_token", "max_induction"})
    EXPECT_TRUE(ctx.metrics.count(m)) << m;
  EXPECT_GT(ctx.metrics.at("max_prev_token"), 0.95);
  H5Reader r(ctx.Finish());
  for (const char* score : {"dce", "kl", "top1_changed", "prev_token", "induction"})
    EXPECT_EQ(r.DatasetShape(std::string("heads/") + score), (Shape{2, 4})) << score;
  const auto prev = r.Read<double>("heads/prev_token");
  EXPECT_EQ(std::max_element(prev.begin(), prev.end()) - prev.begin(), 6);
  EXPECT_EQ(r.AttrString("/", "target"), "heads");
}

// ---- bfloat16 bases (issue 16 point 3) ----------------------------------------------------

Tensor VariantLogratio(const H5Reader& r, const std::string& variant) {
  Shape shape;
  auto v = r.Read<float>("variants/" + variant + "/logratio", &shape);
  return torch::tensor(v).view({shape[0], shape[1]});
}

// model.dtype bfloat16: the ablation of a float32 steer shard on a bf16 base stays within bf16
// precision of the same ablation on the float32 base, and the ablation of a bf16 steer shard
// reproduces that shard's own logratios at full dW.
//
// The bound: at α = 0 both runs score the unsteered base, so E0 = max over rows of |logratio
// (bf16) − logratio(float32)| at α = 0 is what bf16 rounding (8 significant bits: weights rounded
// once at load, every GEMM output and residual sum rounded) does to this model's logratios on
// these rows. At α = 1 the bf16 run's weights are round(W + α·delta), rounded once exactly like
// round(W), of the same magnitude (‖dW‖ ≪ ‖W‖) and through the same rounded activations: the same
// kind and size of error, so every variant's logratio is within 2·E0 of the float32 run's (2:
// the maximum over 32 rows of a second, independent rounding pattern), and its steer_delta, a
// difference of the α = 1 and α = 0 row means, within 2·E0 + E0 = 3·E0.
TEST_F(Ablation, DwOnABfloat16BaseStaysWithinBf16PrecisionAndReproducesItsSteerShard) {
  TempDir dir;
  const std::string base = SaveModel(RandomModel(0.02), dir);
  const Json steer_params = {{"base", base},
                             {"targets", {{"modules", {"q", "k", "v", "o", "up", "down"}}}},
                             {"train", {{"steps", 12}}},
                             {"data", {{"n_train", 64}, {"n_eval", 32}, {"n_kl", 8}}},
                             {"eval", {{"alphas", {0.0, 1.0}}}}};
  const Json bf16 = {{"model", {{"dtype", "bfloat16"}}}};
  Json steer_bf16_params = steer_params;
  steer_bf16_params.merge_patch(bf16);
  TestShardContext steer32(LoraSteerKindConfig(), steer_params, 3);
  TestShardContext steer16(LoraSteerKindConfig(), steer_bf16_params, 3);
  RunLoraSteer(steer32);
  RunLoraSteer(steer16);
  steer32.Finish();
  steer16.Finish();

  TestShardContext a32(AblationKindConfig(), Json::object(), 3, {steer32.AsInput()});
  TestShardContext a16(AblationKindConfig(), bf16, 3, {steer32.AsInput()});
  TestShardContext own16(AblationKindConfig(), bf16, 3, {steer16.AsInput()});
  RunAblation(a32);
  RunAblation(a16);
  RunAblation(own16);

  // The bf16 ablation of a bf16 steer shard: the steer shard's own numbers.
  std::cout << "bf16 ablation vs its bf16 steer shard: max |Δlogratio| "
            << own16.metrics.at("full_vs_steer_max_abs") << "\n";
  EXPECT_LT(own16.metrics.at("full_vs_steer_max_abs"), 1e-4);
  EXPECT_NEAR(own16.metrics.at("steer_delta.full"), steer16.metrics.at("steer_delta"), 1e-4);
  EXPECT_EQ(H5Reader(own16.Finish()).AttrString("/", "model_dtype"), "bfloat16");

  const H5Reader r32(a32.Finish()), r16(a16.Finish());
  EXPECT_EQ(r32.AttrString("/", "model_dtype"), "float32");
  EXPECT_EQ(r16.AttrString("/", "model_dtype"), "bfloat16");
  const double e0 = (VariantLogratio(r16, "zero")[0] - VariantLogratio(r32, "zero")[0])
                        .abs()
                        .max()
                        .item<double>();
  EXPECT_GT(e0, 0.0);  // the bf16 run really computes in bf16
  double worst_ratio = 0;
  for (const auto& name : r32.ReadStrings("manifest/variant")) {
    const double d =
        (VariantLogratio(r16, name)[1] - VariantLogratio(r32, name)[1]).abs().max().item<double>();
    worst_ratio = std::max(worst_ratio, d / e0);
    EXPECT_LE(d, 2 * e0) << name;
    EXPECT_LE(
        std::abs(a16.metrics.at("steer_delta." + name) - a32.metrics.at("steer_delta." + name)),
        3 * e0)
        << name;
  }
  std::cout << "bf16 vs float32 base: E0 " << e0 << ", worst variant error " << worst_ratio
            << "·E0; steer_delta.full " << a16.metrics.at("steer_delta.full") << " vs "
            << a32.metrics.at("steer_delta.full") << "\n";
  EXPECT_EQ(a16.metrics.at("retained.full"), 1.0);
  EXPECT_EQ(a16.metrics.at("retained.zero"), 0.0);
}

TEST_F(Ablation, HeadsOnABfloat16BaseFindThePlantedHead) {
  TempDir dir;
  const std::string base = SaveModel(PlantedPrevTokenModel(), dir);
  const Json params = {{"target", "heads"},
                       {"heads", {{"task_rows", 32}, {"induction_rows", 16}}},
                       {"model", {{"dtype", "bfloat16"}}}};
  TestShardContext ctx(AblationKindConfig(), params, 0, {PretrainInput(base)});
  RunAblation(ctx);
  EXPECT_GT(ctx.metrics.at("max_prev_token"), 0.95);
  H5Reader r(ctx.Finish());
  EXPECT_EQ(r.AttrString("/", "model_dtype"), "bfloat16");
  const auto prev = r.Read<double>("heads/prev_token");
  EXPECT_EQ(std::max_element(prev.begin(), prev.end()) - prev.begin(), 6);
}

// ---- head ablation on a text file (issue 17 point 3) ------------------------------------

namespace fs = std::filesystem;

void WriteText(const fs::path& p, const std::string& text) {
  std::ofstream(p, std::ios::binary) << text;
}

// A byte-level tokenizer.json with no merges: every byte of the text is one token, its value.
void WriteByteTokenizer(const fs::path& dir) {
  fs::create_directories(dir);
  Json vocab = Json::object();
  for (int i = 0; i < 256; ++i) vocab[text::ByteToUnicode()[static_cast<size_t>(i)]] = i;
  const Json level = {{"type", "ByteLevel"}, {"add_prefix_space", false}, {"use_regex", true}};
  WriteText(dir / "tokenizer.json",
            Json{{"normalizer", nullptr},
                 {"pre_tokenizer", level},
                 {"post_processor", nullptr},
                 {"decoder", level},
                 {"added_tokens", Json::array()},
                 {"model", {{"type", "BPE"}, {"vocab", vocab}, {"merges", Json::array()}}}}
                .dump());
}

constexpr char kCorpus[] =
    "The cat sat on the mat.\n"
    "A dog ran after the cat, and the cat ran up a tree.\n"
    "Then the dog sat down under the tree and waited.\n";

// The token cache of a heads shard's text (the tokens shard the planner adds): `params`' data
// over the kind's defaults, as the runner sees it.
InputArtifact HeadsCache(const fs::path& dir, const Json& params) {
  Json data = AblationKindConfig().defaults.at("data");
  data.update(params.at("data"));
  return testing::WriteCache(dir, data, "cache");
}

Tensor NextTokenNll(const Tensor& logp, const Tensor& tokens) {
  const int64_t T = tokens.size(1);
  return -logp.narrow(1, 0, T - 1).gather(-1, tokens.narrow(1, 1, T - 1).unsqueeze(-1)).squeeze(-1);
}

// Head scores on windows of a text file: the stored windows are the corpus's own tokens, and
// head (1, 2)'s dce, kl and top1_changed equal a recomputation that zeroes the head by hand (its
// columns of o_proj, not the model's head multiplier).
TEST_F(Ablation, HeadScoresOnATextFileEqualAHandRecomputation) {
  TempDir dir;
  WriteByteTokenizer(dir.path() / "tok");
  WriteText(dir.path() / "corpus.txt", kCorpus);
  Json mp = ModelConfig::ModelParamDefaults();
  mp["vocab_size"] = 256;
  Model random(ModelConfig::FromParams(mp), torch::kCPU);
  random.InitRandom(11, 0.2);
  const std::string base = SaveModel(random, dir);
  const Json params = {{"target", "heads"},
                       {"data",
                        {{"source", "text"},
                         {"path", (dir.path() / "corpus.txt").string()},
                         {"tokenizer", (dir.path() / "tok").string()},
                         {"window", 16}}},
                       {"heads", {{"task_rows", 5}, {"induction_rows", 3}}},
                       {"batch", {{"rows", 3}}}};  // two task batches
  // Without its token cache the shard does not tokenize the file itself: it says what is missing.
  TestShardContext uncached(AblationKindConfig(), params, 0, {PretrainInput(base)});
  try {
    RunAblation(uncached);
    ADD_FAILURE() << "head ablation of text ran without its token cache";
  } catch (const std::runtime_error& e) {
    EXPECT_THAT(e.what(), ::testing::HasSubstr("no token cache for data digest"));
  }
  TestShardContext ctx(AblationKindConfig(), params, 0,
                       {PretrainInput(base), HeadsCache(dir.path(), params)});
  RunAblation(ctx);
  EXPECT_EQ(ctx.last_step, ctx.last_total);
  H5Reader r(ctx.Finish());
  EXPECT_EQ(r.AttrString("heads", "data_source"), "text");

  // The eval set: the corpus's bytes in windows of 16; induction rows: each window's first 8
  // bytes twice.
  Shape shape, ind_shape;
  const auto tokens = r.Read<int64_t>("eval/tokens", &shape);
  ASSERT_EQ(shape, (Shape{5, 16}));
  for (size_t i = 0; i < tokens.size(); ++i)
    ASSERT_EQ(tokens[i], static_cast<unsigned char>(kCorpus[i])) << i;
  const auto counted = r.Read<int32_t>("eval/counted", &shape);
  EXPECT_EQ(shape, (Shape{5, 15}));
  EXPECT_TRUE(std::all_of(counted.begin(), counted.end(), [](int32_t c) { return c == 1; }));
  const auto ind = r.Read<int64_t>("eval/induction_tokens", &ind_shape);
  ASSERT_EQ(ind_shape, (Shape{3, 16}));
  for (size_t i = 0; i < 3; ++i)
    for (size_t j = 0; j < 8; ++j) {
      EXPECT_EQ(ind[i * 16 + j], static_cast<unsigned char>(kCorpus[i * 16 + j]));
      EXPECT_EQ(ind[i * 16 + j + 8], ind[i * 16 + j]);
    }
  EXPECT_EQ(r.AttrInt("eval/induction_tokens", "period"), 8);

  // Independently: CE, KL and argmax of the saved model with head (1, 2) zeroed by hand.
  torch::NoGradGuard no_grad;
  const Model loaded = Model::Load(base, torch::kCPU);
  Model zeroed = Model::Load(base, torch::kCPU);
  const int64_t D = zeroed.config().hidden_size / zeroed.config().num_attention_heads;
  zeroed.Weight(HfWeightName(1, ModuleKind::kO)).narrow(1, 2 * D, D).zero_();
  const auto t = torch::tensor(tokens).view({5, 16});
  const auto logp = torch::log_softmax(loaded.Forward(t), -1);
  const auto logq = torch::log_softmax(zeroed.Forward(t), -1);
  const double ce = NextTokenNll(logp, t).mean().item<double>();
  const double dce = NextTokenNll(logq, t).mean().item<double>() - ce;
  const double kl = (logp.exp() * (logp - logq)).sum(-1).mean().item<double>();
  const double top1 = logp.argmax(-1).ne(logq.argmax(-1)).to(torch::kFloat64).mean().item<double>();
  const size_t head = 1 * 4 + 2;
  EXPECT_GT(kl, 1e-4);  // the head matters: the comparison is not of zeros
  EXPECT_NEAR(r.Read<double>("heads/dce")[head], dce, 1e-5);
  EXPECT_NEAR(r.Read<double>("heads/kl")[head], kl, 1e-6);
  EXPECT_NEAR(r.Read<double>("heads/top1_changed")[head], top1, 1e-12);
  EXPECT_NEAR(*r.AttrDouble("heads", "base_ce"), ce, 1e-5);
  EXPECT_NEAR(ctx.metrics.at("base_ce"), ce, 1e-5);
}

// The base model's vocabulary is only known at run time: a tokenizer whose ids it cannot embed is
// a clear error there.
TEST_F(Ablation, HeadsOnATextFileWithATokenizerTooLargeForTheModelSaySo) {
  TempDir dir;
  WriteByteTokenizer(dir.path() / "tok");
  WriteText(dir.path() / "corpus.txt", kCorpus);
  const std::string small = SaveModel(RandomModel(), dir);  // vocabulary 48
  const Json params = {{"target", "heads"},
                       {"data",
                        {{"source", "text"},
                         {"path", (dir.path() / "corpus.txt").string()},
                         {"tokenizer", (dir.path() / "tok").string()},
                         {"window", 8}}}};
  TestShardContext ctx(AblationKindConfig(), params, 0,
                       {PretrainInput(small), HeadsCache(dir.path(), params)});
  try {
    RunAblation(ctx);
    FAIL() << "expected a throw";
  } catch (const std::runtime_error& e) {
    EXPECT_THAT(e.what(), ::testing::HasSubstr("256 tokens but the base model's vocabulary is 48"));
  }
}

std::string HeadsSpec(const std::string& data) {
  return "name: t\nstages:\n  - name: heads\n    kind: ablation\n    seeds: 1\n    params:\n"
         "      target: heads\n      base: /nowhere\n      data: " +
         data + "\n";
}

// Plan time: a missing corpus, a missing column and a bad window are spec errors (exit 2) naming
// the file and line; the corpus's content is in the shard id.
TEST(AblationConfig, HeadsOnTextAreCheckedAtPlanTimeAndHashedIntoTheId) {
  TempDir d;
  WriteByteTokenizer(d.path() / "tok");
  WriteText(d.path() / "corpus.jsonl", "{\"body\": \"one line\"}\n{\"body\": \"two\"}\n");
  const auto spec = d.path() / "spec.yaml";
  WriteText(spec, HeadsSpec("{source: text, path: missing.txt, tokenizer: tok}"));
  std::string p = data::PlanProblems(spec);
  EXPECT_NE(p.find("data.path: "), std::string::npos) << p;
  EXPECT_NE(p.find(d.str() + "/missing.txt"), std::string::npos) << p;
  EXPECT_NE(p.find("spec.yaml:"), std::string::npos) << p;
  WriteText(spec, HeadsSpec("{source: text, path: corpus.jsonl, tokenizer: tok, window: 2}"));
  p = data::PlanProblems(spec);
  EXPECT_NE(p.find(d.str() + "/corpus.jsonl:1: no column 'text'"), std::string::npos) << p;
  EXPECT_NE(p.find("data.window: must be >= 4"), std::string::npos) << p;
  WriteText(spec,
            HeadsSpec("{source: text, path: corpus.jsonl, tokenizer: nowhere, column: body}"));
  EXPECT_NE(data::PlanProblems(spec).find("data.tokenizer: "), std::string::npos);

  WriteText(spec, HeadsSpec("{source: text, path: corpus.jsonl, tokenizer: tok, column: body}"));
  EXPECT_EQ(data::PlanProblems(spec), "");
  const auto id = [&] {
    return ExpandSpec(LoadSpec(spec.string(), {}, AllKinds()), AllKinds()).shards.at(0).key.id();
  };
  const auto before = id();
  EXPECT_EQ(id(), before);
  WriteText(d.path() / "corpus.jsonl", "{\"body\": \"one line\"}\n{\"body\": \"three\"}\n");
  EXPECT_NE(id(), before);
}

}  // namespace
}  // namespace seedgrid

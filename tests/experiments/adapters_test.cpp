#include "experiments/model/adapters.h"

#include <gtest/gtest.h>

#include <iostream>
#include <map>
#include <string>

#include "tests/experiments/peak_rss.h"

namespace seedgrid {
namespace {

ModelConfig Demo() { return ModelConfig::FromParams(Json::object()); }

Model Base(const ModelConfig& c = Demo()) {
  Model m(c, torch::kCPU);
  m.InitRandom(11, 0.1);
  return m;
}

torch::Tensor Tokens(int64_t b = 4, int64_t t = 24) {
  torch::manual_seed(5);
  return torch::randint(0, 48, {b, t}, torch::kLong);
}

AdapterTargets All() {
  AdapterTargets t;
  t.modules.assign(std::begin(kAllModuleKinds), std::end(kAllModuleKinds));
  return t;
}

TEST(Lora, ZeroBLeavesLogitsUnchanged) {
  const Model m = Base();
  const auto base = m.Forward(Tokens());
  LoraAdapter lora(m, LoraOptions{}, All(), 3);
  ForwardOptions o;
  o.adapter = &lora;
  EXPECT_TRUE(torch::equal(m.Forward(Tokens(), o), base));
  for (const auto& [name, d] : lora.DeltaWeights())
    EXPECT_EQ(d.abs().max().item<float>(), 0.0f) << name;
  // A is initialised (not zero): training can move B.
  EXPECT_GT(lora.A("model.layers.0.self_attn.q_proj.weight").abs().sum().item<float>(), 0.0f);
}

// Forward with the adapter == forward of the base with the merged delta added in place.
void ExpectMergedEqualsAdapter(Model& m, const TrainableAdapter& adapter) {
  ForwardOptions o;
  o.adapter = &adapter;
  const auto with_adapter = m.Forward(Tokens(), o);
  EXPECT_FALSE(torch::allclose(with_adapter, m.Forward(Tokens()), 1e-4, 1e-4));
  WeightEdit merged(m, adapter.DeltaWeights());
  merged.SetAlpha(1.0);
  EXPECT_TRUE(torch::allclose(m.Forward(Tokens()), with_adapter, 1e-4, 1e-5));
}

TEST(Lora, MergedAdapterEqualsAdapterForward) {
  Model m = Base();
  LoraOptions opt;
  opt.rank = 3;
  opt.alpha = 6;
  opt.init_b_std = 0.2;
  LoraAdapter lora(m, opt, All(), 7);
  ExpectMergedEqualsAdapter(m, lora);
  const auto d = lora.DeltaWeights();
  EXPECT_EQ(d.size(), 14u);
  EXPECT_EQ(d.at("model.layers.1.mlp.down_proj.weight").sizes(), (std::vector<int64_t>{64, 256}));
  const std::string q = "model.layers.0.self_attn.q_proj.weight";
  EXPECT_TRUE(torch::allclose(d.at(q), lora.B(q).mm(lora.A(q)) * 2.0));
}

TEST(Lora, PartialGroupTargetsAndLayerRange) {
  Model m = Base();
  AdapterTargets t;
  t.modules = {ModuleKind::kK, ModuleKind::kV, ModuleKind::kUp};
  t.layer_lo = 0.5;
  t.layer_hi = 1.0;
  LoraOptions opt;
  opt.init_b_std = 0.3;
  LoraAdapter lora(m, opt, t, 1);
  const auto d = lora.DeltaWeights();
  EXPECT_EQ(d.size(), 3u);
  EXPECT_TRUE(d.count("model.layers.1.self_attn.k_proj.weight"));
  EXPECT_TRUE(d.count("model.layers.1.mlp.up_proj.weight"));
  EXPECT_FALSE(d.count("model.layers.0.self_attn.k_proj.weight"));
  ExpectMergedEqualsAdapter(m, lora);
}

// LoRA written the plain way, per module (PEFT's lora.Linear): y + s·(x·A_mᵀ)·B_mᵀ for each
// targeted module m of the group, its own leaf tensors, torch's autograd for the gradients.
class PerModuleLora : public LinearAdapter {
 public:
  PerModuleLora(const Model& m, const LoraAdapter& lora) : model_(m), scale_(lora.scale()) {
    for (const auto& [name, d] : lora.DeltaWeights()) {
      a_[name] = lora.A(name).detach().clone().requires_grad_(true);
      b_[name] = lora.B(name).detach().clone().requires_grad_(true);
    }
  }
  torch::Tensor Linear(int64_t layer, LinearGroup group, const torch::Tensor& x,
                       const torch::Tensor& weight, const torch::Tensor& bias,
                       const torch::Tensor& residual) const override {
    std::vector<torch::Tensor> parts;
    bool any = false;
    for (ModuleKind m : kAllModuleKinds) {
      if (Model::GroupOf(m) != group || (m == ModuleKind::kGate && !model_.config().gated_mlp))
        continue;
      const auto name = HfWeightName(layer, m);
      const auto [b0, e0] = model_.GroupRows(m);
      if (a_.count(name)) {
        parts.push_back(x.mm(a_.at(name).t()).mm(b_.at(name).t()) * scale_);
        any = true;
      } else {
        parts.push_back(torch::zeros({x.size(0), e0 - b0}));
      }
    }
    const auto y = BaseLinear(x, weight, bias, residual);
    return any ? y + torch::cat(parts, 1) : y;
  }
  const torch::Tensor& A(const std::string& n) const { return a_.at(n); }
  const torch::Tensor& B(const std::string& n) const { return b_.at(n); }

 private:
  const Model& model_;
  double scale_;
  std::map<std::string, torch::Tensor> a_, b_;
};

// The fused update (one addmm_ per module into the group's output, a custom backward) gives
// the per-module gradients: whole groups, partial groups (k and v without q; up without
// gate) and single-module groups.
TEST(Lora, GradientsMatchPerModuleLora) {
  const Model m = Base();
  for (const auto& modules :
       {std::vector<ModuleKind>(std::begin(kAllModuleKinds), std::end(kAllModuleKinds)),
        std::vector{ModuleKind::kK, ModuleKind::kV, ModuleKind::kUp, ModuleKind::kDown}}) {
    AdapterTargets t;
    t.modules = modules;
    LoraOptions opt;
    opt.init_b_std = 0.1;
    LoraAdapter lora(m, opt, t, 5);
    const PerModuleLora ref(m, lora);
    lora.params().EnableGrad();
    lora.params().ZeroGrad();
    ForwardOptions o, o_ref;
    o.adapter = &lora;
    o_ref.adapter = &ref;
    const auto tokens = Tokens();
    const auto loss = NextTokenLoss(m.Forward(tokens, o), tokens);
    const auto loss_ref = NextTokenLoss(m.Forward(tokens, o_ref), tokens);
    EXPECT_NEAR(loss.item<double>(), loss_ref.item<double>(), 1e-6);
    loss.backward();
    loss_ref.backward();
    for (const auto& [name, d] : lora.DeltaWeights()) {
      // A(name) aliases rows of the group's stacked A: its gradient is those rows of the flat one.
      const auto& pa = lora.params();
      const auto grad_of = [&](const torch::Tensor& v) {
        const int64_t off = (static_cast<const char*>(v.data_ptr()) -
                             static_cast<const char*>(pa.flat().data_ptr())) /
                            4;
        return pa.grad_flat().narrow(0, off, v.numel()).view(v.sizes());
      };
      const auto ga = grad_of(lora.A(name)), gb = grad_of(lora.B(name));
      ASSERT_TRUE(ref.A(name).grad().defined()) << name;
      EXPECT_TRUE(torch::allclose(ga, ref.A(name).grad(), 1e-4, 1e-7)) << name << " A";
      EXPECT_TRUE(torch::allclose(gb, ref.B(name).grad(), 1e-4, 1e-7)) << name << " B";
      EXPECT_GT(gb.abs().max().item<double>(), 0.0) << name;
    }
  }
}

TEST(Lora, GaussianInitAndTinyModelWithGqa) {
  ModelConfig c = Demo();
  c.num_key_value_heads = 2;
  c.tie_word_embeddings = true;
  Model m = Base(c);
  LoraOptions opt;
  opt.init = "gaussian";
  opt.init_b_std = 0.1;
  LoraAdapter lora(m, opt, All(), 2);
  EXPECT_NEAR(lora.A("model.layers.0.mlp.up_proj.weight").std().item<double>(), 1.0 / 4, 0.03);
  ExpectMergedEqualsAdapter(m, lora);
}

TEST(Lora, SameSeedSameInit) {
  const Model m = Base();
  LoraAdapter a(m, LoraOptions{}, All(), 9), b(m, LoraOptions{}, All(), 9),
      c(m, LoraOptions{}, All(), 10);
  EXPECT_TRUE(torch::equal(a.params().flat(), b.params().flat()));
  EXPECT_FALSE(torch::equal(a.params().flat(), c.params().flat()));
}

TEST(Lora, RejectsBadTargets) {
  const Model m = Base();
  AdapterTargets none;
  EXPECT_THROW(LoraAdapter(m, LoraOptions{}, none, 1), std::runtime_error);
  AdapterTargets t = All();
  t.layer_lo = t.layer_hi = 1.0;
  EXPECT_THROW(LoraAdapter(m, LoraOptions{}, t, 1), std::runtime_error);
  ModelConfig plain = Demo();
  plain.gated_mlp = false;
  plain.hidden_act = "gelu";
  const Model pm = Base(plain);
  EXPECT_THROW(LoraAdapter(pm, LoraOptions{}, All(), 1), std::runtime_error);  // no gate
}

TEST(AdapterTargets, LayerRanges) {
  AdapterTargets t;
  t.layer_lo = 0.3;
  t.layer_hi = 0.8;
  EXPECT_EQ(t.Layers(28),
            (std::vector<int64_t>{8, 9, 10, 11, 12, 13, 14, 15, 16, 17, 18, 19, 20, 21}));
  EXPECT_EQ(t.Layers(2), (std::vector<int64_t>{0}));
  t.layer_lo = 0.5;
  t.layer_hi = 1.0;
  EXPECT_EQ(t.Layers(2), (std::vector<int64_t>{1}));
  t.layer_lo = t.layer_hi = 0.5;
  EXPECT_EQ(t.Layers(2), (std::vector<int64_t>{1}));
}

TEST(Ia3, MergedAdapterEqualsAdapterForward) {
  Model m = Base();
  AdapterTargets t;
  t.modules = {ModuleKind::kK, ModuleKind::kV, ModuleKind::kO, ModuleKind::kDown};
  Ia3Adapter ia3(m, t);
  {
    ForwardOptions o;
    o.adapter = &ia3;
    EXPECT_TRUE(torch::equal(m.Forward(Tokens(), o), m.Forward(Tokens())));  // l = 1
  }
  torch::NoGradGuard g;
  torch::manual_seed(3);
  ia3.params().flat().uniform_(0.5, 1.5);
  ExpectMergedEqualsAdapter(m, ia3);
  EXPECT_EQ(ia3.L("model.layers.0.mlp.down_proj.weight").size(0), 256);  // input scaling
  EXPECT_EQ(ia3.L("model.layers.0.self_attn.k_proj.weight").size(0), 64);
}

// Issue 16 point 3, as PEFT does on a bf16 model: the model computes in bfloat16, the adapter's
// factors, their gradients, the optimiser state and dW stay float32, and the adapter's update
// matches the same adapter on the float32 model of the same (bf16-rounded) weights to bf16
// precision.
TEST(Lora, Bfloat16ModelKeepsFactorsGradsOptimiserAndDwFloat32) {
  Model m32 = Base();
  {
    torch::NoGradGuard g;  // bf16-representable weights, so both models hold the same values
    m32.params().flat().copy_(m32.params().flat().to(torch::kBFloat16));
  }
  Model m16(Demo(), torch::kCPU, torch::kBFloat16);
  {
    torch::NoGradGuard g;
    m16.params().flat().copy_(m32.params().flat());
  }
  LoraOptions opt;
  opt.init_b_std = 0.2;
  LoraAdapter l16(m16, opt, All(), 7), l32(m32, opt, All(), 7);
  EXPECT_EQ(l16.params().flat().scalar_type(), torch::kFloat32);
  ForwardOptions o16, o32;
  o16.adapter = &l16;
  o32.adapter = &l32;
  const auto tokens = Tokens();
  const auto with = m16.Forward(tokens, o16), want = m32.Forward(tokens, o32);
  EXPECT_EQ(with.scalar_type(), torch::kFloat32);
  const auto base = m16.Forward(tokens);
  // The adapter's effect (with - base) is the float32 one to bf16 precision.
  const auto effect = with - base, effect32 = want - m32.Forward(tokens);
  EXPECT_GT(effect32.abs().max().item<double>(), 0.1);
  EXPECT_LT((effect - effect32).abs().max().item<double>(),
            0.1 * effect32.abs().max().item<double>());
  // Training: float32 gradients into the flat buffer, float32 AdamW state, float32 dW.
  l16.params().EnableGrad();
  FlatAdamW adam(l16.params(), {});
  l16.params().ZeroGrad();
  NextTokenLoss(m16.Forward(tokens, o16), tokens).backward();
  EXPECT_EQ(l16.params().grad_flat().scalar_type(), torch::kFloat32);
  EXPECT_GT(l16.params().grad_flat().abs().sum().item<double>(), 0.0);
  adam.Step();
  EXPECT_EQ(l16.params().flat().scalar_type(), torch::kFloat32);
  for (const auto& [name, d] : l16.DeltaWeights())
    EXPECT_EQ(d.scalar_type(), torch::kFloat32) << name;
}

TEST(Ia3, Bfloat16ModelScalesInFloat32) {
  Model m(Demo(), torch::kCPU, torch::kBFloat16);
  m.InitRandom(11, 0.1);
  AdapterTargets t;
  t.modules = {ModuleKind::kK, ModuleKind::kV, ModuleKind::kDown};
  Ia3Adapter ia3(m, t);
  EXPECT_EQ(ia3.params().flat().scalar_type(), torch::kFloat32);
  ForwardOptions o;
  o.adapter = &ia3;
  EXPECT_TRUE(torch::equal(m.Forward(Tokens(), o), m.Forward(Tokens())));  // l = 1
  ia3.params().EnableGrad();
  ia3.params().ZeroGrad();
  NextTokenLoss(m.Forward(Tokens(), o), Tokens()).backward();
  EXPECT_EQ(ia3.params().grad_flat().scalar_type(), torch::kFloat32);
  EXPECT_GT(ia3.params().grad_flat().abs().sum().item<double>(), 0.0);
  for (const auto& [name, d] : ia3.DeltaWeights())
    EXPECT_EQ(d.scalar_type(), torch::kFloat32) << name;
}

TEST(FlatAdamW, MatchesTorchAdamW) {
  const Model m = Base();
  LoraOptions opt;
  opt.init_b_std = 0.05;
  LoraAdapter mine(m, opt, All(), 4), ref(m, opt, All(), 4);
  mine.params().EnableGrad();
  FlatAdamW adam(mine.params(), {.lr = 1e-2, .weight_decay = 0.1});
  std::vector<torch::Tensor> ref_params;
  for (const auto& n : ref.params().names()) {
    auto t = ref.params().Get(n);
    t.set_requires_grad(true);
    ref_params.push_back(t);
  }
  torch::optim::AdamW torch_adam(ref_params, torch::optim::AdamWOptions(1e-2).weight_decay(0.1));
  const auto tokens = Tokens();
  for (int step = 0; step < 5; ++step) {
    ForwardOptions a, b;
    a.adapter = &mine;
    b.adapter = &ref;
    mine.params().ZeroGrad();
    NextTokenLoss(m.Forward(tokens, a), tokens).backward();
    adam.Step();
    torch_adam.zero_grad();
    NextTokenLoss(m.Forward(tokens, b), tokens).backward();
    torch_adam.step();
  }
  for (const auto& n : mine.params().names())
    EXPECT_TRUE(torch::allclose(mine.params().Get(n), ref.params().Get(n), 1e-4, 1e-6)) << n;
  EXPECT_FALSE(
      torch::allclose(mine.params().flat(), LoraAdapter(m, opt, All(), 4).params().flat()));
}

// Model::ForwardNextTokenLoss (the LM head and cross-entropy fused over chunks of rows, the
// gradients formed in the forward pass) against the plain NextTokenLoss(Forward(...)): the same
// loss, and the same gradients of `params` (LoRA factors or the whole model), to `rtol`.
void ExpectFusedLossMatchesPlain(const Model& m, FlatParams& params, const ForwardOptions& o,
                                 const torch::Tensor& tokens, const torch::Tensor& mask,
                                 double rtol) {
  params.ZeroGrad();
  const auto plain = NextTokenLoss(m.Forward(tokens, o), tokens, mask);
  plain.backward();
  const auto want = params.grad_flat().clone();
  params.ZeroGrad();
  const auto fused = m.ForwardNextTokenLoss(tokens, o, mask);
  fused.backward();
  const auto got = params.grad_flat();
  EXPECT_EQ(fused.scalar_type(), torch::kFloat32);
  EXPECT_NEAR(fused.item<double>(), plain.item<double>(), rtol * plain.item<double>());
  const double scale = want.abs().max().item<double>();
  ASSERT_GT(scale, 0.0);
  EXPECT_LE((got - want).abs().max().item<double>(), rtol * scale) << "largest gradient " << scale;
  torch::NoGradGuard g;  // no gradient wanted: the loss alone
  EXPECT_NEAR(m.ForwardNextTokenLoss(tokens, o, mask).item<double>(), plain.item<double>(),
              rtol * plain.item<double>());
}

// A mask of the predicted positions [B, T-1] with about half of them off.
torch::Tensor HalfMask(const torch::Tensor& tokens) {
  torch::manual_seed(8);
  return torch::rand({tokens.size(0), tokens.size(1) - 1}).lt(0.5);
}

void ExpectFusedLossMatchesPlainForLora(const Model& m, double rtol,
                                        const torch::Tensor& tokens = Tokens()) {
  LoraOptions opt;
  opt.init_b_std = 0.05;
  LoraAdapter lora(m, opt, All(), 9);
  lora.params().EnableGrad();
  ForwardOptions o;
  o.adapter = &lora;
  ExpectFusedLossMatchesPlain(m, lora.params(), o, tokens, {}, rtol);
  ExpectFusedLossMatchesPlain(m, lora.params(), o, tokens, HalfMask(tokens), rtol);
}

TEST(Lora, FusedLossMatchesPlainPathOnTheDemoModel) {
  ExpectFusedLossMatchesPlainForLora(Base(), 1e-5);
}

TEST(Lora, FusedLossMatchesPlainPathOnBfloat16Model) {
  Model m(Demo(), torch::kCPU, torch::kBFloat16);
  m.InitRandom(11, 0.1);
  ExpectFusedLossMatchesPlainForLora(m, 1e-2);  // bf16 activations: rounded differently
}

// Chunks of 256 rows: 4 x 80 rows span two (the second partial). A vocabulary of 2^16; tied
// and untied heads, LoRA and full-model gradients (the head's included).
ModelConfig WideVocab(bool tied) {
  ModelConfig c = Demo();
  c.vocab_size = 1 << 16;
  c.num_hidden_layers = 2;
  c.tie_word_embeddings = tied;
  c.max_position_embeddings = 128;
  return c;
}

TEST(Lora, FusedLossMatchesPlainPathAcrossChunks) {
  ExpectFusedLossMatchesPlainForLora(Base(WideVocab(false)), 1e-5, Tokens(4, 80));
}

TEST(Model, FusedLossMatchesPlainPathForTheWholeModel) {
  for (const bool tied : {false, true}) {
    SCOPED_TRACE(tied ? "tied head" : "own head");
    Model m = Base(WideVocab(tied));
    m.params().EnableGrad();
    const auto tokens = Tokens(4, 80);
    ExpectFusedLossMatchesPlain(m, m.params(), {}, tokens, HalfMask(tokens), 1e-5);
  }
  Model demo = Base();  // the demo model trains its tied embeddings through the head too
  demo.params().EnableGrad();
  ExpectFusedLossMatchesPlain(demo, demo.params(), {}, Tokens(), {}, 1e-5);
}

TEST(Model, FusedLossTakesThePlainPathUnderAFinalSoftcapAndNeedsEveryPosition) {
  ModelConfig c = Demo();
  c.final_logit_softcap = 3.0;  // Gemma2
  const Model m = Base(c);
  const auto tokens = Tokens();
  EXPECT_TRUE(
      torch::equal(m.ForwardNextTokenLoss(tokens), NextTokenLoss(m.Forward(tokens), tokens)));
  ForwardOptions o;
  o.logit_positions = torch::tensor({3}, torch::kLong);
  EXPECT_THROW(m.ForwardNextTokenLoss(tokens, o), c10::Error);
}

// The fused loss never holds the [B·T, V] logits: a training step's peak grows by about one
// 64 MiB chunk (256 rows), where the plain path holds logits, log-probabilities and their
// gradient (3 x 256 MiB here).
TEST(Lora, FusedLossPeakIsAChunkNotTheLogits) {
  const Model m = Base(WideVocab(true));
  LoraAdapter lora(m, LoraOptions{}, All(), 9);
  lora.params().EnableGrad();
  ForwardOptions o;
  o.adapter = &lora;
  const auto tokens = Tokens(8, 128);
  const double logits_mib = 8.0 * 128 * (1 << 16) * 4 / (1 << 20);
  const long before = testing::ResetPeakRssKb(true);
  ASSERT_GT(before, 0) << "no VmHWM in /proc/self/status";
  m.ForwardNextTokenLoss(tokens, o).backward();
  const double grew_mib = static_cast<double>(testing::ResetPeakRssKb(false) - before) / 1024;
  std::cout << "fused loss step, logits of " << logits_mib << " MiB: peak RSS +" << grew_mib
            << " MiB\n";
  EXPECT_LT(grew_mib, 0.5 * logits_mib);
}

TEST(Schedule, WarmupAndCosine) {
  EXPECT_DOUBLE_EQ(ScheduledLr("cosine", 1.0, 0, 100, 10), 0.1);
  EXPECT_DOUBLE_EQ(ScheduledLr("cosine", 1.0, 10, 100, 10), 1.0);
  EXPECT_NEAR(ScheduledLr("cosine", 1.0, 100, 100, 10), 0.1, 1e-12);
  EXPECT_DOUBLE_EQ(ScheduledLr("constant", 2.0, 50, 100, 0), 2.0);
  EXPECT_THROW(ScheduledLr("linear", 1.0, 50, 100, 0), std::runtime_error);
}

}  // namespace
}  // namespace seedgrid

#include "experiments/model/model.h"

#include <gtest/gtest.h>

#include <sys/resource.h>

#include <cmath>
#include <cstdlib>
#include <fstream>
#include <iostream>
#include <string>
#include <vector>

#include "experiments/model/safetensors.h"
#include "tests/experiments/peak_rss.h"
#include "tests/experiments/test_context.h"

namespace seedgrid {
namespace {

using testing::TempDir;
using Mat = std::vector<std::vector<double>>;

ModelConfig TinyConfig() {
  ModelConfig c;
  c.vocab_size = 7;
  c.hidden_size = 8;
  c.intermediate_size = 6;
  c.num_hidden_layers = 2;
  c.num_attention_heads = 2;
  c.num_key_value_heads = 1;  // grouped-query
  c.head_dim = 4;
  c.max_position_embeddings = 5;
  c.rope_theta = 100.0;
  return c;
}

Mat ToMat(const torch::Tensor& t) {
  const auto c = t.detach().to(torch::kCPU, torch::kFloat64).contiguous();
  Mat m(static_cast<size_t>(c.size(0)),
        std::vector<double>(static_cast<size_t>(c.dim() > 1 ? c.size(1) : 1)));
  const double* p = c.data_ptr<double>();
  for (size_t i = 0; i < m.size(); ++i)
    for (size_t j = 0; j < m[i].size(); ++j) m[i][j] = p[i * m[i].size() + j];
  return m;
}

std::vector<double> Vec(const torch::Tensor& t) {
  const auto c = t.detach().to(torch::kCPU, torch::kFloat64).contiguous();
  return std::vector<double>(c.data_ptr<double>(), c.data_ptr<double>() + c.numel());
}

// y = W x (+ b), W [out][in].
std::vector<double> MatVec(const Mat& w, const std::vector<double>& x,
                           const std::vector<double>* b = nullptr) {
  std::vector<double> y(w.size(), 0.0);
  for (size_t o = 0; o < w.size(); ++o) {
    for (size_t i = 0; i < x.size(); ++i) y[o] += w[o][i] * x[i];
    if (b) y[o] += (*b)[o];
  }
  return y;
}

std::vector<double> Rms(const std::vector<double>& x, const std::vector<double>& w, double eps) {
  double ms = 0;
  for (double v : x) ms += v * v;
  ms /= static_cast<double>(x.size());
  std::vector<double> y(x.size());
  for (size_t i = 0; i < x.size(); ++i) y[i] = x[i] / std::sqrt(ms + eps) * w[i];
  return y;
}

double Act(double x, const std::string& act) {
  if (act == "silu") return x / (1 + std::exp(-x));
  if (act == "gelu") return 0.5 * x * (1 + std::erf(x / std::sqrt(2.0)));
  return x > 0 ? x : 0;
}

// Rotates one head vector at position t, HF's rotate_half convention.
void Rope(double* x, int64_t D, int64_t t, double theta) {
  const int64_t half = D / 2;
  std::vector<double> out(static_cast<size_t>(D));
  for (int64_t j = 0; j < D; ++j) {
    const int64_t f = j % half;
    const double angle = static_cast<double>(t) / std::pow(theta, 2.0 * f / static_cast<double>(D));
    const double rot = j < half ? -x[j + half] : x[j - half];
    out[static_cast<size_t>(j)] = x[j] * std::cos(angle) + rot * std::sin(angle);
  }
  for (int64_t j = 0; j < D; ++j) x[j] = out[static_cast<size_t>(j)];
}

// The decoder written out with loops, in double precision, from the model's named weights.
Mat ReferenceLogits(const Model& m, const std::vector<int64_t>& tokens,
                    const std::vector<std::vector<double>>* head_scale = nullptr) {
  const auto& c = m.config();
  const int64_t T = static_cast<int64_t>(tokens.size()), H = c.num_attention_heads,
                KV = c.num_key_value_heads, D = c.head_dim;
  const auto W = [&](const std::string& n) { return ToMat(m.Weight(n)); };
  const auto V = [&](const std::string& n) { return Vec(m.Weight(n)); };
  const Mat embed = W("model.embed_tokens.weight");
  Mat h;
  for (int64_t t : tokens) h.push_back(embed[static_cast<size_t>(t)]);
  for (int64_t l = 0; l < c.num_hidden_layers; ++l) {
    const std::string p = "model.layers." + std::to_string(l) + ".";
    const auto ln1 = V(p + "input_layernorm.weight"),
               ln2 = V(p + "post_attention_layernorm.weight");
    const Mat wq = W(p + "self_attn.q_proj.weight"), wk = W(p + "self_attn.k_proj.weight"),
              wv = W(p + "self_attn.v_proj.weight"), wo = W(p + "self_attn.o_proj.weight");
    std::vector<double> bq, bk, bv, bo;
    if (c.attention_bias) {
      bq = V(p + "self_attn.q_proj.bias");
      bk = V(p + "self_attn.k_proj.bias");
      bv = V(p + "self_attn.v_proj.bias");
    }
    if (c.o_bias) bo = V(p + "self_attn.o_proj.bias");
    Mat q(static_cast<size_t>(T)), k(static_cast<size_t>(T)), v(static_cast<size_t>(T));
    for (int64_t t = 0; t < T; ++t) {
      const auto x = Rms(h[static_cast<size_t>(t)], ln1, c.rms_norm_eps);
      q[t] = MatVec(wq, x, c.attention_bias ? &bq : nullptr);
      k[t] = MatVec(wk, x, c.attention_bias ? &bk : nullptr);
      v[t] = MatVec(wv, x, c.attention_bias ? &bv : nullptr);
      if (c.qk_norm) {
        const auto qn = V(p + "self_attn.q_norm.weight"), kn = V(p + "self_attn.k_norm.weight");
        for (int64_t hh = 0; hh < H; ++hh) {
          std::vector<double> s(q[t].begin() + hh * D, q[t].begin() + (hh + 1) * D);
          s = Rms(s, qn, c.rms_norm_eps);
          std::copy(s.begin(), s.end(), q[t].begin() + hh * D);
        }
        for (int64_t hh = 0; hh < KV; ++hh) {
          std::vector<double> s(k[t].begin() + hh * D, k[t].begin() + (hh + 1) * D);
          s = Rms(s, kn, c.rms_norm_eps);
          std::copy(s.begin(), s.end(), k[t].begin() + hh * D);
        }
      }
      for (int64_t hh = 0; hh < H; ++hh) Rope(q[t].data() + hh * D, D, t, c.rope_theta);
      for (int64_t hh = 0; hh < KV; ++hh) Rope(k[t].data() + hh * D, D, t, c.rope_theta);
    }
    for (int64_t t = 0; t < T; ++t) {
      std::vector<double> z(static_cast<size_t>(H * D), 0.0);
      for (int64_t hh = 0; hh < H; ++hh) {
        const int64_t kvh = hh / (H / KV);
        std::vector<double> score(static_cast<size_t>(t + 1));
        double mx = -1e300;
        for (int64_t s = 0; s <= t; ++s) {
          double dot = 0;
          for (int64_t j = 0; j < D; ++j) dot += q[t][hh * D + j] * k[s][kvh * D + j];
          score[s] = dot / std::sqrt(static_cast<double>(D));
          mx = std::max(mx, score[s]);
        }
        double sum = 0;
        for (auto& sc : score) sum += (sc = std::exp(sc - mx));
        const double hs = head_scale ? (*head_scale)[l][hh] : 1.0;
        for (int64_t s = 0; s <= t; ++s)
          for (int64_t j = 0; j < D; ++j) z[hh * D + j] += hs * score[s] / sum * v[s][kvh * D + j];
      }
      const auto o = MatVec(wo, z, c.o_bias ? &bo : nullptr);
      for (size_t i = 0; i < o.size(); ++i) h[t][i] += o[i];
    }
    const Mat wu = W(p + "mlp.up_proj.weight"), wd = W(p + "mlp.down_proj.weight");
    for (int64_t t = 0; t < T; ++t) {
      const auto x = Rms(h[t], ln2, c.rms_norm_eps);
      const auto up = MatVec(wu, x);
      std::vector<double> post(up.size());
      if (c.gated_mlp) {
        const auto gate = MatVec(W(p + "mlp.gate_proj.weight"), x);
        for (size_t i = 0; i < up.size(); ++i) post[i] = Act(gate[i], c.hidden_act) * up[i];
      } else {
        for (size_t i = 0; i < up.size(); ++i) post[i] = Act(up[i], c.hidden_act);
      }
      const auto y = MatVec(wd, post);
      for (size_t i = 0; i < y.size(); ++i) h[t][i] += y[i];
    }
  }
  const auto norm = V("model.norm.weight");
  const Mat head = c.tie_word_embeddings ? embed : W("lm_head.weight");
  Mat logits;
  for (int64_t t = 0; t < T; ++t) logits.push_back(MatVec(head, Rms(h[t], norm, c.rms_norm_eps)));
  return logits;
}

void ExpectMatches(const torch::Tensor& logits, const Mat& ref, double tol = 2e-5) {
  ASSERT_EQ(logits.size(0), static_cast<int64_t>(ref.size()));
  const auto got = ToMat(logits);
  for (size_t t = 0; t < ref.size(); ++t)
    for (size_t v = 0; v < ref[t].size(); ++v)
      EXPECT_NEAR(got[t][v], ref[t][v], tol * (1 + std::abs(ref[t][v]))) << "t=" << t << " v=" << v;
}

Model RandomModel(const ModelConfig& c, uint64_t seed = 1) {
  Model m(c, torch::kCPU);
  m.InitRandom(seed, 0.5);
  // Non-trivial norm weights and biases, so the reference sees them.
  torch::NoGradGuard g;
  torch::manual_seed(seed);
  for (const auto& name : m.WeightNames())
    if (name.find("norm") != std::string::npos || name.find(".bias") != std::string::npos)
      m.Weight(name).uniform_(0.5, 1.5);
  return m;
}

const std::vector<int64_t> kTokens = {1, 5, 2, 6, 3};

torch::Tensor Tok(const std::vector<int64_t>& t) {
  return torch::tensor(t, torch::kLong).view({1, static_cast<int64_t>(t.size())});
}

TEST(Model, HandComputedForwardSwiGluGqa) {
  const Model m = RandomModel(TinyConfig());
  ExpectMatches(m.Forward(Tok(kTokens))[0], ReferenceLogits(m, kTokens));
}

TEST(Model, HandComputedForwardQwen3QkNormBiasTied) {
  auto c = TinyConfig();
  c.model_type = "qwen3";
  c.qk_norm = true;
  c.attention_bias = true;
  c.o_bias = true;
  c.tie_word_embeddings = true;
  c.num_key_value_heads = 2;
  const Model m = RandomModel(c, 3);
  EXPECT_FALSE(m.HasWeight("lm_head.weight"));
  ExpectMatches(m.Forward(Tok(kTokens))[0], ReferenceLogits(m, kTokens));
}

TEST(Model, HandComputedForwardGeluMlp) {
  auto c = TinyConfig();
  c.gated_mlp = false;
  c.hidden_act = "gelu";
  const Model m = RandomModel(c, 4);
  EXPECT_FALSE(m.HasWeight("model.layers.0.mlp.gate_proj.weight"));
  ExpectMatches(m.Forward(Tok(kTokens))[0], ReferenceLogits(m, kTokens));
}

TEST(Model, HandComputedForwardLongRowsUnfoldedHeads) {
  // H·T > 128: attention runs per head (B·H GEMMs) instead of folded per row.
  auto c = TinyConfig();
  c.max_position_embeddings = 80;
  const Model m = RandomModel(c, 5);
  std::vector<int64_t> tokens;
  for (int i = 0; i < 70; ++i) tokens.push_back((i * 5 + 3) % 7);
  ExpectMatches(m.Forward(Tok(tokens))[0], ReferenceLogits(m, tokens));
}

TEST(Model, HookCanReplaceAttentionPattern) {
  const Model m = RandomModel(TinyConfig());
  const auto base = m.Forward(Tok(kTokens));
  ActivationHook same = [](CapturePoint p, int64_t, torch::Tensor& v) {
    if (p == CapturePoint::kAttnPattern) v = v.clone();
  };
  ForwardOptions o;
  o.hook = &same;
  EXPECT_TRUE(torch::allclose(m.Forward(Tok(kTokens), o), base, 1e-5, 1e-6));
  // A zero pattern in layer 1 zeroes every head's attention·V there.
  ActivationHook zero = [](CapturePoint p, int64_t layer, torch::Tensor& v) {
    if (p == CapturePoint::kAttnPattern && layer == 1) v = torch::zeros_like(v);
  };
  o.hook = &zero;
  ForwardOptions scaled;
  scaled.head_scale = torch::tensor({1.0f, 1.0f, 0.0f, 0.0f}).view({2, 2});
  EXPECT_TRUE(
      torch::allclose(m.Forward(Tok(kTokens), o), m.Forward(Tok(kTokens), scaled), 1e-5, 1e-6));
}

TEST(Model, BatchRowsAreIndependentAndCausal) {
  const Model m = RandomModel(TinyConfig());
  auto batch = torch::tensor({1, 5, 2, 6, 3, 4, 4, 0, 1, 2}, torch::kLong).view({2, 5});
  const auto logits = m.Forward(batch);
  ExpectMatches(logits[1], ReferenceLogits(m, {4, 4, 0, 1, 2}));
  // Causal: changing the last token leaves earlier positions unchanged.
  auto changed = batch.clone();
  changed[0][4] = 0;
  EXPECT_TRUE(torch::allclose(m.Forward(changed)[0].narrow(0, 0, 4), logits[0].narrow(0, 0, 4)));
  // logit_positions picks rows of the full output.
  ForwardOptions o;
  o.logit_positions = torch::tensor({3, 1}, torch::kLong);
  const auto picked = m.Forward(batch, o);
  EXPECT_TRUE(torch::allclose(picked.select(1, 0), logits.select(1, 3), 1e-5, 1e-6));
  EXPECT_TRUE(torch::allclose(picked.select(1, 1), logits.select(1, 1), 1e-5, 1e-6));
}

TEST(Model, RejectsBadInputs) {
  const Model m = RandomModel(TinyConfig());
  EXPECT_THROW(m.Forward(torch::zeros({1, 6}, torch::kLong)), c10::Error);  // > context
  EXPECT_THROW(m.Forward(torch::zeros({6}, torch::kLong)), c10::Error);
  ForwardOptions o;
  o.head_scale = torch::ones({3, 2});
  EXPECT_THROW(m.Forward(Tok(kTokens), o), c10::Error);
}

long PeakRssKb() {
  rusage u{};
  getrusage(RUSAGE_SELF, &u);
  return u.ru_maxrss;
}

// Issue 16 point 4: a Llama-3.2-style config (131,072 positions) used to build a dense
// 131,072² float mask (64 GiB) and RoPE tables for every position. Masks and tables now follow
// the batch: peak RSS of building the model and a forward stays small, and the logits are
// those of the same weights under a short max_position_embeddings.
TEST(Model, ForwardMemoryDoesNotDependOnMaxPositions) {
  ModelConfig c = TinyConfig();
  c.max_position_embeddings = 131072;
  c.rope_scaling_type = "llama3";
  c.rope_scaling_factor = 32;
  c.rope_original_max_position = 8192;
  const long before = PeakRssKb();
  Model big(c, torch::kCPU);
  big.InitRandom(3, 0.5);
  const auto tokens = torch::randint(0, c.vocab_size, {2, 64}, torch::kLong);
  const auto logits = big.Forward(tokens);
  const long grew_mib = (PeakRssKb() - before) / 1024;
  EXPECT_LT(grew_mib, 64) << "peak RSS grew by " << grew_mib << " MiB";
  ModelConfig small_cfg = c;
  small_cfg.max_position_embeddings = 64;
  Model small(small_cfg, torch::kCPU);
  torch::NoGradGuard g;
  small.params().flat().copy_(big.params().flat());
  EXPECT_TRUE(torch::equal(small.Forward(tokens), logits));
}

// GPT-2 stores c_attn as Conv1D [in, out] with q|k|v column blocks; the role names (what LoRA
// targets, dW and edits use) are the matching row blocks of the model's [out, in] weight, and
// an edit through a role name is seen in the checkpoint's layout.
TEST(Model, RoleNamesAliasFusedCheckpointTensors) {
  const auto c = ModelConfig::FromHfJson(Json::parse(R"({"model_type": "gpt2", "n_embd": 8,
    "n_head": 2, "n_layer": 1, "n_positions": 16, "vocab_size": 11})"));
  Model m(c, torch::kCPU);
  m.InitRandom(5, 0.5);
  const auto c_attn = m.Weight("h.0.attn.c_attn.weight");  // [8, 24]
  ASSERT_EQ(c_attn.sizes(), (std::vector<int64_t>{8, 24}));
  const auto k = m.Weight("model.layers.0.self_attn.k_proj.weight");  // [8, 8]
  EXPECT_TRUE(torch::equal(k, c_attn.narrow(1, 8, 8).t()));
  EXPECT_TRUE(torch::equal(m.Weight("model.layers.0.mlp.up_proj.weight"),
                           m.Weight("h.0.mlp.c_fc.weight").t()));
  EXPECT_FALSE(m.HasWeight("model.layers.0.mlp.gate_proj.weight"));  // plain MLP
  const auto before = c_attn.clone();
  WeightEdit edit(m, {{"model.layers.0.self_attn.v_proj.weight", torch::ones({8, 8})}});
  edit.SetAlpha(1.0);
  EXPECT_TRUE(torch::equal(c_attn.narrow(1, 16, 8), before.narrow(1, 16, 8) + 1));
  EXPECT_TRUE(torch::equal(c_attn.narrow(1, 0, 16), before.narrow(1, 0, 16)));
}

TEST(Model, HeadScaleMatchesReference) {
  const Model m = RandomModel(TinyConfig());
  ForwardOptions o;
  o.head_scale = torch::tensor({1.0f, 0.0f, 0.5f, 1.0f}).view({2, 2});
  const std::vector<std::vector<double>> hs = {{1.0, 0.0}, {0.5, 1.0}};
  ExpectMatches(m.Forward(Tok(kTokens), o)[0], ReferenceLogits(m, kTokens, &hs));
}

TEST(Model, CaptureShapesAndNoEffect) {
  const Model m = RandomModel(TinyConfig());
  const auto base = m.Forward(Tok(kTokens));
  Capture cap;
  for (auto p : {CapturePoint::kResidPre, CapturePoint::kResidMid, CapturePoint::kResidPost,
                 CapturePoint::kMlpPre, CapturePoint::kMlpPost, CapturePoint::kAttnPattern,
                 CapturePoint::kAttnZ})
    cap.Request(p);
  ForwardOptions o;
  o.capture = &cap;
  EXPECT_TRUE(torch::equal(m.Forward(Tok(kTokens), o), base));
  EXPECT_EQ(cap.Get(CapturePoint::kMlpPre, 1).sizes(), (std::vector<int64_t>{1, 5, 6}));
  EXPECT_EQ(cap.Get(CapturePoint::kMlpPost, 0).sizes(), (std::vector<int64_t>{1, 5, 6}));
  EXPECT_EQ(cap.Get(CapturePoint::kResidMid, 0).sizes(), (std::vector<int64_t>{1, 5, 8}));
  EXPECT_EQ(cap.Get(CapturePoint::kAttnZ, 1).sizes(), (std::vector<int64_t>{1, 5, 2, 4}));
  const auto pattern = cap.Get(CapturePoint::kAttnPattern, 0);
  EXPECT_EQ(pattern.sizes(), (std::vector<int64_t>{1, 2, 5, 5}));
  EXPECT_TRUE(torch::allclose(pattern.sum(-1), torch::ones({1, 2, 5})));
  EXPECT_EQ(pattern[0][1][1][2].item<float>(), 0.0f);  // causal
  EXPECT_TRUE(
      torch::equal(cap.Get(CapturePoint::kResidPost, 0), cap.Get(CapturePoint::kResidPre, 1)));
  // SwiGLU: post = silu(pre) * up.
  const auto up =
      cap.Get(CapturePoint::kMlpPost, 0) / torch::silu(cap.Get(CapturePoint::kMlpPre, 0));
  const auto x = cap.Get(CapturePoint::kResidMid, 0);
  const auto xn = x * torch::rsqrt(x.pow(2).mean(-1, true) + 1e-5) *
                  m.Weight("model.layers.0.post_attention_layernorm.weight");
  EXPECT_TRUE(torch::allclose(up, xn.matmul(m.Weight("model.layers.0.mlp.up_proj.weight").t()),
                              1e-4, 1e-5));
  // Only what is requested is kept.
  Capture one;
  one.Request(CapturePoint::kMlpPost, 1);
  o.capture = &one;
  m.Forward(Tok(kTokens), o);
  EXPECT_TRUE(one.Has(CapturePoint::kMlpPost, 1));
  EXPECT_FALSE(one.Has(CapturePoint::kMlpPost, 0));
  EXPECT_THROW(one.Get(CapturePoint::kResidPre, 0), std::runtime_error);
}

TEST(Model, HookCanIntervene) {
  const Model m = RandomModel(TinyConfig());
  // Zeroing head 1 of layer 0 through the hook equals head_scale 0 for it.
  ActivationHook hook = [](CapturePoint p, int64_t layer, torch::Tensor& v) {
    if (p == CapturePoint::kAttnZ && layer == 0) {
      v = v.clone();
      v.select(2, 1).zero_();
    }
  };
  ForwardOptions with_hook;
  with_hook.hook = &hook;
  ForwardOptions with_scale;
  with_scale.head_scale = torch::tensor({1.0f, 0.0f, 1.0f, 1.0f}).view({2, 2});
  EXPECT_TRUE(torch::allclose(m.Forward(Tok(kTokens), with_hook),
                              m.Forward(Tok(kTokens), with_scale), 1e-6, 1e-7));
  EXPECT_FALSE(torch::allclose(m.Forward(Tok(kTokens), with_hook), m.Forward(Tok(kTokens))));
}

TEST(Model, WeightEditIsBitExactAndSeenByFusedGemm) {
  Model m = RandomModel(TinyConfig());
  const auto flat0 = m.params().flat().clone();
  const auto logits0 = m.Forward(Tok(kTokens));
  const std::string q = "model.layers.0.self_attn.q_proj.weight";
  const std::string up = "model.layers.1.mlp.up_proj.weight";
  {
    WeightEdit edit(m, {{q, torch::randn({8, 8})}, {up, torch::randn({6, 8})}});
    edit.SetAlpha(0.37);
    EXPECT_FALSE(torch::equal(m.params().flat(), flat0));
    EXPECT_FALSE(torch::allclose(m.Forward(Tok(kTokens)), logits0));  // the fused qkv saw it
    edit.SetAlpha(0.0);
    EXPECT_TRUE(torch::equal(m.params().flat(), flat0));
    EXPECT_TRUE(torch::equal(m.Forward(Tok(kTokens)), logits0));
    edit.SetAlpha(-2.0);
  }  // destructor restores
  EXPECT_TRUE(torch::equal(m.params().flat(), flat0));
  try {
    WeightEdit bad(m, {{"nope", torch::zeros({1})}, {q, torch::zeros({3, 3})}});
    FAIL() << "no throw";
  } catch (const std::runtime_error& e) {
    EXPECT_NE(std::string(e.what()).find("no weight 'nope'"), std::string::npos);
    EXPECT_NE(std::string(e.what()).find("delta shape [3, 3]"), std::string::npos);
  }
  EXPECT_TRUE(torch::equal(m.params().flat(), flat0));
}

TEST(Model, EditingQProjMatchesReference) {
  Model m = RandomModel(TinyConfig());
  WeightEdit edit(m, {{"model.layers.1.self_attn.k_proj.weight", torch::randn({4, 8})}});
  edit.SetAlpha(0.5);
  ExpectMatches(m.Forward(Tok(kTokens))[0], ReferenceLogits(m, kTokens));
}

TEST(Model, SaveLoadRoundTrip) {
  TempDir dir;
  auto c = TinyConfig();
  c.attention_bias = true;
  c.o_bias = true;
  const Model m = RandomModel(c);
  m.Save(dir.str(), {{"seedgrid_task", {{"seed", 3}}}});
  Model back = Model::Load(dir.str(), torch::kCPU);  // a float32 file in float32: file-backed
  EXPECT_EQ(back.FileBackedBytes(), c.num_params() * 4);
  EXPECT_TRUE(torch::equal(back.Forward(Tok(kTokens)), m.Forward(Tok(kTokens))));
  EXPECT_TRUE(torch::equal(back.params().flat(), m.params().flat()));  // copied in by params()
  EXPECT_EQ(back.FileBackedBytes(), 0);
  EXPECT_EQ(back.config().ToHfJson(), m.config().ToHfJson());
  EXPECT_TRUE(torch::equal(back.Forward(Tok(kTokens)), m.Forward(Tok(kTokens))));
  EXPECT_THROW(static_cast<const Model&>(Model::Load(dir.str(), torch::kCPU)).params(),
               std::logic_error);
  SafetensorsFile f((dir.path() / "model.safetensors").string());
  EXPECT_EQ(f.Names().size(), m.WeightNames().size());
  EXPECT_TRUE(f.Has("model.layers.1.self_attn.v_proj.bias"));
  EXPECT_EQ(f.metadata().at("format"), "pt");
}

// Rewrites a checkpoint's tensors through `edit` (name -> tensor, return false to drop).
void Rewrite(const std::string& dir, const std::function<bool(std::string&, torch::Tensor&)>& edit,
             StDType dtype = StDType::kF32,
             std::vector<std::pair<std::string, torch::Tensor>> extra = {}) {
  std::vector<std::pair<std::string, torch::Tensor>> ts;
  {
    SafetensorsFile f(dir + "/model.safetensors");
    for (const auto& n : f.Names()) {
      const auto& v = f.Get(n);
      auto t = torch::empty(v.shape, torch::kFloat32);
      ConvertToFloat32(v, t.data_ptr<float>());
      std::string name = n;
      if (edit(name, t)) ts.emplace_back(name, t);
    }
  }
  for (auto& e : extra) ts.push_back(e);
  std::vector<torch::Tensor> keep;
  std::vector<TensorToWrite> out;
  for (auto& [n, t] : ts) {
    torch::Tensor c = t.contiguous();
    if (dtype == StDType::kBF16) c = c.to(torch::kBFloat16);
    if (dtype == StDType::kF16) c = c.to(torch::kFloat16);
    keep.push_back(c);
    out.push_back(
        {n, dtype, std::vector<int64_t>(c.sizes().begin(), c.sizes().end()), c.data_ptr()});
  }
  WriteSafetensors(dir + "/model.safetensors", out);
}

std::string LoadError(const std::string& dir) {
  try {
    Model::Load(dir, torch::kCPU);
  } catch (const std::runtime_error& e) {
    return e.what();
  }
  return "";
}

TEST(Model, LoadReportsMissingMisshapedAndUnexpectedTensors) {
  TempDir dir;
  RandomModel(TinyConfig()).Save(dir.str());
  Rewrite(dir.str(),
          [](std::string& n, torch::Tensor& t) {
            if (n == "model.layers.0.mlp.up_proj.weight") return false;
            if (n == "model.norm.weight") t = torch::ones({9});
            return true;
          },
          StDType::kF32,
          {{"model.layers.0.self_attn.rotary_emb.inv_freq", torch::ones({2})},
           {"model.extra.weight", torch::ones({2})}});
  const std::string err = LoadError(dir.str());
  const std::string file = (dir.path() / "model.safetensors").string();
  EXPECT_NE(err.find(file + ": missing tensor 'model.layers.0.mlp.up_proj.weight'"),
            std::string::npos)
      << err;
  EXPECT_NE(err.find("'model.norm.weight' has shape [9], the config needs [8]"), std::string::npos)
      << err;
  EXPECT_NE(err.find("unexpected tensor 'model.extra.weight'"), std::string::npos) << err;
  EXPECT_EQ(err.find("inv_freq"), std::string::npos) << err;  // harmless, ignored
}

TEST(Model, LoadsBf16AndF16Checkpoints) {
  for (StDType dt : {StDType::kBF16, StDType::kF16}) {
    TempDir dir;
    const Model m = RandomModel(TinyConfig());
    m.Save(dir.str());
    Rewrite(
        dir.str(), [](std::string&, torch::Tensor&) { return true; }, dt);
    const Model back = Model::Load(dir.str(), torch::kCPU);
    const auto want = m.params()
                          .flat()
                          .to(dt == StDType::kBF16 ? torch::kBFloat16 : torch::kFloat16)
                          .to(torch::kFloat32);
    EXPECT_TRUE(torch::equal(back.params().flat(), want));
  }
}

// Issue 16 point 3: model.dtype bfloat16. Tensors load as stored (BF16, F16, F32) and are
// converted once into bf16 storage; the forward computes in bf16 and returns float32 logits
// close to the float32 forward of the same weights; a bf16 model saves BF16 and reloads
// bit-exactly.
TEST(Model, Bfloat16ComputeLoadsEveryStoredDtype) {
  for (StDType dt : {StDType::kBF16, StDType::kF16, StDType::kF32}) {
    TempDir dir;
    auto c = TinyConfig();
    c.attention_bias = true;
    c.o_bias = true;
    const Model m = RandomModel(c);
    m.Save(dir.str());
    Rewrite(
        dir.str(), [](std::string&, torch::Tensor&) { return true; }, dt);
    Model back = Model::Load(dir.str(), torch::kCPU, torch::kBFloat16);
    EXPECT_EQ(back.dtype(), torch::kBFloat16);
    EXPECT_EQ(back.FileBackedBytes() > 0, dt == StDType::kBF16);
    ASSERT_EQ(back.params().flat().scalar_type(), torch::kBFloat16);
    const auto stored = dt == StDType::kBF16  ? torch::kBFloat16
                        : dt == StDType::kF16 ? torch::kFloat16
                                              : torch::kFloat32;
    const Model ref = Model::Load(dir.str(), torch::kCPU);  // float32 compute, same weights
    for (const auto& name : m.WeightNames())                // (flat layouts differ: 64-byte slots)
      EXPECT_TRUE(torch::equal(back.Weight(name), m.Weight(name).to(stored).to(torch::kBFloat16)))
          << name;
    const auto got = back.Forward(Tok(kTokens));
    const auto want = ref.Forward(Tok(kTokens));
    EXPECT_EQ(got.scalar_type(), torch::kFloat32);
    const double err = (got - want).abs().max().item<double>();
    EXPECT_GT(err, 0.0) << "bf16 compute gave the float32 logits exactly";
    EXPECT_LT(err, 0.05 * want.abs().max().item<double>());
  }
  TempDir dir, again;
  auto m = RandomModel(TinyConfig());
  m.Save(dir.str());
  const Model bf = Model::Load(dir.str(), torch::kCPU, torch::kBFloat16);
  bf.Save(again.str());
  SafetensorsFile f((again.path() / "model.safetensors").string());
  EXPECT_EQ(f.Get("model.norm.weight").dtype, StDType::kBF16);
  EXPECT_TRUE(torch::equal(Model::Load(again.str(), torch::kCPU, torch::kBFloat16).params().flat(),
                           bf.params().flat()));
  EXPECT_THROW(ParseComputeDtype("float16"), std::runtime_error);
}

// TinyConfig 512 wide: 8 heads of 64 (no grouping), the given MLP width and depth.
ModelConfig WideConfig(int64_t intermediate_size, int64_t layers) {
  ModelConfig c = TinyConfig();
  c.hidden_size = 512;
  c.intermediate_size = intermediate_size;
  c.num_attention_heads = 8;
  c.num_key_value_heads = 8;
  c.head_dim = 64;
  c.num_hidden_layers = layers;
  return c;
}

// A bf16 model of 8 layers, 64 MiB of tensors of at most 2 MiB, saved by Model::Save in `dir`.
ModelConfig SavedBf16Model(const std::string& dir) {
  const ModelConfig c = WideConfig(2048, 8);
  Model m(c, torch::kCPU, torch::kBFloat16);
  m.InitRandom(1);
  m.Save(dir);
  return c;
}

// Issue 16 point 3 (memory-mapped loading, no full extra copy in RAM): a bf16 file loaded in
// bf16 is the file's own pages, so the load adds next to nothing to the resident set (it used
// to add the whole storage, and before that storage + file). The bytes are the saved ones.
TEST(Model, LoadOfAFileStoredAsComputedCopiesNothing) {
  TempDir dir;
  const ModelConfig c = SavedBf16Model(dir.str());
  const double storage_mib = static_cast<double>(c.num_params()) * 2 / (1 << 20);
  const long before = testing::ResetPeakRssKb(true);
  ASSERT_GT(before, 0) << "no VmHWM in /proc/self/status";
  const Model m = Model::Load(dir.str(), torch::kCPU, torch::kBFloat16);
  const double grew_mib = static_cast<double>(testing::ResetPeakRssKb(false) - before) / 1024;
  std::cout << "bf16 load of " << storage_mib << " MiB: peak RSS +" << grew_mib << " MiB\n";
  EXPECT_EQ(m.FileBackedBytes(), c.num_params() * 2);
  EXPECT_LT(grew_mib, 0.1 * storage_mib);
  SafetensorsFile f((dir.path() / "model.safetensors").string());
  for (const auto& name : m.WeightNames()) {
    const auto& v = f.Get(name);
    const auto stored = torch::from_blob(const_cast<uint8_t*>(v.data), v.shape, torch::kBFloat16);
    ASSERT_TRUE(torch::equal(m.Weight(name).contiguous().view(v.shape), stored)) << name;
  }
}

// An HF-saved file lists tensors sorted by name (safetensors' serializer): gate_proj and up_proj
// are neighbours and stay in the file, q_proj/k_proj/v_proj are not (k_proj, o_proj, q_proj,
// v_proj) and are copied into the fused q|k|v storage. Both give the saved weights.
TEST(Model, HfOrderedFileCopiesOnlyTheSlotsItDoesNotHoldInOrder) {
  TempDir dir;
  const ModelConfig c = SavedBf16Model(dir.str());
  const Model saved = Model::Load(dir.str(), torch::kCPU, torch::kBFloat16);
  const Model ours = saved.Clone();
  Rewrite(
      dir.str(), [](std::string&, torch::Tensor&) { return true; }, StDType::kBF16);
  const Model hf = Model::Load(dir.str(), torch::kCPU, torch::kBFloat16);
  const int64_t qkv_bytes = c.num_hidden_layers * (c.q_dim() + 2 * c.kv_dim()) * c.hidden_size * 2;
  EXPECT_EQ(hf.FileBackedBytes(), c.num_params() * 2 - qkv_bytes);
  for (const auto& name : ours.WeightNames())
    EXPECT_TRUE(torch::equal(hf.Weight(name), ours.Weight(name))) << name;
  const auto tokens = torch::randint(0, c.vocab_size, {2, 5}, torch::kLong);
  EXPECT_TRUE(torch::equal(hf.Forward(tokens), ours.Forward(tokens)));
}

// A file-backed weight is a private mapping: an in-place edit (WeightEdit, ablation) copies the
// pages it writes for this process, is seen by the forward pass, and never reaches the file or
// another load of it; a checkpoint replaced by a new file (rename) leaves a loaded model as it
// was; Clone is a deep copy; params() brings the weights into the model's own storage.
TEST(Model, FileBackedWeightsArePrivateToTheModel) {
  TempDir dir;
  const ModelConfig c = SavedBf16Model(dir.str());
  Model m = Model::Load(dir.str(), torch::kCPU, torch::kBFloat16);
  const Model fresh = Model::Load(dir.str(), torch::kCPU, torch::kBFloat16);
  const auto tokens = torch::randint(0, c.vocab_size, {2, 5}, torch::kLong);
  const auto base = fresh.Forward(tokens);
  {
    WeightEdit edit(
        m, {{"model.layers.3.self_attn.q_proj.weight", torch::ones({c.q_dim(), c.hidden_size})},
            {"model.layers.3.mlp.down_proj.weight",
             torch::ones({c.hidden_size, c.intermediate_size})}});
    edit.SetAlpha(0.5);
    EXPECT_FALSE(torch::equal(m.Forward(tokens), base));
    EXPECT_TRUE(torch::equal(fresh.Forward(tokens), base));
    EXPECT_TRUE(
        torch::equal(Model::Load(dir.str(), torch::kCPU, torch::kBFloat16).Forward(tokens), base));
  }
  EXPECT_TRUE(torch::equal(m.Forward(tokens), base));  // restored

  Model clone = m.Clone();
  EXPECT_EQ(clone.FileBackedBytes(), 0);
  {
    torch::NoGradGuard no_grad;
    clone.Weight("model.norm.weight").fill_(2);
  }
  EXPECT_TRUE(torch::equal(m.Forward(tokens), base));

  {
    Model other(c, torch::kCPU, torch::kBFloat16);  // the checkpoint replaced (temp + rename)
    other.InitRandom(7);
    other.Save(dir.str());
  }
  EXPECT_TRUE(torch::equal(m.Forward(tokens), base));
  EXPECT_FALSE(
      torch::equal(Model::Load(dir.str(), torch::kCPU, torch::kBFloat16).Forward(tokens), base));

  const auto flat = m.params().flat();  // copied into the model's storage
  EXPECT_EQ(m.FileBackedBytes(), 0);
  EXPECT_TRUE(torch::equal(m.Forward(tokens), base));
  EXPECT_EQ(m.Weight("model.norm.weight").data_ptr<at::BFloat16>(),
            flat.data_ptr<at::BFloat16>() + m.params().offset("model.norm.weight"));
}

// Copies instead of views: when the user asks (SEEDGRID_MODEL_LOAD=copy, for a checkpoint that
// may be rewritten in place) and when the model's buffer is already trainable (its gradients
// and optimiser see only that buffer). Same weights either way; a misspelt value is an error.
TEST(Model, LoadCopiesWhenAskedOrWhenTheBufferIsTrainable) {
  TempDir dir;
  const ModelConfig c = SavedBf16Model(dir.str());
  const Model mapped = Model::Load(dir.str(), torch::kCPU, torch::kBFloat16);
  ASSERT_GT(mapped.FileBackedBytes(), 0);
  ::setenv("SEEDGRID_MODEL_LOAD", "copy", 1);
  const Model copied = Model::Load(dir.str(), torch::kCPU, torch::kBFloat16);
  ::setenv("SEEDGRID_MODEL_LOAD", "mmap", 1);
  try {
    Model::Load(dir.str(), torch::kCPU, torch::kBFloat16);
    ADD_FAILURE() << "SEEDGRID_MODEL_LOAD=mmap was accepted";
  } catch (const std::runtime_error& e) {
    EXPECT_NE(std::string(e.what()).find("SEEDGRID_MODEL_LOAD='mmap'"), std::string::npos)
        << e.what();
  }
  ::unsetenv("SEEDGRID_MODEL_LOAD");
  EXPECT_EQ(copied.FileBackedBytes(), 0);
  Model trainable(c, torch::kCPU, torch::kBFloat16);
  trainable.params().EnableGrad();
  trainable.LoadWeights((dir.path() / "model.safetensors").string());
  EXPECT_EQ(trainable.FileBackedBytes(), 0);
  for (const auto& name : mapped.WeightNames()) {
    EXPECT_TRUE(torch::equal(copied.Weight(name), mapped.Weight(name))) << name;
    EXPECT_TRUE(torch::equal(trainable.Weight(name).detach(), mapped.Weight(name))) << name;
  }
}

// A model whose tied embedding is most of its storage: 6 MiB of layers, 48 MiB of embedding
// (bf16: 24 M parameters of 512 wide).
ModelConfig EmbeddingHeavyConfig() {
  ModelConfig c = WideConfig(1024, 2);
  c.vocab_size = 49152;
  c.tie_word_embeddings = true;
  return c;
}

// The storage of a model just built is the kernel's zero pages, not a zero-filled buffer: the
// load that follows writes each page once (BENCHMARKS.md §12: the memset took longer than reading
// the file). It still reads as zero, norm weights 1.
TEST(Model, NewStorageIsZeroWithoutBeingWritten) {
  const ModelConfig c = EmbeddingHeavyConfig();
  const double storage_mib = static_cast<double>(c.num_params()) * 2 / (1 << 20);
  const long before = testing::ResetPeakRssKb(true);
  const Model m(c, torch::kCPU, torch::kBFloat16);
  const double grew_mib = static_cast<double>(testing::ResetPeakRssKb(false) - before) / 1024;
  std::cout << "bf16 model of " << storage_mib << " MiB built: peak RSS +" << grew_mib << " MiB\n";
  EXPECT_LT(grew_mib, 0.1 * storage_mib);
  const auto flat = m.params().flat().to(torch::kFloat32);
  int64_t norm_elems = 0;
  for (const auto& name : m.WeightNames())
    if (name.find("norm") != std::string::npos) norm_elems += m.Weight(name).numel();
  EXPECT_EQ(flat.eq(0).sum().item<int64_t>(), flat.numel() - norm_elems);
  EXPECT_EQ(flat.eq(1).sum().item<int64_t>(), norm_elems);
}

// A load that converts (a bf16 file in float32 compute, an F16 file in bf16) reads each tensor
// from the file into storage (pread; through a 4 MiB staging buffer), never through the mapping:
// peak RSS is the storage plus that buffer, not the storage plus the largest tensor (the
// embedding, 3/4 of this storage).
TEST(Model, LoadPeakIsStoragePlusStagingNotPlusLargestTensor) {
  for (const auto [stored, dtype] :
       {std::pair{StDType::kBF16, torch::kFloat32}, std::pair{StDType::kF16, torch::kBFloat16}}) {
    TempDir dir;
    const ModelConfig c = EmbeddingHeavyConfig();
    {
      Model m(c, torch::kCPU, torch::kBFloat16);
      m.InitRandom(2);
      m.Save(dir.str());
    }
    Rewrite(
        dir.str(), [](std::string&, torch::Tensor&) { return true; }, stored);
    const double storage_mib =
        static_cast<double>(c.num_params()) * c10::elementSize(dtype) / (1 << 20);
    const long before = testing::ResetPeakRssKb(true);
    const Model m = Model::Load(dir.str(), torch::kCPU, dtype);
    const double grew_mib = static_cast<double>(testing::ResetPeakRssKb(false) - before) / 1024;
    std::cout << c10::toString(dtype) << " load of " << storage_mib << " MiB: peak RSS +"
              << grew_mib << " MiB\n";
    EXPECT_EQ(m.FileBackedBytes(), 0);
    EXPECT_LT(grew_mib, storage_mib + 12) << c10::toString(dtype);
    EXPECT_GT(grew_mib, 0.9 * storage_mib) << c10::toString(dtype);
  }
}

TEST(Model, LoadsShardedCheckpoint) {
  TempDir dir;
  const Model m = RandomModel(TinyConfig());
  m.Save(dir.str());
  // Split into two shards plus an index.
  std::vector<std::pair<std::string, torch::Tensor>> a, b;
  Json map = Json::object();
  {
    SafetensorsFile f(dir.str() + "/model.safetensors");
    int i = 0;
    for (const auto& n : f.Names()) {
      auto t = torch::empty(f.Get(n).shape, torch::kFloat32);
      ConvertToFloat32(f.Get(n), t.data_ptr<float>());
      const bool first = i++ % 2 == 0;
      (first ? a : b).emplace_back(n, t);
      map[n] = first ? "model-00001-of-00002.safetensors" : "model-00002-of-00002.safetensors";
    }
  }
  const auto write = [&](const std::string& path,
                         const std::vector<std::pair<std::string, torch::Tensor>>& ts) {
    std::vector<TensorToWrite> out;
    for (const auto& [n, t] : ts)
      out.push_back({n, StDType::kF32, std::vector<int64_t>(t.sizes().begin(), t.sizes().end()),
                     t.data_ptr()});
    WriteSafetensors(path, out);
  };
  write(dir.str() + "/model-00001-of-00002.safetensors", a);
  write(dir.str() + "/model-00002-of-00002.safetensors", b);
  std::filesystem::remove(dir.str() + "/model.safetensors");
  std::ofstream(dir.str() + "/model.safetensors.index.json") << Json{{"weight_map", map}}.dump();
  Model back = Model::Load(dir.str(), torch::kCPU);
  EXPECT_TRUE(torch::equal(back.params().flat(), m.params().flat()));
}

TEST(Model, LoadWithoutWeightsSaysWhere) {
  TempDir dir;
  std::ofstream(dir.str() + "/config.json") << TinyConfig().ToHfJson().dump();
  EXPECT_NE(LoadError(dir.str()).find("no model.safetensors"), std::string::npos);
}

TEST(Model, NamesAndGroups) {
  const Model m(TinyConfig(), torch::kCPU);
  EXPECT_EQ(HfWeightName(3, ModuleKind::kGate), "model.layers.3.mlp.gate_proj.weight");
  EXPECT_EQ(ParseHfWeightName("model.layers.12.self_attn.o_proj.weight"),
            (std::pair<int64_t, ModuleKind>{12, ModuleKind::kO}));
  EXPECT_FALSE(ParseHfWeightName("model.layers.1.input_layernorm.weight"));
  EXPECT_EQ(ParseModuleKind("down_proj"), ModuleKind::kDown);
  EXPECT_EQ(m.GroupRows(ModuleKind::kV), (std::pair<int64_t, int64_t>{12, 16}));
  EXPECT_EQ(m.Weight("model.layers.0.self_attn.k_proj.weight").data_ptr<float>(),
            m.GroupWeight(0, LinearGroup::kQkv).data_ptr<float>() + 8 * 8);
  EXPECT_EQ(m.config().num_params(), m.params().numel());
  EXPECT_THROW(m.Weight("model.layers.0.mlp.nope"), std::runtime_error);
}

}  // namespace
}  // namespace seedgrid

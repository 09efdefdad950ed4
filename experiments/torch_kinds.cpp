#include "experiments/torch_kinds.h"

#include <algorithm>
#include <set>

#include <fmt/format.h>

#include "experiments/ablation/ablation.h"
#include "experiments/data/synthetic.h"
#include "experiments/harvest/harvest.h"
#include "experiments/model/config.h"

namespace seedgrid {
namespace {

Json TrainDefaults(int64_t steps, int64_t batch, double lr, int64_t warmup) {
  return {{"steps", steps},   {"batch", batch},       {"lr", lr},        {"weight_decay", 0.01},
          {"warmup", warmup}, {"schedule", "cosine"}, {"grad_clip", 1.0}};
}

// `loss`: "predictable" (synthetic data: only the learnable targets, see
// synth::PredictableTargets) or "all" (every next token; always for file data).
Json PretrainTrainDefaults() {
  Json t = TrainDefaults(600, 64, 3e-3, 30);
  t["loss"] = "predictable";
  return t;
}

void CheckTrain(const Json& t, std::vector<std::string>& p) {
  if (t.at("steps").get<int64_t>() < 1) p.push_back("train.steps: must be >= 1");
  if (t.at("batch").get<int64_t>() < 1) p.push_back("train.batch: must be >= 1");
  if (!(t.at("lr").get<double>() >= 0)) p.push_back("train.lr: must be >= 0");
  if (t.at("weight_decay").get<double>() < 0) p.push_back("train.weight_decay: must be >= 0");
  if (t.at("warmup").get<int64_t>() < 0) p.push_back("train.warmup: must be >= 0");
  const auto s = t.at("schedule").get<std::string>();
  if (s != "cosine" && s != "constant")
    p.push_back(fmt::format("train.schedule: '{}' is not cosine or constant", s));
  if (t.at("grad_clip").get<double>() < 0) p.push_back("train.grad_clip: must be >= 0 (0: off)");
}

std::vector<std::string> ValidatePretrain(const Json& params) {
  std::vector<std::string> p;
  for (auto& s : ModelParamProblems(params.at("model"))) p.push_back(std::move(s));
  CheckTrain(params.at("train"), p);
  if (!(params.at("train").at("lr").get<double>() > 0)) p.push_back("train.lr: must be > 0");
  const auto loss = params.at("train").at("loss").get<std::string>();
  if (loss != "predictable" && loss != "all")
    p.push_back(fmt::format("train.loss: '{}' is not predictable or all", loss));
  const Json& data = params.at("data");
  const auto source = data.at("source").get<std::string>();
  if (source == "synthetic") {
    synth::TaskSpec t;
    t.vocab_size = params.at("model").at("vocab_size").get<int64_t>();
    t.seq_len = params.at("model").at("context").get<int64_t>();
    t.n_content = data.at("n_content").get<int64_t>();
    t.induction_frac = data.at("induction_frac").get<double>();
    t.none_bias = data.at("none_bias").get<double>();
    for (auto& s : t.Problems()) p.push_back(std::move(s));
  } else if (source == "file") {
    if (data.at("path").get<std::string>().empty())
      p.push_back("data.path: required when data.source is file");
  } else {
    p.push_back(fmt::format("data.source: '{}' is not synthetic or file", source));
  }
  if (data.at("seed").get<int64_t>() < 0) p.push_back("data.seed: must be >= 0");
  if (params.at("eval").at("rows").get<int64_t>() < 1) p.push_back("eval.rows: must be >= 1");
  if (!(params.at("init").at("std").get<double>() > 0)) p.push_back("init.std: must be > 0");
  return p;
}

std::vector<std::string> ValidateLoraSteer(const Json& params) {
  std::vector<std::string> p;
  const auto adapter = params.at("adapter").get<std::string>();
  if (adapter != "lora" && adapter != "ia3")
    p.push_back(fmt::format("adapter: '{}' is not lora or ia3", adapter));
  const Json& lora = params.at("lora");
  if (lora.at("rank").get<int64_t>() < 1) p.push_back("lora.rank: must be >= 1");
  if (!(lora.at("alpha").get<double>() > 0)) p.push_back("lora.alpha: must be > 0");
  const double dropout = lora.at("dropout").get<double>();
  if (!(dropout >= 0 && dropout < 1)) p.push_back("lora.dropout: must be in [0, 1)");
  const auto init = lora.at("init").get<std::string>();
  if (init != "kaiming" && init != "gaussian")
    p.push_back(fmt::format("lora.init: '{}' is not kaiming or gaussian", init));
  const Json& targets = params.at("targets");
  std::set<std::string> seen;
  for (const auto& m : targets.at("modules")) {
    static const std::set<std::string> kKnown = {"q", "k", "v", "o", "gate", "up", "down"};
    if (!m.is_string() || !kKnown.count(m.get<std::string>()))
      p.push_back(
          fmt::format("targets.modules: {} is not one of q, k, v, o, gate, up, down", m.dump()));
    else if (!seen.insert(m.get<std::string>()).second)
      p.push_back(fmt::format("targets.modules: {} given twice", m.dump()));
  }
  const Json& layers = targets.at("layers");
  if (layers.size() != 2 || !layers[0].is_number() || !layers[1].is_number()) {
    p.push_back("targets.layers: must be [lo, hi], fractions of depth");
  } else {
    const double lo = layers[0].get<double>(), hi = layers[1].get<double>();
    if (!(lo >= 0 && lo <= hi && hi <= 1))
      p.push_back(fmt::format("targets.layers: [{}, {}] must satisfy 0 <= lo <= hi <= 1", lo, hi));
  }
  CheckTrain(params.at("train"), p);
  const Json& data = params.at("data");
  for (const char* k : {"n_train", "n_eval", "n_kl"})
    if (data.at(k).get<int64_t>() < 1) p.push_back(fmt::format("data.{}: must be >= 1", k));
  const Json& alphas = params.at("eval").at("alphas");
  bool has0 = false, has1 = false;
  for (const auto& a : alphas) {
    if (!a.is_number()) {
      p.push_back(fmt::format("eval.alphas: {} is not a number", a.dump()));
      continue;
    }
    has0 |= a.get<double>() == 0.0;
    has1 |= a.get<double>() == 1.0;
  }
  if (!has0 || !has1)
    p.push_back("eval.alphas: must contain 0 and 1 (steer_delta and acc_at_0/1 use them)");
  return p;
}

}  // namespace

KindConfig PretrainKindConfig() {
  KindConfig k;
  k.name = "pretrain";
  k.summary = "train the base model on the synthetic task; artifact: safetensors checkpoint";
  k.defaults = {
      {"model", ModelConfig::ModelParamDefaults()},
      {"data",
       {{"source", "synthetic"},
        {"path", ""},
        {"dataset", "tokens"},
        {"seed", 0},
        {"n_content", 8},
        {"induction_frac", 0.5},
        {"none_bias", 0.2}}},
      {"train", PretrainTrainDefaults()},
      {"eval", {{"rows", 512}}},
      {"init", {{"std", 0.02}}},
  };
  k.validate = ValidatePretrain;
  k.datasets = [](const Json&, std::string_view) { return std::vector<std::string>{"train/loss"}; };
  return k;
}

KindConfig LoraSteerKindConfig() {
  KindConfig k;
  k.name = "lora_steer";
  k.summary = "train LoRA/IA3 θ+ and θ− from a base model; evaluate α·(Δθ+ − Δθ−)";
  k.defaults = {
      {"base", ""},
      {"adapter", "lora"},
      {"lora", {{"rank", 4}, {"alpha", 8.0}, {"dropout", 0.0}, {"init", "kaiming"}}},
      {"targets", {{"modules", Json::array()}, {"layers", {0.0, 1.0}}}},
      // lr 0: the adapter's default (lora 1e-4, ia3 3e-3), where the α curve of the demo
      // stays monotone over α ∈ [−2, 2]; larger steps over-steer at |α| = 2.
      {"train", TrainDefaults(120, 32, 0.0, 0)},
      {"data", {{"n_train", 512}, {"n_eval", 256}, {"n_kl", 64}}},
      {"eval", {{"alphas", {-2.0, -1.0, 0.0, 1.0, 2.0}}}},
  };
  k.validate = ValidateLoraSteer;
  k.supports_gang = true;
  k.datasets = [](const Json&, std::string_view) {
    return std::vector<std::string>{"train/loss_pos", "train/loss_neg", "eval/alphas",
                                    "eval/logratio",  "eval/pmass",     "eval/kl"};
  };
  return k;
}

void RegisterTorchKindConfigs(KindRegistry& kinds) {
  kinds.Add(PretrainKindConfig());
  kinds.Add(LoraSteerKindConfig());
  // ---- ablation: its owner adds `RegisterAblationConfig(kinds);` here (declared in
  // experiments/ablation/). ----
  RegisterAblationConfig(kinds);
  // ---- harvest: its owner adds `RegisterHarvestConfig(kinds);` here (declared in
  // experiments/harvest/). ----
  RegisterHarvestConfig(kinds);
}

}  // namespace seedgrid

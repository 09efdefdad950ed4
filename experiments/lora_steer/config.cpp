// lora_steer's config half (no LibTorch): params, checks, report defaults, registration.
#include <set>

#include <fmt/format.h>

#include "experiments/lora_steer/layout.h"
#include "experiments/lora_steer/runner.h"
#include "experiments/model/train_params.h"

namespace seedgrid {
namespace {

namespace L = lora_steer_layout;

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
  CheckModelLoad(params.at("model"), p);
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

KindReport LoraSteerReport() {
  KindReport r;
  r.metrics = {L::kSteerDelta, L::kSteerSlope, L::kKlAt1, L::kPmassMin, L::kDwFro};
  KindFigure steer;
  steer.type = "steering_curve";
  steer.renderer = FigureRenderer::kCurve;
  steer.x = L::kEvalAlphas;
  steer.y = L::kEvalLogratio;
  // steer_delta is label-signed: +1 rows should say yes and -1 rows no under the positive
  // persona; the curve plots the same quantity.
  steer.sign = L::kEvalLabel;
  steer.title = "Steering curve, stage {stage}: mean over seeds, band ±1 std";
  steer.xlabel = "α (steering scale: weights θ + α·dW, dW = Δθ+ − Δθ−)";
  steer.ylabel = "mean log p(yes) − log p(no)";
  steer.ylabel_signed = "mean label · (log p(yes) − log p(no))  (toward the + persona)";
  steer.caption =
      "Mean log-ratio log p(yes) − log p(no) on held-out rows (times the row's label where the "
      "shards record one, as steer_delta does) against the steering scale α; a line per config, "
      "the band is ±1 std over {seeds} seeds.";
  KindFigure loss;
  loss.type = "loss_curves";
  loss.renderer = FigureRenderer::kSeries;
  loss.x = "train/step";  // not written today: the x axis is the logged step
  loss.series = {{L::kTrainLossPos, "θ+ adapter (positive persona)"},
                 {L::kTrainLossNeg, "θ− adapter (negative persona)"}};
  loss.title = "Training loss, stage {stage}: mean over seeds, band ±1 std";
  loss.xlabel = "training step";
  loss.ylabel = "loss";
  loss.caption =
      "Training loss ({datasets}) against the step; a line per config, the band is ±1 std over "
      "seeds; long curves are averaged in buckets of equal width.";
  r.figures = {steer, loss};
  return r;
}

}  // namespace

KindConfig LoraSteerKindConfig() {
  KindConfig k;
  k.name = "lora_steer";
  k.summary = "train LoRA/IA3 θ+ and θ− from a base model; evaluate α·(Δθ+ − Δθ−)";
  k.defaults = {
      {"base", ""},
      {"model", ModelLoadDefaults()},
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
    return std::vector<std::string>{L::kTrainLossPos, L::kTrainLossNeg, L::kEvalAlphas,
                                    L::kEvalLogratio, L::kEvalPmass,    L::kEvalKl};
  };
  k.report = LoraSteerReport();
  return k;
}

void RegisterLoraSteerConfig(KindRegistry& kinds) { kinds.Add(LoraSteerKindConfig()); }

}  // namespace seedgrid

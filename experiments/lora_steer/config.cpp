// lora_steer's config half (no LibTorch): params, checks, report defaults, registration.
#include <set>

#include <fmt/format.h>

#include "experiments/data/text_data.h"
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
  const auto text = data::ValidateTextDataParams(params);
  p.insert(p.end(), text.begin(), text.end());
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

// The params a config does not use (KindConfig::inapplicable): reset to their defaults before
// its shard id is derived, so `grid: {adapter: [lora, ia3], lora.rank: [1, 4]}` makes one ia3
// shard per seed, not one per rank. A rule per line: add the next one beside these.
std::vector<std::string> InapplicableLoraSteer(const Json& params) {
  std::vector<std::string> out;
  if (params.at("adapter") != "lora") out.push_back("lora");  // rank, alpha, dropout, init
  if (params.at("data").at("source") != "text")  // the text files and how they are read
    for (const char* k : {"data.tokenizer", "data.template", "data.generation_prompt",
                          "data.train", "data.eval", "data.neutral", "data.columns",
                          "data.answers", "data.max_len", "data.truncation"})
      out.push_back(k);
  return out;
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
  steer.title = "Steering curve, stage {stage}: mean over seeds, band {band}";
  steer.xlabel = "α (steering scale: weights θ + α·dW, dW = Δθ+ − Δθ−)";
  steer.ylabel = "mean log p(yes) − log p(no)";
  steer.ylabel_signed = "mean label · (log p(yes) − log p(no))  (toward the + persona)";
  steer.caption =
      "Mean log-ratio log p(yes) − log p(no) on held-out rows (times the row's label where the "
      "shards record one, as steer_delta does) against the steering scale α; a line per config, "
      "band: {band} over {seeds} seeds.";
  KindFigure loss;
  loss.type = "loss_curves";
  loss.renderer = FigureRenderer::kSeries;
  loss.x = "train/step";  // not written today: the x axis is the logged step
  loss.series = {{L::kTrainLossPos, "θ+ adapter (positive persona)"},
                 {L::kTrainLossNeg, "θ− adapter (negative persona)"}};
  loss.title = "Training loss, stage {stage}: mean over seeds, band {band}";
  loss.xlabel = "training step";
  loss.ylabel = "loss";
  loss.caption =
      "Training loss ({datasets}) against the step; a line per config, band: {band} over "
      "seeds; long curves are averaged in buckets of equal width.";
  r.figures = {steer, loss};
  return r;
}

// n_train, n_eval, n_kl size the synthetic task; with source: text the files give the rows.
Json LoraSteerDataDefaults() {
  Json d = {{"source", "synthetic"}, {"n_train", 512}, {"n_eval", 256}, {"n_kl", 64}};
  d.update(data::TextDataDefaults());
  return d;
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
      {"data", LoraSteerDataDefaults()},
      {data::kDataDirParam, ""},
      {"eval", {{"alphas", {-2.0, -1.0, 0.0, 1.0, 2.0}}}},
  };
  k.validate = ValidateLoraSteer;
  k.inapplicable = InapplicableLoraSteer;
  k.param_docs = {
      {"model.dtype", "compute dtype of the base model: float32 or bfloat16 (docs/models.md)"},
      {"base", "checkpoint directory; empty: the artifact of the needed pretrain shard"},
      {"adapter", "lora or ia3"},
      {"lora.rank", "LoRA rank r (adapter lora)"},
      {"lora.alpha", "LoRA scale numerator: dW = (alpha / r)·B·A (adapter lora)"},
      {"lora.dropout", "dropout on the LoRA input, in [0, 1) (adapter lora)"},
      {"lora.init", "A's init: kaiming or gaussian; B starts at 0 (adapter lora)"},
      {"targets.modules", "adapted modules of q, k, v, o, gate, up, down; []: all"},
      {"targets.layers", "[lo, hi]: the adapted layers, as fractions of depth"},
      {"data.n_train", "training rows per persona"},
      {"data.n_eval", "held-out rows scored at each α"},
      {"data.n_kl", "rows for the KL to the base model"},
      {"data.source", "synthetic (the persona task) or text (your files; docs/data.md)"},
      {"data.tokenizer", "directory of tokenizer.json (+ tokenizer_config.json) (source text)"},
      {"data.template", "chat template: chatml, llama3, llama2, gemma, plain or {custom: ...}"},
      {"data.generation_prompt", "eval prompts end with the assistant header (source text)"},
      {"data.train", "JSONL/CSV of prompt, response_pos, response_neg rows (source text)"},
      {"data.eval", "JSONL/CSV of prompt, label (+1/-1) rows (source text)"},
      {"data.neutral", "JSONL/CSV/TXT of neutral text for the KL (source text)"},
      {"data.columns.prompt", "the file column of the user prompt (train and eval rows)"},
      {"data.columns.response_pos", "train rows: the column of the positive persona's answer"},
      {"data.columns.response_neg", "train rows: the column of the negative persona's answer"},
      {"data.columns.system_pos", "train rows: the column of θ+'s system prompt (optional)"},
      {"data.columns.system_neg", "train rows: the column of θ−'s system prompt (optional)"},
      {"data.columns.system", "eval rows: the column of the system prompt (optional)"},
      {"data.columns.label", "eval rows: the column of the label, +1 or -1"},
      {"data.columns.text", "neutral rows (JSONL/CSV): the column of the text"},
      {"data.answers.yes", "answer strings counted as yes; each must be one token"},
      {"data.answers.no", "answer strings counted as no; each must be one token"},
      {"data.max_len", "tokens per row at most (source text)"},
      {"data.truncation", "which side a long row loses: left or right (source text)"},
      {"data.digest", "set at plan time: SHA-256 of the data and tokenizer files"},
      {"data_dir", "set at plan time: the spec's directory (not part of the shard id)"},
      {"eval.alphas", "steering scales α; must contain 0 and 1"},
  };
  AddTrainParamDocs(k.param_docs);
  for (auto& [key, meaning] : k.param_docs) {
    if (key == "train.lr") meaning = "peak learning rate; 0: the adapter's (lora 1e-4, ia3 3e-3)";
  }
  k.starter_stages = "  - name: base\n    kind: pretrain\n    params: {train: {steps: 20}}\n";
  k.starter_keys = "    needs: base\n";
  k.unhashed_params = {data::kDataDirParam};  // where the spec is, not what is computed
  k.resolve = [](Json& params, const KindConfig::StageContext& stage) {
    return data::ResolveTextData(params, stage.spec_dir, /*needs_train=*/true);
  };
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

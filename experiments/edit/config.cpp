// The edit kind's config half (no LibTorch): params, checks, report defaults, registration.
#include <cmath>
#include <set>

#include <fmt/format.h>

#include "experiments/edit/edit.h"
#include "experiments/edit/layout.h"
#include "experiments/model/train_params.h"

namespace seedgrid {
namespace {

namespace L = edit_layout;

void CheckChoice(const Json& v, const char* key, const std::set<std::string>& accepted,
                 std::vector<std::string>& p) {
  const auto s = v.get<std::string>();
  if (accepted.count(s)) return;
  std::string list;
  for (const auto& a : accepted) list += (list.empty() ? "" : ", ") + a;
  p.push_back(fmt::format("{}: '{}' is not one of {}", key, s, list));
}

void CheckMin(const Json& v, const char* key, int64_t lo, std::vector<std::string>& p) {
  if (v.get<int64_t>() < lo) p.push_back(fmt::format("{}: must be >= {}", key, lo));
}

void CheckFire(const Json& fire, std::vector<std::string>& p) {
  CheckChoice(fire.at("source"), "fire.source", {"rule", "jsonl", "harvest"}, p);
  const auto source = fire.at("source").get<std::string>();
  const bool path = !fire.at("path").get<std::string>().empty();
  if (source == "jsonl" && !path) p.push_back("fire.path: required when fire.source is jsonl");
  if (source == "rule") {
    CheckMin(fire.at("after"), "fire.after", 0, p);
    CheckChoice(fire.at("tokens"), "fire.tokens", {"synthetic", "file"}, p);
    CheckChoice(fire.at("rows_kind"), "fire.rows_kind", {"pretrain", "induction", "persona"}, p);
    const bool file = fire.at("tokens").get<std::string>() == "file";
    if (file && !path) p.push_back("fire.path: required when fire.tokens is file");
    CheckMin(fire.at("rows"), "fire.rows", file ? 0 : 1, p);
  }
  if (source == "harvest") CheckMin(fire.at("component"), "fire.component", 0, p);
  CheckMin(fire.at("target"), "fire.target", 0, p);
}

std::vector<std::string> ValidateEdit(const Json& params) {
  std::vector<std::string> p;
  CheckChoice(params.at("weight").at("module"), "weight.module",
              {"q", "k", "v", "o", "gate", "up", "down"}, p);
  CheckMin(params.at("weight").at("layer"), "weight.layer", 0, p);
  const double lambda = params.at("lambda").get<double>();
  if (!(lambda >= 0 && std::isfinite(lambda))) p.push_back("lambda: must be finite and >= 0");
  const Json& n_train = params.at("n_train");
  if (!n_train.is_null() && !(n_train.is_string() && n_train.get<std::string>() == "all") &&
      !(n_train.is_number_integer() && n_train.get<int64_t>() >= 1))
    p.push_back(fmt::format("n_train: {} is not an integer >= 1 or \"all\"", n_train.dump()));
  CheckMin(params.at("n_eval"), "n_eval", 1, p);
  const Json& train = params.at("train");
  CheckMin(train.at("steps"), "train.steps", 1, p);
  CheckMin(train.at("batch"), "train.batch", 1, p);
  if (!(train.at("lr").get<double>() > 0)) p.push_back("train.lr: must be > 0");
  if (!(train.at("weight_decay").get<double>() >= 0))
    p.push_back("train.weight_decay: must be >= 0");
  if (!(train.at("init_std").get<double>() > 0)) p.push_back("train.init_std: must be > 0");
  CheckFire(params.at("fire"), p);
  const Json& global = params.at("global");
  CheckChoice(global.at("source"), "global.source", {"synthetic", "file"}, p);
  if (global.at("source").get<std::string>() == "file" &&
      global.at("path").get<std::string>().empty())
    p.push_back("global.path: required when global.source is file");
  CheckMin(global.at("rows"), "global.rows", 1, p);
  CheckModelLoad(params.at("model"), p);
  return p;
}

KindFigure Front(const char* type, const char* kl, const char* where) {
  KindFigure f;
  f.type = type;
  f.renderer = FigureRenderer::kPareto;
  f.x = kl;
  f.y = L::kPTarget;
  f.group = "n_train";
  f.title = fmt::format("Editing Pareto front ({}), stage {{stage}}", where);
  f.xlabel = fmt::format("{}: KL(edited ‖ base), {} (lower is better)", kl, where);
  f.ylabel = "p_target: mean P(target) at held-out fire positions";
  f.caption = fmt::format(
      "P(target) at held-out fire positions against the KL {}; a point per config (mean over "
      "{{seeds}} seeds; small circles: single seeds), a front per {{group}}: the configs no other "
      "config of the same {{group}} beats in both.",
      where);
  return f;
}

KindReport EditReport() {
  KindReport r;
  r.metrics = {L::kPTarget, L::kKlSurrounding, L::kKlGlobal, L::kPTargetBase, L::kDeltaFro};
  KindFigure loss;
  loss.type = "edit_loss";
  loss.renderer = FigureRenderer::kSeries;
  loss.series = {{L::kTrainLoss, "loss = CE + λ·KL"},
                 {L::kTrainCe, "CE at fire positions"},
                 {L::kTrainKl, "KL at the other positions"}};
  loss.title = "Edit training, stage {stage}: mean over seeds, band ±1 std";
  loss.xlabel = "training step";
  loss.ylabel = "batch mean";
  loss.caption = "Training terms ({datasets}) against the step; a line per config.";
  loss.by_default = false;
  r.figures = {Front("pareto_front", L::kKlSurrounding, "at the surrounding positions"),
               Front("pareto_front_global", L::kKlGlobal, "on the generic batch"), loss};
  return r;
}

}  // namespace

KindConfig EditKindConfig() {
  KindConfig k;
  k.name = "edit";
  k.summary =
      "rank-1 LoRA edit of one layer: CE of a target token at fire positions + λ·KL elsewhere";
  k.defaults = {
      {"base", ""},
      {"weight", {{"module", "down"}, {"layer", 0}}},
      {"lambda", 1.0},
      {"n_train", nullptr},  // an integer >= 1 or "all"; null: all
      {"n_eval", 64},
      {"train",
       {{"steps", 100}, {"batch", 32}, {"lr", 1e-2}, {"weight_decay", 0.0}, {"init_std", 0.01}}},
      // The default rule edits the synthetic task: after Q (token 2) predict YES (token 3).
      {"fire",
       {{"source", "rule"},
        {"after", 2},
        {"target", 3},
        {"path", ""},
        {"tokens", "synthetic"},
        {"rows_kind", "persona"},
        {"dataset", "tokens"},
        {"rows", 512},
        {"component", 0}}},
      {"global", {{"source", "synthetic"}, {"path", ""}, {"dataset", "tokens"}, {"rows", 32}}},
      {"model", ModelLoadDefaults()},
  };
  k.validate = ValidateEdit;
  k.param_docs = {
      {"base", "checkpoint directory; empty: the artifact of the needed pretrain shard"},
      {"weight.module", "the edited linear map: q, k, v, o, gate, up or down"},
      {"weight.layer", "the edited layer's index"},
      {"lambda", "λ >= 0: weight of the KL to the base model at the non-fire positions"},
      {"n_train", "training windows: an integer >= 1 or \"all\" (null: all)"},
      {"n_eval", "held-out windows the metrics are measured on"},
      {"train.steps", "AdamW steps"},
      {"train.batch", "windows per step"},
      {"train.lr", "AdamW learning rate"},
      {"train.weight_decay", "AdamW weight decay"},
      {"train.init_std", "A ~ init_std·N(0, 1); B starts at 0"},
      {"fire.source", "where windows and fire positions come from: rule, jsonl or harvest"},
      {"fire.after", "rule: fire at every position holding this token"},
      {"fire.target", "rule and harvest: the target token at fire positions"},
      {"fire.path", "jsonl: the file; rule with tokens file: the token HDF5"},
      {"fire.tokens", "rule: synthetic (the task's rows) or file (a token HDF5)"},
      {"fire.rows_kind", "rule on synthetic rows: pretrain, induction or persona"},
      {"fire.dataset", "rule with tokens file: the dataset in fire.path"},
      {"fire.rows", "rule: token windows to read (0: all of a file)"},
      {"fire.component", "harvest: the component whose reservoir examples are edited"},
      {"global.source", "the generic batch for kl_global: synthetic or file"},
      {"global.path", "global.source file: the token HDF5"},
      {"global.dataset", "global.source file: the dataset in that file"},
      {"global.rows", "rows of the generic batch"},
      {"model.dtype", "compute dtype of the base model: float32 or bfloat16 (docs/models.md)"},
  };
  k.starter_stages = "  - name: base\n    kind: pretrain\n    params: {train: {steps: 20}}\n";
  k.starter_keys = "    needs: base\n";
  k.datasets = [](const Json&, std::string_view) {
    return std::vector<std::string>{L::kTrainLoss, L::kEvalPTarget, L::kEvalKl, L::kGlobalKl};
  };
  k.report = EditReport();
  return k;
}

void RegisterEditConfig(KindRegistry& kinds) { kinds.Add(EditKindConfig()); }

}  // namespace seedgrid

// The config half of kind `ablation` (no LibTorch).
#include <fmt/format.h>

#include <cstdint>
#include <set>
#include <string>
#include <vector>

#include "experiments/ablation/ablation.h"
#include "experiments/ablation/layout.h"
#include "experiments/data/text_data.h"
#include "experiments/model/train_params.h"

namespace seedgrid {
namespace {

namespace L = ablation_layout;

// data: the rows of target heads (the synthetic task's, or windows of a text corpus).
void CheckHeadData(const Json& p, std::vector<std::string>& problems) {
  const Json& data = p.at("data");
  const auto source = data.at("source").get<std::string>();
  if (source != "synthetic" && source != "text")
    problems.push_back(fmt::format("data.source: '{}' is not synthetic or text", source));
  if (data.at("window").get<int64_t>() < 4)
    problems.push_back("data.window: must be >= 4 (induction rows repeat its first half)");
  if (data.at("digest") != "")
    problems.push_back(
        "data.digest: set by seedgrid from the data files; do not set it in the spec");
  if (p.at(data::kDataDirParam) != "")
    problems.push_back(std::string(data::kDataDirParam) + ": set by seedgrid; do not set it");
}

// target heads with data.source text: the corpus and tokenizer checked (file:line) and hashed
// into data.digest by pretrain's own resolution. Its tokenizer-against-vocabulary check needs
// the base model, which a needed pretrain shard only makes at run time: the runner checks it.
std::vector<std::string> ResolveHeadCorpus(Json& params, const KindConfig::StageContext& stage) {
  if (params.at("target") != "heads" || params.at("data").at("source") != "text") return {};
  // The base may be a needed pretrain shard's artifact: the runner checks the vocabulary.
  return data::ResolveCorpusData(params, stage.spec_dir, INT64_MAX, "the base's vocab_size");
}

std::vector<std::string> ValidateAblation(const Json& p) {
  std::vector<std::string> problems;
  const auto target = p.at("target").get<std::string>();
  if (target != "dw" && target != "heads")
    problems.push_back(fmt::format("target: '{}' is not dw or heads", target));

  bool has0 = false, has1 = false;
  std::set<double> seen_alpha;
  for (const auto& a : p.at("alphas")) {
    if (!a.is_number()) {
      problems.push_back(fmt::format("alphas: {} is not a number", a.dump()));
      continue;
    }
    const double v = a.get<double>();
    if (!seen_alpha.insert(v).second) problems.push_back(fmt::format("alphas: {} given twice", v));
    has0 |= v == 0.0;
    has1 |= v == 1.0;
  }
  if (!has0 || !has1) problems.push_back("alphas: must contain 0 and 1 (steer_delta uses them)");

  if (p.at("rows").get<int64_t>() < 0)
    problems.push_back("rows: must be >= 0 (0: the steer shard's data.n_eval)");

  static const std::set<std::string> kLenses = {"module", "layer", "svd", "base_svd"};
  std::set<std::string> seen_lens;
  for (const auto& l : p.at("lenses")) {
    if (!l.is_string() || !kLenses.count(l.get<std::string>()))
      problems.push_back(
          fmt::format("lenses: {} is not one of module, layer, svd, base_svd", l.dump()));
    else if (!seen_lens.insert(l.get<std::string>()).second)
      problems.push_back(fmt::format("lenses: {} given twice", l.dump()));
  }

  for (const char* k : {"rows", "cells"})
    if (p.at("batch").at(k).get<int64_t>() < 1)
      problems.push_back(fmt::format("batch.{}: must be >= 1", k));
  for (const char* k : {"task_rows", "induction_rows"})
    if (p.at("heads").at(k).get<int64_t>() < 1)
      problems.push_back(fmt::format("heads.{}: must be >= 1", k));
  CheckModelLoad(p.at("model"), problems);
  CheckHeadData(p, problems);
  return problems;
}

// Tables: only the per-variant retained numbers when there are any (target: dw).
KindReport AblationReport() {
  KindReport r;
  r.metrics = {std::string(L::kRetained) + "*"};
  r.only_these = true;
  KindFigure grid;
  grid.type = "ablation_heatmap";
  grid.renderer = FigureRenderer::kMetricHeatmap;
  grid.prefix = L::kRetained;
  // Rows grouped by lens, in the order the variants are built (docs/ablation.md).
  grid.first = {L::kRetainedFull,
                L::kRetainedZero,
                L::kRetainedRandom,
                std::string(L::kRetained) + "module.*",
                std::string(L::kRetained) + "layer.*",
                std::string(L::kRetained) + "svd.*",
                std::string(L::kRetained) + "base_svd.*"};
  grid.title = "dW ablation, stage {stage}: mean retained over seeds";
  grid.xlabel = "config";
  grid.ylabel = "ablation variant";
  grid.zlabel = "retained (1 = full dW, 0 = zero)";
  grid.caption =
      "retained = (m(variant) − m(zero)) / (m(full) − m(zero)) per ablation variant and config, "
      "mean over up to {seeds} seeds (n/a: no done seed).";
  KindFigure heads;
  heads.type = "head_scores";
  heads.renderer = FigureRenderer::kGroupHeatmaps;
  heads.group = L::kHeads;
  heads.title = "Head ablation, stage {stage}: {dataset}";
  heads.xlabel = "head";
  heads.ylabel = "layer";
  heads.caption =
      "Per attention head (layer × head) of the base model: {dataset}, mean over {n} {shards}.";
  r.figures = {grid, heads};
  return r;
}

// The params a config does not use (KindConfig::inapplicable): each target reads its own.
std::vector<std::string> InapplicableAblation(const Json& params) {
  if (params.at("target") != "heads") return {"heads", "data"};
  std::vector<std::string> out = {"alphas", "rows", "lenses", "batch.cells"};
  if (params.at("data").at("source") == "synthetic")
    out.insert(out.end(), {"data.path", "data.tokenizer", "data.column", "data.window"});
  return out;
}

}  // namespace

KindConfig AblationKindConfig() {
  KindConfig k;
  k.name = "ablation";
  k.summary =
      "dW ablation grid of a lora_steer shard (target: dw) or head ablation of a base model "
      "(target: heads)";
  k.defaults = {
      {"target", "dw"},
      {"base", ""},
      {"alphas", {0.0, 1.0}},
      {"rows", 0},
      {"lenses", {"module", "layer", "svd", "base_svd"}},
      {"batch", {{"rows", 4096}, {"cells", 64}}},
      {"heads", {{"task_rows", 256}, {"induction_rows", 128}}},
      {"model", ModelLoadDefaults()},
      {"data",
       {{"source", "synthetic"},
        {"path", ""},
        {"tokenizer", ""},
        {"column", "text"},
        {"window", 128},
        {"digest", ""}}},
      {data::kDataDirParam, ""},
  };
  k.validate = ValidateAblation;
  k.inapplicable = InapplicableAblation;
  k.param_docs = {
      {"target", "dw (the needed lora_steer shard's dW) or heads (the base model's heads)"},
      {"base", "checkpoint directory; empty: the needed shard's"},
      {"alphas", "dw: evaluated α; must contain 0 and 1"},
      {"rows", "dw: held-out rows; 0: the steer shard's data.n_eval"},
      {"lenses", "dw: variant families beyond the anchors (module, layer, svd, base_svd)"},
      {"batch.rows", "most rows in one forward"},
      {"batch.cells", "dw: most (variant, α) cells in one forward"},
      {"heads.task_rows", "heads: pretraining-mix rows, or most text windows"},
      {"heads.induction_rows", "heads: repeated halves (random, or of the first text windows)"},
      {"model.dtype", "compute dtype of the base model: float32 or bfloat16 (docs/models.md)"},
      {"data.source", "heads: synthetic (the task's rows) or text (windows of data.path)"},
      {"data.path", "heads, source text: the corpus (.txt, .jsonl or .csv; docs/data.md)"},
      {"data.tokenizer", "heads, source text: directory of tokenizer.json"},
      {"data.column", "heads, source text: the text column of a JSONL/CSV corpus"},
      {"data.window",
       "heads, source text: tokens per window (induction rows: its first half twice)"},
      {"data.digest", "set at plan time: SHA-256 of the corpus and tokenizer files"},
      {"data_dir", "set at plan time: the spec's directory (not part of the shard id)"},
  };
  k.unhashed_params = {data::kDataDirParam};  // where the spec is, not what is computed
  k.resolve = ResolveHeadCorpus;
  k.starter_stages =
      "  - name: base\n    kind: pretrain\n    params: {train: {steps: 20}}\n"
      "  - name: steer\n    kind: lora_steer\n    needs: base\n"
      "    params: {train: {steps: 5}}\n";
  k.starter_keys = "    needs: steer\n";
  k.datasets = [](const Json& p, std::string_view) {
    if (p.value("target", std::string("dw")) == "heads") {
      return std::vector<std::string>{L::kHeadsDce, L::kHeadsKl, L::kHeadsPrevToken,
                                      L::kHeadsInduction};
    }
    return std::vector<std::string>{L::kAlphas, L::kManifestVariant, L::kManifestRetained};
  };
  k.report = AblationReport();
  return k;
}

void RegisterAblationConfig(KindRegistry& kinds) { kinds.Add(AblationKindConfig()); }

}  // namespace seedgrid

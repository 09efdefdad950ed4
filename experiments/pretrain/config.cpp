// pretrain's config half (no LibTorch): params, checks, report defaults, registration.
#include <fmt/format.h>

#include "experiments/data/synthetic.h"
#include "experiments/data/text_data.h"
#include "experiments/model/config.h"
#include "experiments/model/train_params.h"
#include "experiments/pretrain/layout.h"
#include "experiments/pretrain/pretrain.h"

namespace seedgrid {
namespace {

namespace L = pretrain_layout;

// `loss`: "predictable" (synthetic data: only the learnable targets, see
// synth::PredictableTargets) or "all" (every next token; always for file data).
Json PretrainTrainDefaults() {
  Json t = TrainDefaults(600, 64, 3e-3, 30);
  t["loss"] = "predictable";
  return t;
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
  } else if (source != "text") {
    p.push_back(fmt::format("data.source: '{}' is not synthetic, file or text", source));
  }
  if (data.at("digest") != "")
    p.push_back("data.digest: set by seedgrid from the data files; do not set it in the spec");
  if (params.at(data::kDataDirParam) != "")
    p.push_back(std::string(data::kDataDirParam) + ": set by seedgrid; do not set it");
  if (data.at("seed").get<int64_t>() < 0) p.push_back("data.seed: must be >= 0");
  if (params.at("eval").at("rows").get<int64_t>() < 1) p.push_back("eval.rows: must be >= 1");
  if (!(params.at("init").at("std").get<double>() > 0)) p.push_back("init.std: must be > 0");
  return p;
}

// The params a config does not use (KindConfig::inapplicable): a synthetic source reads no
// file, so data.path and data.dataset do not change what it computes.
std::vector<std::string> InapplicablePretrain(const Json& params) {
  const auto source = params.at("data").at("source").get<std::string>();
  if (source == "synthetic") return {"data.path", "data.dataset", "data.tokenizer", "data.column"};
  if (source == "file") return {"data.tokenizer", "data.column"};
  return {"data.dataset"};  // text
}

KindReport PretrainReport() {
  KindReport r;
  r.metrics = {L::kFinalLoss, L::kTaskAccuracy};
  KindFigure loss;
  loss.type = "loss_curves";
  loss.renderer = FigureRenderer::kSeries;
  loss.x = "train/step";  // not written today: the x axis is the logged step
  loss.series = {{L::kTrainLoss, "training loss"}};
  loss.title = "Training loss, stage {stage}: mean over seeds, band {band}";
  loss.xlabel = "training step";
  loss.ylabel = "loss";
  loss.caption =
      "Training loss ({datasets}) against the step; a line per config, band: {band} over "
      "seeds; long curves are averaged in buckets of equal width.";
  r.figures = {loss};
  return r;
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
        {"none_bias", 0.2},
        {"tokenizer", ""},  // source: text (docs/data.md)
        {"column", "text"},
        {"digest", ""}}},
      {data::kDataDirParam, ""},
      {"train", PretrainTrainDefaults()},
      {"eval", {{"rows", 512}}},
      {"init", {{"std", 0.02}}},
  };
  k.validate = ValidatePretrain;
  k.inapplicable = InapplicablePretrain;
  k.param_docs = {
      {"model.vocab_size", "tokens in the vocabulary"},
      {"model.d_model", "residual stream width"},
      {"model.n_layers", "transformer blocks"},
      {"model.n_heads", "attention heads"},
      {"model.n_kv_heads", "key/value heads (0: n_heads; fewer: grouped-query attention)"},
      {"model.head_dim", "width of a head (0: d_model / n_heads)"},
      {"model.d_mlp", "MLP hidden width"},
      {"model.context", "positions: the longest sequence"},
      {"model.mlp", "swiglu (gated, SiLU) or gelu"},
      {"model.rope_theta", "RoPE base"},
      {"model.norm_eps", "RMSNorm epsilon"},
      {"model.tie_embeddings", "the unembedding is the embedding matrix"},
      {"model.qk_norm", "RMSNorm on queries and keys (Qwen3)"},
      {"model.attention_bias", "biases on the q, k, v and o projections"},
      {"data.source", "synthetic (the persona and induction task) or file (token rows)"},
      {"data.path", "HDF5 file of int32 token rows (source file)"},
      {"data.dataset", "dataset in that file (source file)"},
      {"data.seed", "seed of the synthetic rows (apart from the shard's seed)"},
      {"data.n_content", "content tokens per synthetic row"},
      {"data.induction_frac", "share of induction rows in the pretraining mix"},
      {"data.none_bias", "SYS_NONE rows answer YES with p = 0.5 + none_bias·h"},
      {"data.tokenizer", "directory of tokenizer.json (source text; docs/data.md)"},
      {"data.column", "the text column of a JSONL/CSV corpus (source text)"},
      {"data.digest", "set at plan time: SHA-256 of the corpus and tokenizer files"},
      {"data_dir", "set at plan time: the spec's directory (not part of the shard id)"},
  };
  AddTrainParamDocs(k.param_docs);
  k.param_docs.insert(k.param_docs.end(),
                      {{"train.loss", "predictable (loss on the predictable tokens only) or all"},
                       {"eval.rows", "held-out persona rows for task_accuracy"},
                       {"init.std", "std of the normal initialisation of the weights"}});
  k.unhashed_params = {data::kDataDirParam};  // where the spec is, not what is computed
  k.resolve = [](Json& params, const KindConfig::StageContext& stage) {
    return data::ResolveCorpus(params, stage.spec_dir);
  };
  k.datasets = [](const Json&, std::string_view) {
    return std::vector<std::string>{L::kTrainLoss};
  };
  k.report = PretrainReport();
  return k;
}

void RegisterPretrainConfig(KindRegistry& kinds) { kinds.Add(PretrainKindConfig()); }

}  // namespace seedgrid

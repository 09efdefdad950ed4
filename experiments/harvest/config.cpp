// The harvest kind's config half (no LibTorch).
#include <cmath>
#include <filesystem>
#include <limits>
#include <set>

#include <fmt/format.h>

#include "experiments/data/text_data.h"
#include "experiments/harvest/harvest.h"
#include "experiments/harvest/layout.h"
#include "experiments/model/config.h"
#include "experiments/model/train_params.h"

namespace seedgrid {
namespace {

namespace L = harvest_layout;

// data.source: text (experiments/harvest/text.h). The files are checked at plan time by
// ResolveHarvest; here only the values.
void ValidateTextSource(const Json& p, std::vector<std::string>& problems) {
  const Json& data = p.at("data");
  if (data.at("path").get<std::string>().empty())
    problems.push_back("data.path: required when data.source is text");
  if (data.at("tokenizer").get<std::string>().empty())
    problems.push_back("data.tokenizer: required when data.source is text");
  if (data.at("rows").get<int64_t>() < 0)
    problems.push_back("data.rows: must be >= 0 (0: every window of the corpus)");
  const int64_t window = data.at("window").get<int64_t>();
  const int64_t context = p.at("reservoir").at("context").get<int64_t>();
  if (window < 0) {
    problems.push_back("data.window: must be >= 0 (0: the model's context)");
  } else if (window > 0 && window < 2 * context + 1) {
    problems.push_back(fmt::format(
        "data.window: {} tokens cannot hold an example of reservoir.context {} ({} tokens)", window,
        context, 2 * context + 1));
  }
}

std::vector<std::string> ValidateHarvest(const Json& p) {
  std::vector<std::string> problems;
  const Json& data = p.at("data");
  const auto source = data.at("source").get<std::string>();
  if (source == "file") {
    if (data.at("path").get<std::string>().empty())
      problems.push_back("data.path: required when data.source is file");
    if (data.at("rows").get<int64_t>() < 0)
      problems.push_back("data.rows: must be >= 0 (0: every row of the file)");
  } else if (source == "text") {
    ValidateTextSource(p, problems);
  } else if (source == "synthetic") {
    if (data.at("rows").get<int64_t>() < 1) problems.push_back("data.rows: must be >= 1");
  } else {
    problems.push_back(fmt::format("data.source: '{}' is not synthetic, file or text", source));
  }
  if (data.at("digest") != "")
    problems.push_back("data.digest: set by seedgrid from the data files; do not set it");
  if (p.at(data::kDataDirParam) != "")
    problems.push_back(std::string(data::kDataDirParam) + ": set by seedgrid; do not set it");
  const auto rows_kind = data.at("rows_kind").get<std::string>();
  if (rows_kind != "pretrain" && rows_kind != "induction" && rows_kind != "persona")
    problems.push_back(
        fmt::format("data.rows_kind: '{}' is not pretrain, induction or persona", rows_kind));
  if (data.at("batch").get<int64_t>() < 1) problems.push_back("data.batch: must be >= 1");

  const Json& comp = p.at("components");
  static const std::set<std::string> kPoints = {"resid_pre", "resid_mid", "resid_post",
                                                "mlp_pre",   "mlp_post",  "attn_z"};
  const auto point = comp.at("point").get<std::string>();
  if (!kPoints.count(point))
    problems.push_back(fmt::format(
        "components.point: '{}' is not one of resid_pre, resid_mid, resid_post, mlp_pre, "
        "mlp_post, attn_z (per-token capture points)",
        point));
  const Json& layers = comp.at("layers");
  if (!layers.is_array()) {
    problems.push_back("components.layers: must be a list of layer indices ([]: every layer)");
  } else {
    std::set<int64_t> seen;
    for (const auto& l : layers) {
      if (!l.is_number_integer() || l.get<int64_t>() < 0)
        problems.push_back(
            fmt::format("components.layers: {} is not a layer index >= 0", l.dump()));
      else if (!seen.insert(l.get<int64_t>()).second)
        problems.push_back(fmt::format("components.layers: {} given twice", l.dump()));
    }
  }

  const double threshold = p.at("threshold").get<double>();
  if (!std::isfinite(threshold)) problems.push_back("threshold: must be finite");
  const Json& res = p.at("reservoir");
  if (res.at("k").get<int64_t>() < 1) problems.push_back("reservoir.k: must be >= 1");
  if (res.at("context").get<int64_t>() < 0) problems.push_back("reservoir.context: must be >= 0");
  if (res.at("per_batch").get<int64_t>() < 1)
    problems.push_back("reservoir.per_batch: must be >= 1");
  const auto weighting = res.at("weighting").get<std::string>();
  if (weighting == "activation") {
    if (threshold < 0)
      problems.push_back(
          "reservoir.weighting: activation weights need threshold >= 0 (weights must be > 0)");
  } else if (weighting != "uniform") {
    problems.push_back(
        fmt::format("reservoir.weighting: '{}' is not uniform or activation", weighting));
  }
  if (p.at("pmi").at("top_k").get<int64_t>() < 1) problems.push_back("pmi.top_k: must be >= 1");
  CheckModelLoad(p.at("model"), problems);
  return problems;
}

// The params a config does not use (KindConfig::inapplicable): a synthetic source reads no
// file, so data.path and data.dataset do not change what it computes.
std::vector<std::string> InapplicableHarvest(const Json& params) {
  const auto source = params.at("data").at("source").get<std::string>();
  if (source == "synthetic")
    return {"data.path", "data.dataset", "data.tokenizer", "data.column", "data.window"};
  if (source == "file") return {"data.tokenizer", "data.column", "data.window"};
  return {"data.dataset", "data.rows_kind"};  // text
}

// The model's vocab at plan time when `base` names a checkpoint directory; otherwise (the
// checkpoint of a needed pretrain shard, not trained yet) no bound: the runner checks the ids.
int64_t PlanTimeVocab(const Json& params, const std::string& spec_dir) {
  const auto base = params.at("base").get<std::string>();
  if (base.empty()) return std::numeric_limits<int64_t>::max();
  std::filesystem::path dir = base;
  if (dir.is_relative()) dir = std::filesystem::path(spec_dir) / dir;
  std::error_code ec;
  if (!std::filesystem::is_regular_file(dir / "config.json", ec))
    return std::numeric_limits<int64_t>::max();
  return ModelConfig::FromHfFile((dir / "config.json").string()).vocab_size;
}

// With data.source text: pretrain's corpus checks (data::ResolveCorpus: the file, the column,
// an empty corpus, the tokenizer, its vocab against the model's), data.digest and data_dir.
std::vector<std::string> ResolveHarvest(Json& params, const KindConfig::StageContext& stage) {
  if (params.at("data").at("source") != "text") return {};
  std::vector<std::string> problems;
  int64_t vocab = std::numeric_limits<int64_t>::max();  // unknown: the runner checks the ids
  try {
    vocab = PlanTimeVocab(params, stage.spec_dir);
  } catch (const std::exception& e) {
    problems.push_back(fmt::format("base: {}", e.what()));
  }
  const std::string vocab_name = params.at("base").get<std::string>() + "'s vocab_size";
  for (auto& s : data::ResolveCorpusData(params, stage.spec_dir, vocab, vocab_name))
    problems.push_back(std::move(s));
  return problems;
}

// Tables over the reduce shards (the report's rule for kinds with has_reduce): every metric.
KindReport HarvestReport() {
  KindReport r;
  KindFigure density;
  density.type = "firing_density";
  density.renderer = FigureRenderer::kLog10Histogram;
  density.y = L::kFiringDensity;
  density.title = "Harvest firing density, stage {stage}";
  density.xlabel = "log10 firing density (fraction of tokens on which a component fires)";
  density.ylabel = "components";
  density.unit = "components";
  density.caption =
      "Histogram of log10 firing density over components; {dead} of {total} components never "
      "fired and are not shown.";
  r.figures = {density};
  return r;
}

}  // namespace

KindConfig HarvestKindConfig() {
  KindConfig k;
  k.name = "harvest";
  k.summary =
      "per-component activation statistics (counts, sums, co-occurrence, token PMI, examples); "
      "exact map/reduce";
  k.defaults = {
      {"base", ""},
      {"model", ModelLoadDefaults()},
      {"data",
       {{"source", "synthetic"},
        {"rows_kind", "pretrain"},
        {"path", ""},
        {"dataset", "tokens"},
        {"rows", 4096},
        {"batch", 32},
        {"tokenizer", ""},  // source: text (experiments/harvest/text.h)
        {"column", "text"},
        {"window", 0},
        {"digest", ""}}},
      {data::kDataDirParam, ""},
      {"components", {{"point", "mlp_post"}, {"layers", Json::array()}}},
      {"threshold", 0.0},
      {"stats", {{"cooc", true}, {"input_tokens", true}, {"output_tokens", true}}},
      {"reservoir", {{"k", 16}, {"context", 4}, {"per_batch", 5}, {"weighting", "uniform"}}},
      {"pmi", {{"top_k", 10}}},
  };
  k.validate = ValidateHarvest;
  k.inapplicable = InapplicableHarvest;
  k.unhashed_params = {data::kDataDirParam};  // where the spec is, not what is computed
  k.resolve = ResolveHarvest;
  k.param_docs = {
      {"model.dtype", "compute dtype of the base model: float32 or bfloat16 (docs/models.md)"},
      {"base", "checkpoint directory; empty: the artifact of the needed pretrain shard"},
      {"data.source", "synthetic (the checkpoint's task), file (token rows) or text (a corpus)"},
      {"data.rows_kind", "synthetic rows: pretrain (the mix), induction or persona"},
      {"data.path", "HDF5 file of int32 token rows (source file)"},
      {"data.dataset", "dataset in that file (source file)"},
      {"data.rows", "rows harvested (source file: 0 = every row; text: 0 = every window)"},
      {"data.tokenizer", "directory of tokenizer.json (source text; docs/harvest.md)"},
      {"data.column", "the text column of a JSONL/CSV corpus (source text)"},
      {"data.window", "tokens per row cut from the corpus stream (source text; 0: model context)"},
      {"data.digest", "set at plan time: SHA-256 of the corpus and tokenizer files"},
      {"data_dir", "set at plan time: the spec's directory (not part of the shard id)"},
      {"data.batch", "rows per global batch"},
      {"components.point", "mlp_post, mlp_pre, resid_pre, resid_mid, resid_post or attn_z"},
      {"components.layers", "layer indices; []: every layer"},
      {"threshold", "a component fires on a token when its activation is > threshold"},
      {"stats.cooc", "C×C co-occurrence counts"},
      {"stats.input_tokens", "input-token counts at firing positions (and input PMI)"},
      {"stats.output_tokens", "next-token probability mass at firing positions (and output PMI)"},
      {"reservoir.k", "example contexts kept per component"},
      {"reservoir.context", "tokens each side of the firing position"},
      {"reservoir.per_batch", "most candidates per component per batch"},
      {"reservoir.weighting", "sampling weight: uniform or activation (needs threshold >= 0)"},
      {"pmi.top_k", "PMI tokens kept per component"},
  };
  k.starter_stages = "  - name: base\n    kind: pretrain\n    params: {train: {steps: 20}}\n";
  k.starter_keys = "    needs: base\n";
  k.has_reduce = true;
  k.supports_gang = true;
  k.datasets = [](const Json&, std::string_view role) {
    std::vector<std::string> d = {L::kNTokens, L::kNRows, L::kFiringCount, L::kActSumPost,
                                  L::kReservoirKey};
    if (role == "reduce") d.insert(d.end(), {L::kFiringDensity, L::kComponentsLayer});
    return d;
  };
  k.report = HarvestReport();
  return k;
}

void RegisterHarvestConfig(KindRegistry& kinds) { kinds.Add(HarvestKindConfig()); }

namespace harvest {

std::string ConfigText(const Json& params) {
  Json p = params;
  for (const char* key : {"shard_index", "shard_count", "role"}) p.erase(key);
  return p.dump();
}

}  // namespace harvest
}  // namespace seedgrid

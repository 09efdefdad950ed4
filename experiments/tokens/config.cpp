// The tokens kind's config half: params, the resolve hook the planner calls, datasets.
#include <fmt/format.h>

#include "experiments/tokens/cache.h"
#include "experiments/tokens/layout.h"
#include "experiments/tokens/tokens.h"

namespace seedgrid {
namespace {

namespace L = tokens_layout;

constexpr char kSpecNamesTokens[] =
    "kind tokens is added by the planner for data.source: text (docs/data.md); a spec does not "
    "name it";

// The kind's validate hook runs only on the stages a spec writes (core/spec/parse.cpp); the
// planner adds the tokens stage itself (core/spec/expand.cpp), so a spec that names the kind is
// an error at plan time, not a shard that fails when it runs.
std::vector<std::string> ValidateTokens(const Json&) { return {kSpecNamesTokens}; }

// The planner passes {format: "", data: the consumer's data params, data_dir}; the cache's
// params keep what tokenization reads (data::TokenCacheParams), or leave format "" (no cache).
std::vector<std::string> ResolveTokens(Json& params, const KindConfig::StageContext& stage) {
  if (params.at("format") == "" && !params.at("data").is_null()) {
    const Json t = data::TokenCacheParams(params.at("data"));
    if (!t.is_null()) {
      params["format"] = t.at("format");
      params["data"] = t.at("data");
    }
  }
  if (params.at("data_dir") == "" && !stage.spec_dir.empty()) params["data_dir"] = stage.spec_dir;
  return {};
}

std::vector<std::string> TokensDatasets(const Json& params, std::string_view) {
  std::vector<std::string> splits;
  const auto format = params.at("format").get<std::string>();
  if (format == "corpus") splits = {L::kCorpus};
  if (format == "steer") splits = {L::kTrainPos, L::kTrainNeg, L::kEval, L::kNeutral};
  std::vector<std::string> out;
  for (const auto& s : splits)
    for (const char* d : {L::kIds, L::kOffsets, L::kLine})
      out.push_back(fmt::format("{}/{}/{}", L::kGroup, s, d));
  return out;
}

}  // namespace

KindConfig TokensKindConfig() {
  KindConfig k;
  k.name = "tokens";
  k.summary =
      "the token cache: text tokenized once into a shard file; added by the planner for every "
      "stage with data.source: text (docs/data.md), never named in a spec";
  k.defaults = {{"format", ""}, {"data", nullptr}, {"data_dir", ""}};
  k.validate = ValidateTokens;
  k.resolve = ResolveTokens;
  k.datasets = TokensDatasets;
  k.unhashed_params = {"data_dir"};
  k.param_docs = {
      {"format", "set by the planner: corpus (a text corpus) or steer (lora_steer's splits)"},
      {"data", "set by the planner: the data params tokenization reads, with their digest"},
      {"data_dir", "set by the planner: the spec's directory (not part of the shard id)"},
  };
  k.report.metrics = {L::kRows, L::kTokens, L::kBytes};
  return k;
}

void RegisterTokensConfig(KindRegistry& kinds) { kinds.Add(TokensKindConfig()); }

}  // namespace seedgrid

// Kind `tokens`: the token cache (docs/data.md, "The token cache"). The planner adds its shards
// (core/spec/expand.cpp): one per distinct text that a shard with data.source: text reads;
// params {format: corpus | steer, data: what tokenization reads, data_dir: the spec's directory,
// not hashed}. The shard's file holds the ids (experiments/tokens/layout.h); the consumers read
// them through experiments/tokens/cache.h. No LibTorch.
#pragma once

#include "core/kinds.h"
#include "core/runner.h"

namespace seedgrid {

KindConfig TokensKindConfig();
void RegisterTokensConfig(KindRegistry& kinds);
void RunTokens(ShardContext& ctx);
void RegisterTokensRunners(RunnerRegistry& runners);

}  // namespace seedgrid

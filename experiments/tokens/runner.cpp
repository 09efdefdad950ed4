// The tokens kind's runner: tokenizes the text its params name into the shard's own file.
#include "experiments/tokens/cache.h"
#include "experiments/tokens/layout.h"
#include "experiments/tokens/tokens.h"

namespace seedgrid {

void RunTokens(ShardContext& ctx) {
  namespace L = tokens_layout;
  const Json& p = ctx.params();
  const auto dir = p.at("data_dir").get<std::string>();
  const auto stats = data::WriteTokenCache(
      ctx.out().path(), p, dir, [&](int64_t done, int64_t total) { ctx.Progress(done, total); });
  for (const auto& [name, value] : data::TokenCacheAttributes(p, dir))
    ctx.out().Attr(L::kGroup, name, value);
  ctx.Metric(L::kRows, static_cast<double>(stats.rows));
  ctx.Metric(L::kTokens, static_cast<double>(stats.tokens));
  ctx.Metric(L::kBytes, static_cast<double>(stats.bytes));
}

void RegisterTokensRunners(RunnerRegistry& runners) { runners.Add("tokens", RunTokens); }

}  // namespace seedgrid

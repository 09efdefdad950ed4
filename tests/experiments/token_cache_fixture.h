// A token cache input for consumer tests (token_cache_test, harvest_text_test, ablation_test):
// the tokens shard file the planner's implicit shard would write for a consumer's `data`, built
// through the same calls as the tokens runner (experiments/tokens/runner.cpp), and the ShardInput
// a consumer sees among its task's inputs. No LibTorch.
#pragma once

#include <filesystem>
#include <string>

#include "core/shard_key.h"
#include "core/store.h"
#include "core/types.h"
#include "experiments/tokens/cache.h"
#include "experiments/tokens/layout.h"

namespace seedgrid::testing {

// `data`: a consumer's data params (data.source text); relative paths in it resolve against
// `dir`, where the file `<name>.h5` is written.
inline ShardInput WriteCache(const std::filesystem::path& dir, const Json& data,
                             const std::string& name) {
  const Json params = data::TokenCacheParams(data);
  const std::string file = (dir / (name + ".h5")).string();
  H5Writer w(file);
  data::WriteTokenCache(file, params, dir.string(), nullptr);
  for (const auto& [k, v] : data::TokenCacheAttributes(params, dir.string()))
    w.Attr(tokens_layout::kGroup, k, v);
  w.Close();
  ShardKey key({.id = ShardId{"0000000000000001"}, .stage = "tokens", .kind = "tokens"}, params,
               Json::object());
  return ShardInput{key, file, ""};
}

}  // namespace seedgrid::testing

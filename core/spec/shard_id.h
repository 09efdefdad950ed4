// Content addressing of shards and specs (internal to core/spec/). The hashed fields and their
// framing are the on-disk identity of every shard: changing a byte here changes every shard id
// (tests/core/spec_test.cpp pins some).
#pragma once

#include <string>
#include <string_view>
#include <vector>

#include "core/hash.h"
#include "core/types.h"

namespace seedgrid::spec_detail {

// One length-prefixed "name:size:value\n" field into h.
void Field(Sha256& h, std::string_view name, std::string_view value);
// The params' dump that is hashed, stored and sent: compact, keys sorted, bad UTF-8 replaced.
std::string CanonicalJson(const Json& j);
// Sha256(kind, params, seed, sorted needs, code tag)[:16 hex].
ShardId ShardIdOf(std::string_view kind, std::string_view params_json, int64_t seed,
                  std::vector<ShardId> needs, std::string_view code_tag);

}  // namespace seedgrid::spec_detail

#include "core/spec/shard_id.h"

#include <algorithm>

#include "core/spec.h"

namespace seedgrid {
namespace spec_detail {

void Field(Sha256& h, std::string_view name, std::string_view value) {
  h.Update(name).Update(":").Update(std::to_string(value.size())).Update(":").Update(value);
  h.Update("\n");
}

std::string CanonicalJson(const Json& j) {
  return j.dump(-1, ' ', false, Json::error_handler_t::replace);
}

ShardId ShardIdOf(std::string_view kind, std::string_view params_json, int64_t seed,
                  std::vector<ShardId> needs, std::string_view code_tag) {
  std::sort(needs.begin(), needs.end());
  Sha256 h;
  Field(h, "seedgrid-shard", "1");
  Field(h, "kind", kind);
  Field(h, "params", params_json);
  Field(h, "seed", std::to_string(seed));
  Field(h, "needs", std::to_string(needs.size()));
  for (const auto& n : needs) Field(h, "need", n.hex);
  Field(h, "code", code_tag);
  return ShardId{h.HexDigest().substr(0, 16)};
}

}  // namespace spec_detail

using spec_detail::CanonicalJson;
using spec_detail::Field;
using spec_detail::ShardIdOf;

std::string SweepSpec::Hash() const {
  Sha256 h;
  Field(h, "spec", source_text);
  for (const auto& o : overrides) Field(h, "override", o);
  return h.HexDigest();
}

ShardId ComputeShardId(std::string_view kind, const Json& params, int64_t seed,
                       std::vector<ShardId> needs, std::string_view code_tag) {
  return ShardIdOf(kind, CanonicalJson(params), seed, std::move(needs), code_tag);
}

}  // namespace seedgrid

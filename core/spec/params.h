// Writing into a stage's params (internal to core/spec/): the parser checks axes with these,
// expansion builds each shard's params with them, so both agree on what an axis key means.
#pragma once

#include <string>

#include "core/types.h"

namespace seedgrid::spec_detail {

// Merges patch into base, maps key by key; anything else replaces.
void DeepMerge(Json& base, const Json& patch);
// params[dotted key] = value (a map merges into a map). False when the path crosses a non-map.
bool ApplyAxis(Json& params, const std::string& key, const Json& value);

}  // namespace seedgrid::spec_detail

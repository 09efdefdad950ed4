// Writing into a stage's params (internal to core/spec/): the parser checks axes with these,
// expansion builds each shard's params with them, so both agree on what an axis key means.
#pragma once

#include <string>

#include "core/kinds.h"
#include "core/types.h"

namespace seedgrid::spec_detail {

// Merges patch into base, maps key by key; anything else replaces.
void DeepMerge(Json& base, const Json& patch);
// params[dotted key] = value (a map merges into a map). False when the path crosses a non-map.
bool ApplyAxis(Json& params, const std::string& key, const Json& value);
// One config's params that do not apply (KindConfig::inapplicable) set back to the kind's
// defaults, and its own axes that set them (the key or one inside it) set to null. True when a
// param's value changed (the config may then be an earlier config of its stage).
bool ResetInapplicable(const KindConfig& kind, Json& params, Json& axes);

}  // namespace seedgrid::spec_detail

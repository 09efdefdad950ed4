// Overrides (`key=value` on the command line) applied to the located tree before it is parsed
// (internal to core/spec/). Grammar in core/spec.h (ParseSpec) and docs/spec.md.
#pragma once

#include <string>

#include "core/spec/yaml_tree.h"

namespace seedgrid::spec_detail {

// Applies override number `idx` (its text `key=value`) to root; the value's nodes are located at
// the override. Problems (bad syntax, a path that does not exist) are added to p.
void ApplyOverride(Node& root, const std::string& text, int idx, Problems& p);

}  // namespace seedgrid::spec_detail

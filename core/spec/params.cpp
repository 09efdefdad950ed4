#include "core/spec/params.h"

namespace seedgrid::spec_detail {

void DeepMerge(Json& base, const Json& patch) {
  if (!base.is_object() || !patch.is_object()) {
    base = patch;
    return;
  }
  for (const auto& [k, v] : patch.items()) DeepMerge(base[k], v);
}

bool ApplyAxis(Json& params, const std::string& key, const Json& value) {
  Json* cur = &params;
  size_t start = 0;
  while (true) {
    size_t dot = key.find('.', start);
    std::string seg = key.substr(start, dot == std::string::npos ? dot : dot - start);
    if (cur->is_null()) *cur = Json::object();
    if (!cur->is_object()) return false;
    Json& next = (*cur)[seg];
    if (dot == std::string::npos) {
      DeepMerge(next, value);
      return true;
    }
    cur = &next;
    start = dot + 1;
  }
}

}  // namespace seedgrid::spec_detail

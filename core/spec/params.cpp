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

bool ResetInapplicable(const KindConfig& kind, Json& params, Json& axes) {
  if (!kind.inapplicable) return false;
  bool changed = false;
  for (const std::string& path : kind.inapplicable(params)) {
    std::string pointer = "/";  // "lora.rank" -> "/lora/rank", with '~' and '/' escaped
    for (char c : path) {
      if (c == '.') {
        pointer += '/';
      } else if (c == '~' || c == '/') {
        pointer += c == '~' ? "~0" : "~1";
      } else {
        pointer += c;
      }
    }
    const Json::json_pointer at(pointer);
    if (!kind.defaults.contains(at)) continue;
    Json& value = params[at];
    if (value != kind.defaults[at]) {
      value = kind.defaults[at];
      changed = true;
    }
    for (auto& [key, v] : axes.items()) {
      if (key == path || key.starts_with(path + ".")) v = nullptr;
    }
  }
  return changed;
}

}  // namespace seedgrid::spec_detail

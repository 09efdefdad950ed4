#include "core/kinds.h"

#include <algorithm>
#include <stdexcept>

namespace seedgrid {

void KindRegistry::Add(KindConfig kind) {
  if (kind.name.empty()) throw std::logic_error("KindRegistry::Add: a kind needs a name");
  std::string name = kind.name;
  for (const auto& f : kind.report.figures) {
    if (f.renderer == FigureRenderer::kPareto && (f.x.empty() || f.y.empty()))
      throw std::logic_error("KindRegistry::Add: kind '" + name + "': figure '" + f.type +
                             "' draws a Pareto front and needs metrics x and y");
  }
  if (!kinds_.emplace(name, std::move(kind)).second) {
    throw std::logic_error("KindRegistry::Add: kind '" + name + "' registered twice");
  }
}

const KindConfig* KindRegistry::Find(const std::string& name) const {
  auto it = kinds_.find(name);
  return it == kinds_.end() ? nullptr : &it->second;
}

std::vector<std::string> KindRegistry::Names() const {
  std::vector<std::string> names;
  names.reserve(kinds_.size());
  for (const auto& [name, kind] : kinds_) names.push_back(name);
  return names;
}

std::vector<std::string> KindRegistry::FigureTypes() const {
  std::vector<std::string> types;
  for (const auto& [name, kind] : kinds_) {
    for (const auto& f : kind.report.figures) types.push_back(f.type);
  }
  std::sort(types.begin(), types.end());
  types.erase(std::unique(types.begin(), types.end()), types.end());
  return types;
}

}  // namespace seedgrid

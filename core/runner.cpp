#include "core/runner.h"

#include <stdexcept>

#include <fmt/format.h>

namespace seedgrid {

void RunnerRegistry::Add(const std::string& kind, Runner runner) {
  if (!runners_.emplace(kind, std::move(runner)).second) {
    throw std::logic_error(fmt::format("runner for kind '{}' registered twice", kind));
  }
}

const Runner* RunnerRegistry::Find(const std::string& kind) const {
  auto it = runners_.find(kind);
  return it == runners_.end() ? nullptr : &it->second;
}

size_t DTypeSize(DType t) {
  switch (t) {
    case DType::kFloat32: return 4;
    case DType::kFloat64: return 8;
    case DType::kInt32: return 4;
    case DType::kInt64: return 8;
    case DType::kUInt8: return 1;
  }
  return 0;
}

}  // namespace seedgrid

#include "coordinator/report/pareto.h"

#include <algorithm>
#include <cmath>
#include <stdexcept>
#include <tuple>

namespace seedgrid::report {

std::vector<size_t> ParetoFront(const std::vector<double>& x, const std::vector<double>& y) {
  if (x.size() != y.size()) throw std::invalid_argument("ParetoFront: x and y differ in size");
  const auto finite = [&](size_t i) { return std::isfinite(x[i]) && std::isfinite(y[i]); };
  std::vector<size_t> front;
  for (size_t i = 0; i < x.size(); ++i) {
    if (!finite(i)) continue;
    bool dominated = false;
    for (size_t j = 0; j < x.size() && !dominated; ++j) {
      dominated = finite(j) && x[j] <= x[i] && y[j] >= y[i] && (x[j] < x[i] || y[j] > y[i]);
    }
    if (!dominated) front.push_back(i);
  }
  std::sort(front.begin(), front.end(), [&](size_t a, size_t b) {
    return std::make_tuple(x[a], -y[a], a) < std::make_tuple(x[b], -y[b], b);
  });
  return front;
}

}  // namespace seedgrid::report

#include "coordinator/report/stats.h"

#include <algorithm>
#include <cmath>
#include <limits>

#include <boost/math/distributions/students_t.hpp>

namespace seedgrid::report {

namespace {
constexpr double kNaN = std::numeric_limits<double>::quiet_NaN();
int Sign(double x) { return (x > 0) - (x < 0); }
}  // namespace

double StudentTQuantile(double p, double df) {
  return boost::math::quantile(boost::math::students_t_distribution<double>(df), p);
}

Summary Summarize(std::span<const double> values) {
  Summary s;
  s.n = values.size();
  if (s.n == 0) {
    s.mean = s.std = s.sem = s.ci_low = s.ci_high = s.min = s.max = s.sign_agreement = kNaN;
    return s;
  }
  // Two passes: the mean first, then squared deviations from it (no cancellation).
  double sum = 0;
  for (double v : values) sum += v;
  s.mean = sum / static_cast<double>(s.n);
  auto [lo, hi] = std::minmax_element(values.begin(), values.end());
  s.min = *lo;
  s.max = *hi;
  size_t agree = 0;
  double ss = 0;
  for (double v : values) {
    ss += (v - s.mean) * (v - s.mean);
    agree += Sign(v) == Sign(s.mean);
  }
  s.sign_agreement = static_cast<double>(agree) / static_cast<double>(s.n);
  if (s.n < 2) {
    s.std = s.sem = s.ci_low = s.ci_high = kNaN;
    return s;
  }
  s.std = std::sqrt(ss / static_cast<double>(s.n - 1));
  s.sem = s.std / std::sqrt(static_cast<double>(s.n));
  const double half = StudentTQuantile(0.975, static_cast<double>(s.n - 1)) * s.sem;
  s.ci_low = s.mean - half;
  s.ci_high = s.mean + half;
  return s;
}

}  // namespace seedgrid::report

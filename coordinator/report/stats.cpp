#include "coordinator/report/stats.h"

#include <algorithm>
#include <cmath>
#include <limits>
#include <map>
#include <vector>

#include <boost/math/distributions/binomial.hpp>
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

double SignTestP(size_t k_plus, size_t k_minus) {
  const size_t n = k_plus + k_minus;
  if (n == 0) return 1.0;
  const boost::math::binomial_distribution<double> bin(static_cast<double>(n), 0.5);
  const double tail = boost::math::cdf(bin, static_cast<double>(std::min(k_plus, k_minus)));
  return std::min(1.0, 2.0 * tail);
}

PairedSummary ComparePaired(std::span<const double> a, std::span<const double> b) {
  PairedSummary out;
  std::vector<double> d(std::min(a.size(), b.size()));
  for (size_t i = 0; i < d.size(); ++i) {
    d[i] = a[i] - b[i];
    (d[i] > 0 ? out.a_greater : d[i] < 0 ? out.b_greater : out.ties)++;
  }
  out.diff = Summarize(d);
  out.sign_p = d.empty() ? kNaN : SignTestP(out.a_greater, out.b_greater);
  return out;
}

std::vector<double> MeanRanks(std::span<const double> values) {
  std::vector<size_t> order(values.size());
  for (size_t i = 0; i < order.size(); ++i) order[i] = i;
  std::stable_sort(order.begin(), order.end(),
                   [&](size_t x, size_t y) { return values[x] < values[y]; });
  std::vector<double> ranks(values.size());
  for (size_t i = 0; i < order.size();) {
    size_t j = i;
    while (j + 1 < order.size() && values[order[j + 1]] == values[order[i]]) ++j;
    const double mean = (static_cast<double>(i) + static_cast<double>(j)) / 2.0 + 1.0;
    for (size_t k = i; k <= j; ++k) ranks[order[k]] = mean;
    i = j + 1;
  }
  return ranks;
}

double Spearman(std::span<const double> a, std::span<const double> b) {
  if (a.size() != b.size() || a.size() < 2) return kNaN;
  const std::vector<double> ra = MeanRanks(a), rb = MeanRanks(b);
  const double mean = (static_cast<double>(a.size()) + 1.0) / 2.0;  // of any rank vector
  double sab = 0, saa = 0, sbb = 0;
  for (size_t i = 0; i < ra.size(); ++i) {
    sab += (ra[i] - mean) * (rb[i] - mean);
    saa += (ra[i] - mean) * (ra[i] - mean);
    sbb += (rb[i] - mean) * (rb[i] - mean);
  }
  if (saa == 0 || sbb == 0) return kNaN;
  return sab / std::sqrt(saa * sbb);
}

double KendallW(const std::vector<std::vector<double>>& rankings) {
  const double m = static_cast<double>(rankings.size());
  if (rankings.size() < 2 || rankings[0].size() < 2) return kNaN;
  const size_t items = rankings[0].size();
  const double n = static_cast<double>(items);
  std::vector<double> sums(items, 0.0);
  double ties = 0;  // Σ_j Σ (t³ − t)
  for (const auto& r : rankings) {
    if (r.size() != items) return kNaN;
    std::map<double, size_t> groups;
    for (size_t i = 0; i < items; ++i) sums[i] += r[i], ++groups[r[i]];
    for (const auto& [rank, t] : groups) {
      const double td = static_cast<double>(t);
      ties += td * td * td - td;
    }
  }
  const double centre = m * (n + 1) / 2;
  double s = 0;
  for (double r : sums) s += (r - centre) * (r - centre);
  const double denom = m * m * (n * n * n - n) - m * ties;
  return denom > 0 ? 12 * s / denom : kNaN;
}

}  // namespace seedgrid::report

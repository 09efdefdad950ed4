// Seed statistics for reports. One place decides how a set of per-seed values becomes a row of
// a table, so the Markdown, LaTeX, CSV and HTML outputs cannot disagree.
//
// Conventions (stated in every table header):
//   std  = sample standard deviation, ddof = 1 (NaN when n < 2);
//   sem  = std / sqrt(n);
//   ci95 = mean ± t(0.975, n − 1) · sem, the two-sided 95% Student-t interval (NaN when n < 2);
//   sign agreement = fraction of values whose sign (−1, 0, +1) equals the sign of the mean.
// The t quantile comes from Boost.Math (students_t), not from a hand-typed table.
#pragma once

#include <cstddef>
#include <span>

namespace seedgrid::report {

struct Summary {
  size_t n = 0;
  double mean = 0;
  double std = 0;
  double sem = 0;
  double ci_low = 0;
  double ci_high = 0;
  double min = 0;
  double max = 0;
  double sign_agreement = 0;
};

// Quantile p of Student's t distribution with df degrees of freedom (df > 0, 0 < p < 1).
double StudentTQuantile(double p, double df);

// Summary of finite values (the caller filters NaN/inf out and reports them as missing).
// Fields that are undefined for this n are NaN: everything for n = 0; std, sem and the
// interval for n = 1.
Summary Summarize(std::span<const double> values);

}  // namespace seedgrid::report

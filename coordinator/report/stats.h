// Seed statistics for reports. One place decides how a set of per-seed values becomes a row of
// a table, so the Markdown, LaTeX, CSV and HTML outputs cannot disagree.
//
// Conventions (stated in every table header):
//   std  = sample standard deviation, ddof = 1 (NaN when n < 2);
//   sem  = std / sqrt(n);
//   ci95 = mean ± t(0.975, n − 1) · sem, the two-sided 95% Student-t interval (NaN when n < 2);
//   sign agreement = fraction of values whose sign (−1, 0, +1) equals the sign of the mean.
// The t quantile comes from Boost.Math (students_t), not from a hand-typed table.
//
// Multi-seed analysis (docs/report.md, "Statistics", has each formula):
//   paired difference   d_i = a_i − b_i over pairs; mean, std (ddof = 1), the same t-interval;
//   sign test           exact two-sided binomial test of #(d > 0) against p = 1/2, ties dropped:
//                       p = min(1, 2·P(X ≤ min(k+, k−))), X ~ Binomial(k+ + k−, 1/2);
//   ranks               1 = smallest, ties get the mean of the ranks they span;
//   Spearman ρ          Pearson correlation of the two rank vectors (ties handled by the mean
//                       ranks; NaN when a ranking is constant);
//   Kendall's W         m raters (seeds) ranking n items (configs), R_i the rank sum of item i,
//                       S = Σ (R_i − m(n+1)/2)², T_j = Σ (t³ − t) over rater j's tie groups:
//                       W = 12·S / (m²(n³ − n) − m·Σ T_j)   (1: every rater agrees; 0: none).
#pragma once

#include <cstddef>
#include <span>
#include <vector>

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

// Paired comparison of a and b (same length, pair i = a[i], b[i]; finite values).
struct PairedSummary {
  Summary diff;  // of d_i = a_i − b_i
  size_t a_greater = 0, b_greater = 0, ties = 0;
  double sign_p = 0;  // exact two-sided sign test; 1 when every pair ties; NaN when n = 0
};
PairedSummary ComparePaired(std::span<const double> a, std::span<const double> b);

// Exact two-sided sign test: p of seeing a split at least as uneven as k_plus : k_minus under
// Binomial(k_plus + k_minus, 1/2) (Boost.Math's binomial cdf). 1 when both are 0.
double SignTestP(size_t k_plus, size_t k_minus);

// Ranks of the values, 1 = smallest, ties sharing the mean of their ranks.
std::vector<double> MeanRanks(std::span<const double> values);

// Spearman's ρ of two equally long samples (the Pearson correlation of their mean ranks).
double Spearman(std::span<const double> a, std::span<const double> b);

// Kendall's coefficient of concordance W with the tie correction, from each rater's ranks
// (rankings[j][i]: rater j's rank of item i, as MeanRanks gives them). NaN with fewer than two
// raters or items, or when every rater ties every item.
double KendallW(const std::vector<std::vector<double>>& rankings);

}  // namespace seedgrid::report

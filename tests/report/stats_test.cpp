#include "coordinator/report/stats.h"

#include <algorithm>
#include <cmath>
#include <numeric>
#include <random>
#include <vector>

#include <gtest/gtest.h>

namespace seedgrid::report {
namespace {

TEST(StudentT, QuantilesMatchPublishedValues) {
  // Two-sided 95% critical values t(0.975, df), e.g. NIST/SEMATECH e-Handbook table 1.3.6.7.2.
  EXPECT_NEAR(StudentTQuantile(0.975, 1), 12.706204736174698, 1e-9);
  EXPECT_NEAR(StudentTQuantile(0.975, 2), 4.302652729911275, 1e-9);
  EXPECT_NEAR(StudentTQuantile(0.975, 4), 2.7764451051977987, 1e-9);
  EXPECT_NEAR(StudentTQuantile(0.975, 30), 2.0422724563012373, 1e-9);
  EXPECT_NEAR(StudentTQuantile(0.025, 2), -4.302652729911275, 1e-9);
}

TEST(Summarize, SampleStatisticsWithDdofOne) {
  std::vector<double> v = {1, 2, 3, 4};
  Summary s = Summarize(v);
  EXPECT_EQ(s.n, 4u);
  EXPECT_DOUBLE_EQ(s.mean, 2.5);
  EXPECT_NEAR(s.std, std::sqrt(5.0 / 3.0), 1e-15);  // ddof = 1; ddof = 0 would be sqrt(1.25)
  EXPECT_NEAR(s.sem, std::sqrt(5.0 / 3.0) / 2.0, 1e-15);
  EXPECT_NEAR(s.ci_low, 2.5 - 3.182446305284263 * s.sem, 1e-12);
  EXPECT_NEAR(s.ci_high, 2.5 + 3.182446305284263 * s.sem, 1e-12);
  EXPECT_EQ(s.min, 1);
  EXPECT_EQ(s.max, 4);
  EXPECT_EQ(s.sign_agreement, 1.0);
}

TEST(Summarize, SignAgreementCountsSeedsWithTheMeansSign) {
  std::vector<double> v = {-1, 2, 3};
  EXPECT_NEAR(Summarize(v).sign_agreement, 2.0 / 3.0, 1e-15);
  std::vector<double> w = {-3, 0, 1};
  EXPECT_NEAR(Summarize(w).sign_agreement, 1.0 / 3.0, 1e-15);
}

TEST(Summarize, UndefinedFieldsAreNaN) {
  std::vector<double> one = {7};
  Summary s = Summarize(one);
  EXPECT_EQ(s.n, 1u);
  EXPECT_EQ(s.mean, 7);
  EXPECT_TRUE(std::isnan(s.std));
  EXPECT_TRUE(std::isnan(s.ci_low));
  Summary e = Summarize(std::vector<double>{});
  EXPECT_EQ(e.n, 0u);
  EXPECT_TRUE(std::isnan(e.mean));
}

TEST(Summarize, NoCancellationForLargeOffsets) {
  std::vector<double> v = {1e9 + 1, 1e9 + 2, 1e9 + 3};
  EXPECT_NEAR(Summarize(v).std, 1.0, 1e-6);
}

// Hand-derived: P(X <= k) for X ~ Binomial(n, 1/2) is sum_{i<=k} C(n, i) / 2^n.
TEST(SignTest, ExactTwoSidedBinomial) {
  EXPECT_DOUBLE_EQ(SignTestP(5, 0), 2.0 / 32);  // 2 * C(5,0)/2^5
  EXPECT_DOUBLE_EQ(SignTestP(0, 5), 2.0 / 32);  // symmetric
  EXPECT_NEAR(SignTestP(8, 2), 2.0 * (1 + 10 + 45) / 1024, 1e-15);
  EXPECT_DOUBLE_EQ(SignTestP(3, 3), 1.0);  // 2 * 42/64 capped at 1
  EXPECT_DOUBLE_EQ(SignTestP(0, 0), 1.0);
  EXPECT_NEAR(SignTestP(1, 11), 2.0 * (1 + 12) / 4096, 1e-15);
}

TEST(Paired, DifferencesIntervalAndSignTestDropTies) {
  std::vector<double> a = {3, 5, 4, 6}, b = {1, 2, 4, 3};  // d = 2, 3, 0, 3
  PairedSummary p = ComparePaired(a, b);
  EXPECT_EQ(p.diff.n, 4u);
  EXPECT_DOUBLE_EQ(p.diff.mean, 2.0);
  EXPECT_NEAR(p.diff.std, std::sqrt(6.0 / 3.0), 1e-15);  // Σ(d−2)² = 0 + 1 + 4 + 1
  EXPECT_NEAR(p.diff.ci_high - p.diff.mean, 3.182446305284263 * std::sqrt(2.0) / 2.0, 1e-12);
  EXPECT_EQ(p.a_greater, 3u);
  EXPECT_EQ(p.b_greater, 0u);
  EXPECT_EQ(p.ties, 1u);
  EXPECT_DOUBLE_EQ(p.sign_p, 2.0 / 8);  // n = 3 after the tie is dropped
  EXPECT_TRUE(std::isnan(ComparePaired(std::vector<double>{}, std::vector<double>{}).sign_p));
}

TEST(Ranks, TiesShareTheMeanRank) {
  std::vector<double> v = {10, 20, 20, 5};
  EXPECT_EQ(MeanRanks(v), (std::vector<double>{2, 3.5, 3.5, 1}));
  std::vector<double> all = {1, 1, 1};
  EXPECT_EQ(MeanRanks(all), (std::vector<double>{2, 2, 2}));
}

TEST(Spearman, WithoutTiesIsOneMinusSixSumD2AndWithTiesPearsonOfRanks) {
  std::vector<double> a = {1, 2, 3, 4, 5}, b = {2, 1, 4, 3, 5};
  EXPECT_NEAR(Spearman(a, b), 1 - 6.0 * 4 / (5 * 24), 1e-15);  // Σd² = 4
  std::vector<double> c = {1, 2, 3, 4}, d = {10, 20, 20, 30};  // ranks 1, 2.5, 2.5, 4
  EXPECT_NEAR(Spearman(c, d), 4.5 / std::sqrt(5 * 4.5), 1e-15);
  std::vector<double> flat = {1, 1, 1, 1};
  EXPECT_TRUE(std::isnan(Spearman(c, flat)));
  std::vector<double> rev = {4, 3, 2, 1};
  EXPECT_NEAR(Spearman(c, rev), -1.0, 1e-15);
}

TEST(KendallW, HandDerivedWithAndWithoutTies) {
  // Two raters, 4 items: rank sums 3, 3, 6, 8 around 5: S = 18; W = 12·18 / (4·60) = 0.9.
  EXPECT_NEAR(KendallW({{1, 2, 3, 4}, {2, 1, 3, 4}}), 0.9, 1e-15);
  // Rater 2 ties items in pairs: sums 2.5, 3.5, 6.5, 7.5: S = 17; T = 2·(2³ − 2) = 12;
  // W = 12·17 / (4·60 − 2·12) = 204 / 216.
  EXPECT_NEAR(KendallW({{1, 2, 3, 4}, {1.5, 1.5, 3.5, 3.5}}), 204.0 / 216, 1e-15);
  EXPECT_NEAR(KendallW({{1, 2, 3}, {1, 2, 3}, {1, 2, 3}}), 1.0, 1e-15);
  EXPECT_TRUE(std::isnan(KendallW({{1, 2, 3}})));
}

// Without ties W = ((m − 1)·mean ρ + 1) / m over all rater pairs: an identity independent of
// either implementation's formula, checked on random permutations.
TEST(KendallW, MatchesTheMeanSpearmanIdentityWithoutTies) {
  std::mt19937 rng(3);
  for (int trial = 0; trial < 20; ++trial) {
    const size_t m = 2 + trial % 4, n = 3 + trial % 5;
    std::vector<std::vector<double>> r(m, std::vector<double>(n));
    for (auto& row : r) {
      std::iota(row.begin(), row.end(), 1.0);
      std::shuffle(row.begin(), row.end(), rng);
    }
    double rho = 0;
    size_t pairs = 0;
    for (size_t i = 0; i < m; ++i) {
      for (size_t j = i + 1; j < m; ++j) rho += Spearman(r[i], r[j]), ++pairs;
    }
    rho /= static_cast<double>(pairs);
    const double md = static_cast<double>(m);
    EXPECT_NEAR(KendallW(r), ((md - 1) * rho + 1) / md, 1e-12) << trial;
  }
}

}  // namespace
}  // namespace seedgrid::report

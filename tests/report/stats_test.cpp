#include "coordinator/report/stats.h"

#include <cmath>
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

}  // namespace
}  // namespace seedgrid::report

#include "core/live.h"

#include <gtest/gtest.h>
#include <unistd.h>

#include <cstdio>
#include <filesystem>
#include <fstream>

namespace seedgrid {
namespace {

TEST(LiveCoalescer, TakesAtMostOncePerInterval) {
  LiveCoalescer c;  // kLiveInterval
  int messages = 0;
  int64_t points = 0;
  // 10 s of a loop that reports a point every millisecond, taken whenever asked (every step).
  for (int64_t step = 0; step < 10'000; ++step) {
    const double now = 100 + step * 0.001;
    c.Add("loss", step, 1.0 / (step + 1));
    if (auto m = c.Take(now)) {
      ++messages;
      ASSERT_EQ(m->size(), 1u);
      EXPECT_LE((*m)[0].steps.size(), kLiveMaxPoints);
      EXPECT_EQ((*m)[0].steps.back(), step);  // the newest point is always sent
      points += static_cast<int64_t>((*m)[0].steps.size());
    }
  }
  EXPECT_GE(messages, 10);
  EXPECT_LE(messages, 11);  // the first at once, then one a second
  EXPECT_LE(points, 11 * static_cast<int64_t>(kLiveMaxPoints));
}

TEST(LiveCoalescer, ThinsEvenlyAndKeepsTheNewest) {
  LiveCoalescer c(LiveCoalescer::Options{1, 4, 8});
  for (int64_t step = 0; step < 100; ++step) c.Add("loss", step, static_cast<double>(step));
  auto m = c.Flush();
  ASSERT_TRUE(m);
  const auto& curve = (*m)[0];
  EXPECT_LE(curve.steps.size(), 8u);
  EXPECT_GE(curve.steps.size(), 4u);
  EXPECT_EQ(curve.steps.front(), 0);
  EXPECT_EQ(curve.steps.back(), 99);
  for (size_t i = 0; i < curve.steps.size(); ++i) {
    EXPECT_EQ(curve.values[i], static_cast<double>(curve.steps[i]));  // pairs stay together
    if (i) EXPECT_LT(curve.steps[i - 1], curve.steps[i]);
  }
  EXPECT_FALSE(c.Flush());  // emptied
}

TEST(LiveCoalescer, BoundsCurvesPerShardAndDropsNonFiniteValues) {
  LiveCoalescer c(LiveCoalescer::Options{1, 2, 8});
  c.Add("a", 0, 1);
  c.Add("b", 0, 2);
  c.Add("c", 0, 3);  // a third name: dropped
  c.Add("a", 1, std::nan(""));
  auto m = c.Take(0);
  ASSERT_TRUE(m);
  ASSERT_EQ(m->size(), 2u);
  EXPECT_EQ((*m)[0], (LiveCurve{"a", {0}, {1}}));
  EXPECT_EQ((*m)[1], (LiveCurve{"b", {0}, {2}}));
  c.Add("c", 1, 3);  // still over the bound after a take
  c.Add("b", 1, 4);
  EXPECT_FALSE(c.Take(0.5));  // within the interval
  m = c.Take(1.0);
  ASSERT_TRUE(m);
  EXPECT_EQ(*m, (std::vector<LiveCurve>{LiveCurve{"b", {1}, {4}}}));
  c.Reset();  // a new shard: new names allowed
  c.Add("c", 0, 5);
  EXPECT_TRUE(c.Take(1.1));
}

TEST(LiveSink, PointsGoToTheInstalledSinkOnly) {
  struct Collect : LiveSink {
    std::vector<std::string> got;
    void Point(std::string_view n, int64_t s, double v) override {
      got.push_back(std::string(n) + ":" + std::to_string(s) + ":" + std::to_string(int(v)));
    }
    void File(const std::string& p) override { got.push_back("file:" + p); }
  } sink;
  LivePoint("before", 0, 1);  // no sink: nothing
  {
    ScopedLiveSink scope(&sink);
    LivePoint("loss", 3, 2);
    LiveFile("/x/metrics.jsonl");
  }
  LivePoint("after", 0, 1);
  EXPECT_EQ(sink.got, (std::vector<std::string>{"loss:3:2", "file:/x/metrics.jsonl"}));
}

TEST(JsonlTail, ReadsWholeNewLinesWithAStep) {
  const std::string path =
      (std::filesystem::temp_directory_path() / ("live_tail_" + std::to_string(::getpid())))
          .string();
  std::remove(path.c_str());
  JsonlTail tail(path);
  std::vector<std::tuple<std::string, int64_t, double>> got;
  auto collect = [&](const std::string& n, int64_t s, double v) { got.emplace_back(n, s, v); };
  tail.Poll(collect);  // no file yet
  EXPECT_TRUE(got.empty());
  {
    std::ofstream f(path, std::ios::app);
    f << R"({"name": "loss", "value": 0.5, "step": 1})"
      << "\n"
      << R"({"name": "acc", "value": 0.9})"
      << "\n"  // a scalar: not a curve point
      << "{oops\n"
      << R"({"name": "loss", "value": 0.25, "st)";  // written half so far
  }
  tail.Poll(collect);
  ASSERT_EQ(got.size(), 1u);
  EXPECT_EQ(got[0], std::make_tuple(std::string("loss"), int64_t{1}, 0.5));
  {
    std::ofstream f(path, std::ios::app);
    f << R"(ep": 2})"
      << "\n";
  }
  tail.Poll(collect);
  ASSERT_EQ(got.size(), 2u);
  EXPECT_EQ(got[1], std::make_tuple(std::string("loss"), int64_t{2}, 0.25));
  tail.Poll(collect);  // nothing new
  EXPECT_EQ(got.size(), 2u);
  // The runner moves the file away as the command ends (its scratch dir published): the last
  // lines are still read.
  const std::string moved = path + ".moved";
  std::rename(path.c_str(), moved.c_str());
  {
    std::ofstream f(moved, std::ios::app);
    f << R"({"name": "loss", "value": 0.125, "step": 3})"
      << "\n";
  }
  std::remove(moved.c_str());
  tail.Poll(collect);
  ASSERT_EQ(got.size(), 3u);
  EXPECT_EQ(got[2], std::make_tuple(std::string("loss"), int64_t{3}, 0.125));
}

}  // namespace
}  // namespace seedgrid

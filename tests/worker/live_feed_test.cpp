// The executor's live feed (worker/live_feed.h): a command's live file tailed, the points sent
// before the shard ends, nothing outside a shard.
#include "worker/live_feed.h"

#include <gtest/gtest.h>
#include <unistd.h>

#include <filesystem>
#include <fstream>
#include <mutex>

namespace seedgrid {
namespace {

namespace fs = std::filesystem;

TEST(ThreadedLiveFeed, TailsTheShardsLiveFileAndSendsTheRestAtItsEnd) {
  const fs::path dir = fs::temp_directory_path() / ("live_feed_" + std::to_string(::getpid()));
  fs::create_directories(dir);
  const std::string file = (dir / "metrics.jsonl").string();
  std::mutex mu;
  std::vector<LivePoints> sent;
  // A clock that never moves past the first take: only End() can send the rest.
  ThreadedLiveFeed feed(
      [&](const LivePoints& p) {
        std::lock_guard lock(mu);
        sent.push_back(p);
      },
      [] { return 0.0; }, 0.01);
  feed.Point("ignored", 0, 1);  // no shard yet
  feed.Begin(ShardId{"abc"}, 3);
  feed.File(file);
  {
    std::ofstream f(file);
    for (int step = 0; step < 200; ++step) {
      f << "{\"name\": \"loss\", \"value\": " << 1.0 / (step + 1) << ", \"step\": " << step
        << "}\n";
    }
  }
  feed.Point("acc", 7, 0.5);
  feed.End();
  feed.Point("late", 1, 1);  // after the shard: dropped
  feed.End();                // nothing more
  std::lock_guard lock(mu);
  ASSERT_FALSE(sent.empty());
  ASSERT_LE(sent.size(), 2u);  // the first take (due at once) and the end's
  std::vector<int64_t> loss_steps;
  bool acc = false;
  for (const auto& p : sent) {
    EXPECT_EQ(p.id.hex, "abc");
    EXPECT_EQ(p.attempt, 3);
    for (const auto& c : p.curves) {
      EXPECT_NE(c.name, "ignored");
      EXPECT_NE(c.name, "late");
      EXPECT_LE(c.steps.size(), kLiveMaxPoints);
      if (c.name == "loss") loss_steps.insert(loss_steps.end(), c.steps.begin(), c.steps.end());
      acc = acc || c.name == "acc";
    }
  }
  EXPECT_TRUE(acc);
  ASSERT_FALSE(loss_steps.empty());
  EXPECT_EQ(loss_steps.back(), 199);  // the newest line reached the coordinator's side
  fs::remove_all(dir);
}

}  // namespace
}  // namespace seedgrid

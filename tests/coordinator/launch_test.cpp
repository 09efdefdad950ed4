// RecordLaunch writes every shard's spec as planned, and ReconcileLaunch reads it back.
#include "coordinator/launch.h"

#include <unistd.h>

#include <filesystem>

#include <fmt/format.h>
#include <gtest/gtest.h>

namespace seedgrid {
namespace {

namespace fs = std::filesystem;

TEST(RecordLaunch, EveryShardsSpecIsRecordedAsPlanned) {
  char tmpl[] = "/tmp/seedgrid-launch-XXXXXX";
  const std::string dir = ::mkdtemp(tmpl);
  {
    Plan plan;
    plan.spec.name = "sw";
    // Needs long enough to live on the heap (the insert binds the needs' JSON as a view), and
    // every role.
    std::vector<ShardId> needs;
    const ShardRole roles[] = {ShardRole::kSingle, ShardRole::kMap, ShardRole::kReduce};
    for (int i = 0; i < 40; ++i) {
      ShardPlan s;
      s.key = ShardKey({.id = ShardId{fmt::format("{:016x}", 0x1000 + i)},
                        .stage = i < 20 ? "a" : "b",
                        .kind = "noop",
                        .seed = i,
                        .role = roles[i % 3],
                        .params_json = fmt::format("{{\"x\":{}}}", i),
                        .axes_json = "{}",
                        .needs = i >= 20 ? needs : std::vector<ShardId>{}});
      s.stage_index = i < 20 ? 0 : 1;
      if (i < 20) needs.push_back(s.key.id());
      plan.shards.push_back(s);
    }
    Registry reg(dir + "/registry.sqlite", Registry::Mode::kWrite);
    LaunchFacts facts;
    facts.out_dir = dir;
    facts.quiet = true;
    RecordLaunch(reg, plan, facts);
    const auto rows = reg.Shards("sw");
    ASSERT_EQ(rows.size(), plan.shards.size());
    for (const auto& r : rows) {
      const ShardPlan& s = plan.shards[static_cast<size_t>(r.key.seed())];
      EXPECT_EQ(r.key, s.key) << r.key.id().hex;  // every field, the role and needs included
      EXPECT_EQ(r.stage_index, s.stage_index);
    }
  }
  fs::remove_all(dir);
}

}  // namespace
}  // namespace seedgrid

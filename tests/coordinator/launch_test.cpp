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
    // Needs long enough to live on the heap: the rows are views, the JSON must outlive them.
    std::vector<ShardId> needs;
    for (int i = 0; i < 40; ++i) {
      ShardPlan s;
      s.id = ShardId{fmt::format("{:016x}", 0x1000 + i)};
      s.stage = i < 20 ? "a" : "b";
      s.stage_index = i < 20 ? 0 : 1;
      s.kind = "noop";
      s.seed = i;
      s.params_json = fmt::format("{{\"x\":{}}}", i);
      s.axes_json = "{}";
      if (i >= 20) s.needs = needs;
      if (i < 20) needs.push_back(s.id);
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
      const ShardPlan& s = plan.shards[static_cast<size_t>(r.seed)];
      EXPECT_EQ(r.id, s.id);
      EXPECT_EQ(r.stage, s.stage);
      EXPECT_EQ(r.needs, s.needs) << r.id.hex;
      EXPECT_EQ(r.params.dump(), s.params_json);
    }
  }
  fs::remove_all(dir);
}

}  // namespace
}  // namespace seedgrid

#include "coordinator/tasks.h"

#include <gtest/gtest.h>

#include "core/protocol.h"

namespace seedgrid {
namespace {

// A plan of a stage `a` (two seeds) and a reduce stage `b` that needs both; no registry.
struct Fixture {
  Plan plan;
  LaunchStates states;

  Fixture() {
    plan.spec.name = "sw";
    auto shard = [](std::string id, std::string stage, int64_t seed, std::vector<ShardId> needs,
                    ShardRole role = ShardRole::kSingle) {
      ShardPlan s;
      s.key = ShardKey({.id = ShardId{std::move(id)},
                        .stage = std::move(stage),
                        .kind = "noop",
                        .seed = seed,
                        .role = role,
                        .params_json = "{\"x\":" + std::to_string(seed) + "}",
                        .axes_json = "{}",
                        .needs = std::move(needs)});
      s.resources.max_attempts = 2;
      return s;
    };
    plan.shards.push_back(shard("aa01", "a", 1, {}));
    plan.shards.push_back(shard("ab02", "a", 2, {}));
    plan.shards.push_back(
        shard("bb03", "b", 0, {ShardId{"ab02"}, ShardId{"aa01"}}, ShardRole::kReduce));
    plan.shards[2].resources.ranks = 2;
    const size_t n = plan.shards.size();
    states.states.resize(n);
    for (size_t i = 0; i < n; ++i) {
      const ShardKey& k = plan.shards[i].key;
      states.out_paths.push_back("/out/sw/" + k.stage() + "/" + k.id().hex + ".h5");
    }
    states.attempt_numbers.assign(n, 0);
    states.recompute.assign(n, 0);
  }

  void Failed(size_t i, int attempts) {
    states.states[i].status = ShardStatus::kFailed;
    states.states[i].attempts = attempts;
  }
};

TEST(BuildTasks, MessageCarriesTheShardAndItsOutPath) {
  Fixture f;
  const auto tasks = BuildTasks(f.plan, f.states, {});
  ASSERT_EQ(tasks.size(), 3u);
  const RunShard& m = tasks[2].msg;
  EXPECT_EQ(m.key, f.plan.shards[2].key);  // the plan's key, as it is
  EXPECT_EQ(m.key.id().hex, "bb03");
  EXPECT_EQ(m.sweep, "sw");
  EXPECT_EQ(m.key.stage(), "b");
  EXPECT_EQ(m.key.role(), ShardRole::kReduce);
  EXPECT_EQ(m.key.needs_json(), "[\"ab02\",\"aa01\"]");
  EXPECT_EQ(m.out_path, "/out/sw/b/bb03.h5");
  EXPECT_EQ(m.artifact_dir, ArtifactDirFor("/out/sw/b/bb03.h5"));
  EXPECT_EQ(tasks[2].ranks, 2);
  EXPECT_EQ(tasks[2].max_attempts, 2);
  EXPECT_EQ(tasks[0].msg.key.role(), ShardRole::kSingle);
  EXPECT_EQ(tasks[0].msg.key.needs_json(), "[]");
}

TEST(BuildTasks, NeedsBecomeTaskIndicesAndInputsCarryTheDependencysOutPath) {
  Fixture f;
  const auto tasks = BuildTasks(f.plan, f.states, {});
  EXPECT_EQ(tasks[2].needs, (std::vector<int>{1, 0}));
  ASSERT_EQ(tasks[2].msg.inputs.size(), 2u);
  const InputRef& in = tasks[2].msg.inputs[0];
  EXPECT_EQ(in.key, f.plan.shards[1].key);
  EXPECT_EQ(in.key.id().hex, "ab02");
  EXPECT_EQ(in.key.stage(), "a");
  EXPECT_EQ(in.key.seed(), 2);
  EXPECT_EQ(in.key.params_json(), "{\"x\":2}");
  EXPECT_EQ(in.path, "/out/sw/a/ab02.h5");
  EXPECT_EQ(in.artifact_dir, ArtifactDirFor("/out/sw/a/ab02.h5"));
  EXPECT_EQ(tasks[2].msg.inputs[1].path, "/out/sw/a/aa01.h5");
  EXPECT_TRUE(tasks[0].needs.empty());
  EXPECT_TRUE(tasks[0].msg.inputs.empty());
}

TEST(BuildTasks, StatesAsRecordedAndAttemptNumbersContinue) {
  Fixture f;
  f.states.states[0].status = ShardStatus::kDone;
  f.states.states[0].attempts = 1;
  f.Failed(1, 2);
  f.states.attempt_numbers[1] = 4;  // two preempted attempts numbered besides the charged ones
  const auto tasks = BuildTasks(f.plan, f.states, {});
  EXPECT_EQ(tasks[0].status, ShardStatus::kDone);
  EXPECT_EQ(tasks[0].attempt_numbers, 1);            // no rows numbered: the charged attempts
  EXPECT_EQ(tasks[1].status, ShardStatus::kFailed);  // not a rerun: stays failed
  EXPECT_EQ(tasks[1].attempts, 2);
  EXPECT_EQ(tasks[1].attempt_numbers, 4);
  EXPECT_EQ(tasks[1].budget_base, 0);
  EXPECT_EQ(tasks[2].status, ShardStatus::kPending);
}

TEST(BuildTasks, RecomputedShardGetsAFreshBudget) {
  Fixture f;
  f.states.states[0].attempts = 2;  // done once, its file lost: back to pending
  f.states.recompute[0] = 1;
  const auto tasks = BuildTasks(f.plan, f.states, {});
  EXPECT_EQ(tasks[0].budget_base, 2);
  EXPECT_EQ(tasks[1].budget_base, 0);
}

TEST(BuildTasks, RerunRequeuesFailedShardsWithAFreshBudget) {
  Fixture f;
  f.Failed(0, 2);
  f.Failed(1, 2);
  f.states.attempt_numbers[0] = 3;
  const auto tasks = BuildTasks(f.plan, f.states, RerunOptions{true, {}});
  for (int i : {0, 1}) {
    EXPECT_EQ(tasks[i].status, ShardStatus::kPending) << i;
    EXPECT_EQ(tasks[i].attempts, 2) << i;
    EXPECT_EQ(tasks[i].budget_base, 2) << i;
  }
  EXPECT_EQ(tasks[0].attempt_numbers, 3);  // numbering goes on: the next attempt is 4
}

TEST(BuildTasks, RerunWithShardPrefixesRequeuesOnlyThoseFailedShards) {
  Fixture f;
  f.Failed(0, 2);
  f.Failed(1, 2);
  f.states.states[2].status = ShardStatus::kDone;
  // "ab" selects ab02 only; "bb" names a done shard, which stays done.
  const auto tasks = BuildTasks(f.plan, f.states, RerunOptions{true, {"ab", "bb"}});
  EXPECT_EQ(tasks[0].status, ShardStatus::kFailed);
  EXPECT_EQ(tasks[0].budget_base, 0);
  EXPECT_EQ(tasks[1].status, ShardStatus::kPending);
  EXPECT_EQ(tasks[1].budget_base, 2);
  EXPECT_EQ(tasks[2].status, ShardStatus::kDone);
  // A prefix is a prefix: "a0" is not in any id's start.
  const auto none = BuildTasks(f.plan, f.states, RerunOptions{true, {"a0"}});
  EXPECT_EQ(none[0].status, ShardStatus::kFailed);
  EXPECT_EQ(none[1].status, ShardStatus::kFailed);
}

TEST(BuildTasks, PrefixesWithoutRerunChangeNothing) {
  Fixture f;
  f.Failed(1, 2);
  const auto tasks = BuildTasks(f.plan, f.states, RerunOptions{false, {"ab"}});
  EXPECT_EQ(tasks[1].status, ShardStatus::kFailed);
  EXPECT_EQ(tasks[1].budget_base, 0);
}

}  // namespace
}  // namespace seedgrid

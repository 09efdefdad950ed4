#include "coordinator/scheduler.h"

#include <gtest/gtest.h>

#include <functional>
#include <set>

#include "tests/support/memory_comm.h"

namespace seedgrid {
namespace {

using testing::MemoryComm;
using testing::Wire;

SchedTask Task(std::string id, std::vector<int> needs = {}, int max_attempts = 3, int ranks = 1) {
  SchedTask t;
  t.msg.id = ShardId{std::move(id)};
  t.msg.stage = "s";
  t.needs = std::move(needs);
  t.max_attempts = max_attempts;
  t.ranks = ranks;
  return t;
}

// Drives a scheduler with in-memory workers; `outcome(id, attempt)` decides each result.
struct Harness {
  Scheduler sched;
  MemoryComm comm;
  std::vector<std::string> order;  // dispatch order (ids)
  std::function<Outcome(const std::string&, int)> outcome = [](auto&, int) { return Outcome::kOk; };

  Harness(std::vector<SchedTask> tasks, int window = 2) : sched(std::move(tasks), {window, 64}) {}

  void Join(int rank) { sched.OnMessage(WorkerId{rank}, Wire(Hello{"h", rank, "", 1, 1, ""}), 0, comm); }

  // Answers one queued RunShard of `rank`. Returns false if it had none.
  bool Step(int rank) {
    ToWorker m;
    if (!comm.Pop(rank, &m)) return false;
    if (!std::holds_alternative<RunShard>(m)) return false;
    const auto& r = std::get<RunShard>(m);
    order.push_back(r.id.hex);
    ShardDone d;
    d.id = r.id;
    d.attempt = r.attempt;
    d.outcome = outcome(r.id.hex, r.attempt);
    if (d.outcome != Outcome::kOk) d.error = "boom";
    sched.OnMessage(WorkerId{rank}, Wire(d), 1, comm);
    return true;
  }

  void RunToEnd(std::vector<int> ranks) {
    for (int guard = 0; guard < 100000 && !sched.Finished(); ++guard) {
      bool any = false;
      for (int r : ranks) any |= Step(r);
      if (!any) break;
    }
  }
};

TEST(Scheduler, PullKeepsWindowInFlightPerWorker) {
  std::vector<SchedTask> tasks;
  for (int i = 0; i < 10; ++i) tasks.push_back(Task("t" + std::to_string(i)));
  Harness h(std::move(tasks), 2);
  h.Join(1);
  h.Join(2);
  EXPECT_EQ(h.comm.Pending(1), 2u);
  EXPECT_EQ(h.comm.Pending(2), 2u);
  EXPECT_EQ(h.sched.counts().running, 4);
  h.Step(1);  // one done -> refilled at once
  EXPECT_EQ(h.comm.Pending(1), 2u);
  h.RunToEnd({1, 2});
  EXPECT_TRUE(h.sched.Finished());
  EXPECT_EQ(h.sched.counts().done, 10);
  EXPECT_EQ(h.order.size(), 10u);
}

TEST(Scheduler, NeedsAreHonoured) {
  // base -> {a, b} -> c
  Harness h({Task("base"), Task("a", {0}), Task("b", {0}), Task("c", {1, 2})}, 2);
  h.Join(1);
  EXPECT_EQ(h.comm.Pending(1), 1u) << "only base is ready";
  h.RunToEnd({1});
  ASSERT_EQ(h.order.size(), 4u);
  EXPECT_EQ(h.order.front(), "base");
  EXPECT_EQ(h.order.back(), "c");
}

TEST(Scheduler, RetriesUntilMaxAttemptsThenFailsAndBlocksDependents) {
  Harness h({Task("flaky", {}, 3), Task("bad", {}, 2), Task("after_bad", {1}), Task("ok")}, 1);
  h.outcome = [](const std::string& id, int attempt) {
    if (id == "flaky") return attempt < 3 ? Outcome::kCrash : Outcome::kOk;
    if (id == "bad") return Outcome::kError;
    return Outcome::kOk;
  };
  h.Join(1);
  h.RunToEnd({1});
  const auto& c = h.sched.counts();
  EXPECT_TRUE(h.sched.Finished());
  EXPECT_EQ(c.done, 2);    // flaky (3rd attempt) + ok
  EXPECT_EQ(c.failed, 1);  // bad
  EXPECT_EQ(c.blocked, 1); // after_bad never dispatched
  EXPECT_EQ(h.sched.tasks()[0].attempts, 3);  // two crashes and the success
  EXPECT_EQ(h.sched.tasks()[1].attempts, 2);
  EXPECT_EQ(std::count(h.order.begin(), h.order.end(), "after_bad"), 0);
  // Every finished attempt was reported as an event with the status it led to.
  int finished = 0, retried = 0;
  for (const auto& e : h.sched.TakeEvents()) {
    if (auto* f = std::get_if<FinishedEvent>(&e)) {
      ++finished;
      retried += f->new_status == ShardStatus::kPending;
    }
  }
  EXPECT_EQ(finished, 3 + 2 + 1);
  EXPECT_EQ(retried, 2 + 1);
}

TEST(Scheduler, PreemptionMarksInFlightNotCharged) {
  std::vector<SchedTask> tasks;
  for (int i = 0; i < 6; ++i) tasks.push_back(Task("t" + std::to_string(i)));
  Harness h(std::move(tasks), 2);
  h.Join(1);
  h.Step(1);
  h.sched.TakeEvents();
  h.sched.Preempt(5);
  EXPECT_TRUE(h.sched.Finished());
  EXPECT_TRUE(h.sched.preempted());
  EXPECT_EQ(h.sched.counts().preempted, 2);
  for (const auto& t : h.sched.tasks()) {
    if (t.status == ShardStatus::kPreempted) EXPECT_EQ(t.attempts, 0);
  }
  // A late answer for a preempted shard is ignored, and nothing more is dispatched.
  ToWorker m;
  h.comm.Pop(1, &m);
  ShardDone late;
  late.id = std::get<RunShard>(m).id;
  late.attempt = std::get<RunShard>(m).attempt;
  h.sched.OnMessage(WorkerId{1}, Wire(late), 6, h.comm);
  EXPECT_EQ(h.sched.counts().done, 1);
  EXPECT_EQ(h.sched.counts().preempted, 2);
}

TEST(Scheduler, ResumeTreatsOrphansAndPreemptedAsPendingAndSkipsDone) {
  auto a = Task("a");
  a.status = ShardStatus::kDone;
  auto b = Task("b", {0});
  b.status = ShardStatus::kRunning;  // orphan of a dead launch
  auto c = Task("c");
  c.status = ShardStatus::kPreempted;
  c.attempts = 1;
  Harness h({a, b, c});
  EXPECT_EQ(h.sched.counts().done, 1);
  EXPECT_EQ(h.sched.counts().pending, 2);
  h.Join(1);
  h.RunToEnd({1});
  EXPECT_EQ(h.order, (std::vector<std::string>{"b", "c"}));
  EXPECT_EQ(h.sched.counts().done, 3);
}

TEST(Scheduler, GangWaitsForEnoughIdleWorkersAndGoesToAllOfThem) {
  Harness h({Task("single1"), Task("gang", {}, 1, 2), Task("single2")}, 2);
  h.Join(1);
  h.Join(2);
  // single1 went to worker 1; the gang must wait until both workers are idle.
  EXPECT_EQ(h.comm.Pending(1), 1u);
  EXPECT_EQ(h.comm.Pending(2), 0u) << "worker 2 is held for the gang";
  h.Step(1);
  ASSERT_EQ(h.comm.Pending(1), 1u);
  ASSERT_EQ(h.comm.Pending(2), 1u);
  ToWorker m1, m2;
  h.comm.Pop(1, &m1);
  h.comm.Pop(2, &m2);
  const auto& g1 = std::get<RunShard>(m1);
  EXPECT_EQ(g1.id.hex, "gang");
  EXPECT_EQ(g1.gang, (std::vector<int32_t>{1, 2}));
  EXPECT_EQ(std::get<RunShard>(m2).gang_id, g1.gang_id);
  // The gang completes only when both ranks reported.
  ShardDone d;
  d.id = g1.id;
  d.attempt = g1.attempt;
  d.metrics = {{"m", 1.0}};
  EXPECT_EQ(h.comm.Pending(1) + h.comm.Pending(2), 0u) << "gang members take nothing else";
  h.sched.OnMessage(WorkerId{2}, Wire(d), 1, h.comm);
  EXPECT_EQ(h.sched.counts().done, 1);  // single1 only: the gang waits for its other rank
  h.sched.OnMessage(WorkerId{1}, Wire(d), 1, h.comm);
  EXPECT_EQ(h.sched.counts().done, 2);
  h.RunToEnd({1, 2});
  EXPECT_EQ(h.sched.counts().done, 3);
}

TEST(Scheduler, AffinityPrefersShardsNeedingWhatTheWorkerRanLast) {
  // Two bases; their dependents are interleaved in plan order.
  std::vector<SchedTask> tasks = {Task("base0"), Task("base1")};
  for (int i = 0; i < 4; ++i) {
    tasks.push_back(Task("x" + std::to_string(i), {0}));
    tasks.push_back(Task("y" + std::to_string(i), {1}));
  }
  Harness h(std::move(tasks), 1);
  h.Join(1);
  h.RunToEnd({1});
  // After base1 the worker keeps to base1's dependents first, then the others, never alternating.
  std::vector<std::string> expect = {"base0", "base1", "y0", "y1", "y2", "y3", "x0", "x1", "x2", "x3"};
  EXPECT_EQ(h.order, expect);
}

TEST(Scheduler, UnsatisfiableRanksIsReported) {
  Harness h({Task("g", {}, 1, 4)});
  EXPECT_EQ(h.sched.UnsatisfiableRanks(2), 4);
  EXPECT_EQ(h.sched.UnsatisfiableRanks(4), 0);
}

}  // namespace
}  // namespace seedgrid

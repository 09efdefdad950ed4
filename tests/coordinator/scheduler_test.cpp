#include "coordinator/scheduler.h"

#include <gtest/gtest.h>

#include <algorithm>
#include <functional>
#include <set>

#include "tests/support/memory_comm.h"

namespace seedgrid {
namespace {

using testing::MemoryComm;
using testing::Wire;

SchedTask Task(std::string id, std::vector<int> needs = {}, int max_attempts = 3, int ranks = 1) {
  SchedTask t;
  t.msg.key = ShardKey({.id = ShardId{std::move(id)}, .stage = "s"});
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

  void Join(int rank) {
    sched.OnMessage(WorkerId{rank}, Wire(Hello{"h", rank, "", 1, 1, ""}), 0, comm);
  }

  // Answers one queued RunShard of `rank`. Returns false if it had none.
  bool Step(int rank) {
    ToWorker m;
    if (!comm.Pop(rank, &m)) return false;
    if (!std::holds_alternative<RunShard>(m)) return false;
    const auto& r = std::get<RunShard>(m);
    order.push_back(r.key.id().hex);
    ShardDone d;
    d.id = r.key.id();
    d.attempt = r.attempt;
    d.outcome = outcome(r.key.id().hex, r.attempt);
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

TEST(Scheduler, SecondSlotsOnlyWhileShardsAreShort) {
  // A worker answers its queued shards, each reporting `seconds` of run time.
  auto answer = [](Harness& h, int rank, double seconds) {
    ToWorker m;
    ASSERT_TRUE(h.comm.Pop(rank, &m));
    const auto& r = std::get<RunShard>(m);
    ShardDone d;
    d.id = r.key.id();
    d.attempt = r.attempt;
    d.outcome = Outcome::kOk;
    d.start = 100;
    d.end = 100 + seconds;
    h.sched.OnMessage(WorkerId{rank}, Wire(d), 1, h.comm);
  };
  for (double seconds : {0.001, 2.0}) {
    std::vector<SchedTask> tasks;
    for (int i = 0; i < 20; ++i) tasks.push_back(Task("t" + std::to_string(i)));
    Harness h(std::move(tasks), 2);
    h.Join(1);
    EXPECT_EQ(h.comm.Pending(1), 2u);  // nothing known yet: the window is used
    answer(h, 1, seconds);
    answer(h, 1, seconds);
    // Short shards: the second slot hides the round trip. Long ones: a shard queued behind a
    // running one could wait for it while another worker idles, for a negligible gain.
    EXPECT_EQ(h.comm.Pending(1), seconds < 0.05 ? 2u : 1u) << seconds << " s shards";
  }
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
  EXPECT_EQ(c.done, 2);                       // flaky (3rd attempt) + ok
  EXPECT_EQ(c.failed, 1);                     // bad
  EXPECT_EQ(c.blocked, 1);                    // after_bad never dispatched
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
  late.id = std::get<RunShard>(m).key.id();
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
  EXPECT_EQ(g1.key.id().hex, "gang");
  EXPECT_EQ(g1.gang, (std::vector<int32_t>{1, 2}));
  EXPECT_EQ(std::get<RunShard>(m2).gang_id, g1.gang_id);
  // The gang completes only when both ranks reported.
  ShardDone d;
  d.id = g1.key.id();
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
  std::vector<std::string> expect = {"base0", "base1", "y0", "y1", "y2",
                                     "y3",    "x0",    "x1", "x2", "x3"};
  EXPECT_EQ(h.order, expect);
}

// A shard run inside the worker process (inline or gang) with a timeout.
SchedTask Watched(std::string id, double timeout_s, int max_attempts = 2, int ranks = 1) {
  SchedTask t = Task(std::move(id), {}, max_attempts, ranks);
  t.msg.isolation = Isolation::kInline;
  t.msg.timeout_s = timeout_s;
  return t;
}

std::vector<FinishedEvent> Finished(Scheduler& s) {
  std::vector<FinishedEvent> out;
  for (auto& e : s.TakeEvents()) {
    if (auto* f = std::get_if<FinishedEvent>(&e)) out.push_back(*f);
  }
  return out;
}

// The RunShard messages queued for `rank`, popped.
std::vector<RunShard> Drain(MemoryComm& comm, int rank) {
  std::vector<RunShard> out;
  ToWorker m;
  while (comm.Pop(rank, &m)) {
    if (auto* r = std::get_if<RunShard>(&m)) out.push_back(*r);
  }
  return out;
}

TEST(Scheduler, InlineShardPastItsDeadlineTimesOutRetiresItsWorkerAndRetriesElsewhere) {
  Harness h({Watched("hang", 10), Task("a"), Task("b")}, 2);
  h.Join(1);  // at t=0: the watched shard goes to the idle worker and holds its whole window
  h.Join(2);
  auto to1 = Drain(h.comm, 1);
  ASSERT_EQ(to1.size(), 1u);
  EXPECT_EQ(to1[0].key.id().hex, "hang");
  EXPECT_EQ(h.comm.Pending(2), 1u);  // a (b waits: fewer ready shards than workers)
  h.sched.TakeEvents();
  // The deadline is dispatch + timeout + max(5 s, 10 %) = 15.
  EXPECT_TRUE(h.sched.has_deadlines());
  h.sched.Tick(14.9, h.comm);
  EXPECT_TRUE(h.sched.retired().empty());
  EXPECT_TRUE(Finished(h.sched).empty());
  h.sched.Tick(15.5, h.comm);
  EXPECT_EQ(h.sched.retired(), (std::vector<int>{1}));
  auto fin = Finished(h.sched);
  ASSERT_EQ(fin.size(), 1u);
  EXPECT_EQ(fin[0].done.outcome, Outcome::kTimeout);
  EXPECT_EQ(fin[0].done.attempt, 1);
  EXPECT_EQ(fin[0].worker.rank, 1);
  EXPECT_EQ(fin[0].new_status, ShardStatus::kPending);  // charged, 1 of 2: retried
  EXPECT_EQ(fin[0].attempts, 1);
  EXPECT_NE(fin[0].done.error.find("timeout after 15.5 s (limit 10 s)"), std::string::npos)
      << fin[0].done.error;
  EXPECT_NE(fin[0].done.error.find("worker rank 1 (isolation: inline)"), std::string::npos)
      << fin[0].done.error;
  EXPECT_NE(fin[0].done.error.find("retired"), std::string::npos);
  // The retry waits for worker 2 to be idle (b, ahead of it, takes the second slot), then goes
  // there; worker 1 gets nothing more.
  EXPECT_EQ(h.comm.Pending(2), 2u);  // a, b
  EXPECT_EQ(h.sched.counts().running, 2);
  h.Step(2);
  EXPECT_EQ(h.comm.Pending(2), 1u);
  h.Step(2);
  auto to2 = Drain(h.comm, 2);
  ASSERT_EQ(to2.size(), 1u);
  EXPECT_EQ(to2[0].key.id().hex, "hang");
  EXPECT_EQ(to2[0].attempt, 2);
  EXPECT_EQ(h.comm.Pending(1), 0u);
  // Worker 1's late answer for the timed-out attempt is ignored.
  ShardDone late;
  late.id = to1[0].key.id();
  late.attempt = 1;
  late.outcome = Outcome::kOk;
  h.sched.OnMessage(WorkerId{1}, Wire(late), 16, h.comm);
  EXPECT_EQ(h.sched.counts().done, 2);
  EXPECT_EQ(h.sched.counts().running, 1);
  EXPECT_EQ(h.comm.Pending(1), 0u);
  // The retry succeeds on worker 2.
  ShardDone ok;
  ok.id = to2[0].key.id();
  ok.attempt = 2;
  h.sched.OnMessage(WorkerId{2}, Wire(ok), 17, h.comm);
  EXPECT_TRUE(h.sched.Finished());
  EXPECT_EQ(h.sched.counts().done, 3);
  EXPECT_EQ(h.sched.counts().blocked, 0);
  EXPECT_EQ(h.sched.tasks()[0].attempts, 2);
  EXPECT_EQ(h.comm.Pending(1), 0u);
  h.sched.Tick(1000, h.comm);  // the retry's deadline, past: it finished in time
  EXPECT_FALSE(h.sched.has_deadlines());
  EXPECT_EQ(h.sched.retired(), (std::vector<int>{1}));
}

TEST(Scheduler, WatchedShardFinishedInTimeKeepsItsWorker) {
  Harness h({Watched("w", 60), Task("x")}, 2);
  h.Join(1);
  EXPECT_EQ(h.comm.Pending(1), 1u) << "a watched shard takes the worker's whole window";
  h.Step(1);  // w done at t=1
  h.RunToEnd({1});
  h.sched.Tick(1000, h.comm);
  EXPECT_TRUE(h.sched.retired().empty());
  EXPECT_FALSE(h.sched.has_deadlines());
  EXPECT_EQ(h.sched.counts().done, 2);
}

TEST(Scheduler, WatchedShardGoesOnlyToAnIdleWorker) {
  // x and y run on the only worker; w (watched) is next: it waits for the worker to be idle
  // (z, behind it, does not overtake it), then goes alone.
  Harness h({Task("x"), Task("y"), Watched("w", 60), Task("z")}, 2);
  h.Join(1);
  auto first = Drain(h.comm, 1);
  ASSERT_EQ(first.size(), 2u);
  EXPECT_EQ(first[0].key.id().hex, "x");
  EXPECT_EQ(first[1].key.id().hex, "y");
  auto answer = [&](const RunShard& r) {
    ShardDone d;
    d.id = r.key.id();
    d.attempt = r.attempt;
    h.sched.OnMessage(WorkerId{1}, Wire(d), 1, h.comm);
  };
  answer(first[0]);
  EXPECT_EQ(h.comm.Pending(1), 0u) << "w waits for an idle worker; z waits behind w";
  answer(first[1]);
  auto second = Drain(h.comm, 1);
  ASSERT_EQ(second.size(), 1u);
  EXPECT_EQ(second[0].key.id().hex, "w");
  answer(second[0]);
  h.RunToEnd({1});
  EXPECT_EQ(h.sched.counts().done, 4);
}

TEST(Scheduler, ExecutorShardsGetNoCoordinatorDeadline) {
  // The worker kills an executor shard past its timeout itself; an inline shard without a
  // timeout has none. Both share the window as usual.
  auto e1 = Task("e1");
  e1.msg.timeout_s = 1;
  auto e2 = Task("e2");
  e2.msg.timeout_s = 1;
  auto i1 = Task("i1");
  i1.msg.isolation = Isolation::kInline;
  Harness h({e1, e2, i1}, 2);
  h.Join(1);
  EXPECT_EQ(h.comm.Pending(1), 2u);
  EXPECT_FALSE(h.sched.has_deadlines());
  h.sched.Tick(1e6, h.comm);
  EXPECT_TRUE(h.sched.retired().empty());
  EXPECT_EQ(h.sched.counts().running, 2);
  h.Step(1);
  EXPECT_FALSE(h.sched.has_deadlines());  // i1 (inline, no timeout) went out without one
  h.RunToEnd({1});
  EXPECT_EQ(h.sched.counts().done, 3);
}

TEST(Scheduler, GangTimeoutRetiresEveryRankThatDidNotAnswer) {
  // Neither rank answers: both are retired; a third worker takes the plain shard, and the
  // gang's retry (2 ranks) cannot run on the one left: stranded, the sweep ends.
  auto g = Watched("gang", 100, 2, 2);
  g.msg.isolation = Isolation::kExecutor;  // gangs run in the worker whatever the isolation
  Harness h({g, Task("single")}, 2);
  h.Join(1);
  h.Join(2);
  h.Join(3);
  EXPECT_EQ(h.comm.Pending(1) + h.comm.Pending(2), 2u);
  const int free_rank = h.comm.Pending(1) == 0 ? 1 : h.comm.Pending(2) == 0 ? 2 : 3;
  ASSERT_EQ(free_rank, 3);
  h.sched.TakeEvents();
  h.sched.Tick(109, h.comm);  // deadline 0 + 100 + 10
  EXPECT_TRUE(h.sched.retired().empty());
  h.sched.Tick(110, h.comm);
  EXPECT_EQ(h.sched.retired(), (std::vector<int>{1, 2}));
  auto fin = Finished(h.sched);
  ASSERT_EQ(fin.size(), 1u);
  EXPECT_EQ(fin[0].done.outcome, Outcome::kTimeout);
  EXPECT_NE(fin[0].done.error.find("worker ranks 1, 2 (gang of 2)"), std::string::npos)
      << fin[0].done.error;
  EXPECT_EQ(h.sched.counts().blocked, 1);
  EXPECT_EQ(h.sched.counts().stranded, 1);
  h.RunToEnd({3});
  EXPECT_TRUE(h.sched.Finished());
  EXPECT_EQ(h.sched.counts().done, 1);
  EXPECT_EQ(h.sched.counts().pending, 0);
  EXPECT_EQ(h.sched.tasks()[0].attempts, 1);
  EXPECT_EQ(h.sched.tasks()[0].status, ShardStatus::kPending);  // not failed: left for later
}

TEST(Scheduler, GangTimeoutSparesTheRankThatAnswered) {
  // Rank 1 threw and reported; rank 2 waits for it in a collective forever.
  Harness h({Watched("gang", 10, 1, 2), Task("after", {0}), Task("single")}, 2);
  h.Join(1);
  h.Join(2);
  auto to1 = Drain(h.comm, 1);
  ASSERT_EQ(to1.size(), 1u);
  ShardDone err;
  err.id = to1[0].key.id();
  err.attempt = to1[0].attempt;
  err.outcome = Outcome::kError;
  err.error = "chaos: injected exception";
  h.sched.OnMessage(WorkerId{1}, Wire(err), 1, h.comm);
  // Rank 1 is free again and takes the single shard meanwhile.
  auto more = Drain(h.comm, 1);
  ASSERT_EQ(more.size(), 1u);
  EXPECT_EQ(more[0].key.id().hex, "single");
  h.sched.TakeEvents();
  h.sched.Tick(15, h.comm);
  EXPECT_EQ(h.sched.retired(), (std::vector<int>{2}));
  auto fin = Finished(h.sched);
  ASSERT_EQ(fin.size(), 1u);
  EXPECT_EQ(fin[0].done.outcome, Outcome::kTimeout);
  EXPECT_EQ(fin[0].new_status, ShardStatus::kFailed);  // max_attempts 1
  EXPECT_NE(fin[0].done.error.find("worker rank 2 (gang of 2)"), std::string::npos)
      << fin[0].done.error;
  EXPECT_NE(fin[0].done.error.find("chaos: injected exception"), std::string::npos)
      << fin[0].done.error;
  EXPECT_EQ(h.sched.counts().failed, 1);
  EXPECT_EQ(h.sched.counts().blocked, 1);  // after
  EXPECT_EQ(h.sched.counts().stranded, 0);
  ShardDone ok;
  ok.id = more[0].key.id();
  ok.attempt = more[0].attempt;
  h.sched.OnMessage(WorkerId{1}, Wire(ok), 16, h.comm);
  EXPECT_TRUE(h.sched.Finished());
  EXPECT_EQ(h.sched.counts().done, 1);
}

TEST(Scheduler, WhenEveryWorkerIsRetiredTheSweepEndsWithTheRestStranded) {
  Harness h({Watched("hang", 2, 3), Task("after", {0}), Task("other")}, 2);
  h.Join(1);
  EXPECT_EQ(h.comm.Pending(1), 1u);
  h.sched.Tick(7, h.comm);  // 0 + 2 + 5
  EXPECT_EQ(h.sched.retired(), (std::vector<int>{1}));
  EXPECT_TRUE(h.sched.Finished());
  const auto& c = h.sched.counts();
  EXPECT_EQ(c.running, 0);
  EXPECT_EQ(c.pending, 0);
  EXPECT_EQ(c.failed, 0);
  EXPECT_EQ(c.blocked, 3);  // hang's retry and other (stranded), after (behind hang)
  EXPECT_EQ(c.stranded, 2);
  EXPECT_EQ(h.sched.tasks()[0].attempts, 1);
  EXPECT_EQ(h.comm.Pending(1), 1u);  // nothing more was sent to the retired worker
  // Its late answer changes nothing.
  auto to1 = Drain(h.comm, 1);
  ShardDone late;
  late.id = to1[0].key.id();
  late.attempt = to1[0].attempt;
  h.sched.OnMessage(WorkerId{1}, Wire(late), 8, h.comm);
  EXPECT_EQ(h.sched.counts().done, 0);
  EXPECT_EQ(h.comm.Pending(1), 0u);
  EXPECT_TRUE(h.sched.Finished());
}

TEST(Scheduler, PreemptionDropsDeadlines) {
  Harness h({Watched("w", 2)}, 2);
  h.Join(1);
  h.sched.Preempt(1);
  h.sched.Tick(100, h.comm);
  EXPECT_TRUE(h.sched.retired().empty());
  EXPECT_FALSE(h.sched.has_deadlines());
  EXPECT_EQ(h.sched.counts().preempted, 1);
}

TEST(Scheduler, KeepsEachWorkersHelloToNameALostRank) {
  Harness h({Task("a")});
  h.sched.OnMessage(WorkerId{2}, Wire(Hello{"node7", 1, "", 4242, 1, ""}), 0, h.comm);
  h.Join(1);
  ASSERT_EQ(h.sched.hellos().size(), 2u);
  EXPECT_EQ(h.sched.hellos().at(2).host, "node7");
  EXPECT_EQ(h.sched.hellos().at(2).pid, 4242);
  EXPECT_EQ(h.sched.hellos().at(1).host, "h");
}

TEST(Scheduler, UnsatisfiableRanksIsReported) {
  Harness h({Task("g", {}, 1, 4)});
  EXPECT_EQ(h.sched.UnsatisfiableRanks(2), 4);
  EXPECT_EQ(h.sched.UnsatisfiableRanks(4), 0);
}

// Live curves of the running attempt become events for the registry writer; those of an attempt
// that is not running (late, after its ShardDone, or stale) are dropped.
TEST(Scheduler, LivePointsOfTheRunningAttemptOnlyBecomeEvents) {
  Harness h({Task("t0")}, 1);
  h.Join(1);
  h.sched.TakeEvents();
  ToWorker m;
  ASSERT_TRUE(h.comm.Pop(1, &m));
  const RunShard r = std::get<RunShard>(m);
  LivePoints p{r.key.id(), r.attempt, {LiveCurve{"loss", {0, 1}, {2.0, 1.5}}}};
  h.sched.OnMessage(WorkerId{1}, Wire(p), 3, h.comm);
  LivePoints stale = p;
  stale.attempt = r.attempt + 1;
  h.sched.OnMessage(WorkerId{1}, Wire(stale), 3, h.comm);
  h.sched.OnMessage(WorkerId{2}, Wire(p), 3, h.comm);  // not that worker's
  auto events = h.sched.TakeEvents();
  ASSERT_EQ(events.size(), 1u);
  const auto& e = std::get<LivePointsEvent>(events[0]);
  EXPECT_EQ(e.task, 0);
  EXPECT_EQ(e.time, 3.0);
  EXPECT_EQ(e.points, p);
  ShardDone d;
  d.id = r.key.id();
  d.attempt = r.attempt;
  h.sched.OnMessage(WorkerId{1}, Wire(d), 4, h.comm);
  h.sched.TakeEvents();
  h.sched.OnMessage(WorkerId{1}, Wire(p), 5, h.comm);  // late: after its ShardDone
  EXPECT_TRUE(h.sched.TakeEvents().empty());
}

}  // namespace
}  // namespace seedgrid

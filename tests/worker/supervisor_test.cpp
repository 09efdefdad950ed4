// The worker's supervisor driven as the scheduler is: in-memory UpLink (every message through
// the codec), a fake executor that records what it is told, and a fake clock (`now` passed in).
#include "worker/supervisor.h"

#include <signal.h>
#include <stdlib.h>

#include <gtest/gtest.h>

#include <filesystem>
#include <fstream>
#include <sstream>

#include "core/live.h"
#include "tests/support/memory_comm.h"

namespace seedgrid {
namespace {

namespace fs = std::filesystem;
using testing::MemoryUpLink;

class FakeExecutor final : public ShardExecutor {
 public:
  void Start() override {
    ++starts;
    running_ = true;
  }
  bool running() const override { return running_; }
  void Send(const std::string& frame) override {
    sent.push_back(std::get<RunShard>(DecodeToWorker(frame)));
  }
  void Signal(int sig) override { signals.push_back(sig); }
  int Reap() override {
    ++reaps;
    running_ = false;
    return status;
  }
  bool WaitExit(double timeout_s,
                const std::function<void(OutStream, std::string_view)>& output) override {
    waits.push_back(timeout_s);
    output(OutStream::kStdout, exit_output);
    return false;
  }

  int starts = 0, reaps = 0;
  int status = 0;  // what Reap returns (a waitpid status)
  std::vector<RunShard> sent;
  std::vector<int> signals;
  std::vector<double> waits;  // WaitExit's timeouts
  std::string exit_output;    // what the executor prints while it ends

 private:
  bool running_ = false;
};

class FakeInProcess final : public InProcessRunner {
 public:
  ShardDone Run(const RunShard& task, AttemptLogs& logs,
                const std::function<void(int64_t, int64_t)>& progress) override {
    ran.push_back(task.key.id().hex);
    if (during) during();
    logs.out.Write("in-process says hi\n");
    if (!err_line.empty()) logs.err.Write(err_line + "\n");
    progress(1, 1);
    ShardDone d;
    d.id = task.key.id();
    d.attempt = task.attempt;
    d.outcome = outcome;
    if (outcome != Outcome::kOk) d.error = "runner failed";
    return d;
  }
  std::vector<std::string> ran;
  std::function<void()> during;  // what the runner does meanwhile (LivePoint calls)
  Outcome outcome = Outcome::kOk;
  std::string err_line;
};

// A waitpid status for "killed by `sig`" / "exited with `code`".
int Killed(int sig) { return sig; }
int Exited(int code) { return code << 8; }

std::string Read(const fs::path& p) {
  std::ifstream f(p);
  std::stringstream s;
  s << f.rdbuf();
  return s.str();
}

class SupervisorTest : public ::testing::Test {
 protected:
  void SetUp() override {
    char tmpl[] = "/tmp/seedgrid-supervisor-XXXXXX";
    dir_ = ::mkdtemp(tmpl);
    SupervisorOptions o;
    o.kill_grace_s = 3;
    o.world_rank = 2;
    sup_ = std::make_unique<Supervisor>(up_, exec_, local_, o);
    sup_->Start(Hello{"host", 1, "", 42, 1, ""});
  }
  void TearDown() override {
    sup_.reset();
    fs::remove_all(dir_);
  }

  RunShard Shard(const std::string& id, int attempt = 1, double timeout_s = 0) {
    RunShard r;
    ShardKey::Fields f;
    f.id = ShardId{id};
    f.stage = "st";
    f.kind = "chaos";
    r.key = ShardKey(std::move(f));
    r.sweep = "sw";
    r.attempt = attempt;
    r.timeout_s = timeout_s;
    r.out_path = (dir_ / "sw" / "st" / (id + ".h5")).string();
    r.artifact_dir = ArtifactDirFor(r.out_path);
    return r;
  }
  void Send(const RunShard& r, double now) {
    std::string frame;
    Encode(ToWorker{r}, &frame);
    sup_->OnMessage(ToWorker{r}, frame, now);
  }
  // The executor's answer for a shard, read in one batch: its output (unread when it ended, so
  // followed by its marker), then the ShardDone frame.
  void Answer(const std::string& id, int attempt, Outcome outcome, double now,
              const std::string& out = "", const std::string& err = "") {
    const std::string marker = AttemptEndMarker(ShardId{id}, attempt);
    if (!out.empty()) sup_->OnExecutorOutput(OutStream::kStdout, out + marker);
    if (!err.empty()) sup_->OnExecutorOutput(OutStream::kStderr, err + marker);
    Done(id, attempt, outcome, now);
    sup_->RouteOutput();
  }
  void Done(const std::string& id, int attempt, Outcome outcome, double now) {
    ShardDone d;
    d.id = ShardId{id};
    d.attempt = attempt;
    d.outcome = outcome;
    if (outcome != Outcome::kOk) d.error = "it failed";
    std::string frame;
    Encode(FromWorker{d}, &frame);
    sup_->OnExecutorFrame(frame, now);
  }
  fs::path Log(const std::string& id, const std::string& name) {
    return dir_ / "sw" / "st" / (id + ".logs") / name;
  }

  fs::path dir_;
  MemoryUpLink up_;
  FakeExecutor exec_;
  FakeInProcess local_;
  std::unique_ptr<Supervisor> sup_;
};

TEST_F(SupervisorTest, StartSaysHelloAndStartsTheExecutor) {
  EXPECT_EQ(exec_.starts, 1);
  ASSERT_EQ(up_.sent.size(), 1u);
  EXPECT_EQ(std::get<Hello>(up_.sent[0]).pid, 42);
}

TEST_F(SupervisorTest, TimeoutSendsSigtermThenSigkillAfterTheGrace) {
  Send(Shard("a", 1, 10), 100);
  EXPECT_TRUE(sup_->executor_busy());
  sup_->Tick(105);
  EXPECT_TRUE(exec_.signals.empty());
  sup_->Tick(110.5);
  EXPECT_EQ(exec_.signals, std::vector<int>{SIGTERM});
  sup_->Tick(113);  // within the 3 s grace: nothing more
  EXPECT_EQ(exec_.signals, std::vector<int>{SIGTERM});
  sup_->Tick(113.6);
  EXPECT_EQ(exec_.signals, (std::vector<int>{SIGTERM, SIGKILL}));
  sup_->Tick(120);  // signalled once each
  EXPECT_EQ(exec_.signals.size(), 2u);

  exec_.status = Killed(SIGKILL);
  sup_->OnExecutorEof(114);
  auto done = up_.Done();
  ASSERT_EQ(done.size(), 1u);
  EXPECT_EQ(done[0].id.hex, "a");
  EXPECT_EQ(done[0].outcome, Outcome::kTimeout);
  EXPECT_NE(done[0].error.find("timeout after 10.5 s (limit 10 s)"), std::string::npos)
      << done[0].error;
  EXPECT_EQ(done[0].signal, SIGKILL);
  EXPECT_EQ(exec_.starts, 2);  // restarted
  EXPECT_FALSE(sup_->executor_busy());
}

TEST_F(SupervisorTest, AShardsOwnGraceWinsOverTheWorkersOnTimeout) {
  RunShard a = Shard("a", 1, 10);
  a.grace_s = 20;  // resources.grace: 20s
  Send(a, 100);
  sup_->Tick(110.5);
  EXPECT_EQ(exec_.signals, std::vector<int>{SIGTERM});
  sup_->Tick(125);  // past the worker's 3 s, within the shard's 20 s
  EXPECT_EQ(exec_.signals, std::vector<int>{SIGTERM});
  sup_->Tick(130.6);
  EXPECT_EQ(exec_.signals, (std::vector<int>{SIGTERM, SIGKILL}));
}

TEST_F(SupervisorTest, ShutdownGivesARunningShardItsOwnGrace) {
  RunShard a = Shard("a", 1);
  a.grace_s = 0.5;
  Send(a, 0);
  std::string frame;
  Encode(ToWorker{Shutdown{4}}, &frame);
  sup_->OnMessage(ToWorker{Shutdown{4}}, frame, 1);
  EXPECT_EQ(exec_.waits, std::vector<double>{0.5});
  EXPECT_EQ(exec_.signals, (std::vector<int>{SIGTERM, SIGKILL}));
}

TEST_F(SupervisorTest, AShardThatEndsWithinTheGraceIsNotFollowedBySigkill) {
  Send(Shard("a", 1, 10), 0);
  Send(Shard("b", 1, 10), 0);
  sup_->Tick(10.5);  // SIGTERM to a
  Answer("a", 1, Outcome::kOk, 11);
  sup_->Tick(14);  // past a's grace, b runs since 11
  EXPECT_EQ(exec_.signals, std::vector<int>{SIGTERM});
}

TEST_F(SupervisorTest, ExecutorDeathChargesOnlyTheRunningShardAndResendsTheQueue) {
  Send(Shard("a", 1), 0);
  Send(Shard("b", 1), 0);
  Send(Shard("c", 2), 0);
  ASSERT_EQ(exec_.sent.size(), 3u);
  sup_->OnExecutorOutput(OutStream::kStderr, "loading\nboom: it segfaulted here\n");
  exec_.status = Killed(SIGSEGV);
  sup_->OnExecutorEof(2);

  auto done = up_.Done();
  ASSERT_EQ(done.size(), 1u) << "only the running shard is charged";
  EXPECT_EQ(done[0].id.hex, "a");
  EXPECT_EQ(done[0].attempt, 1);
  EXPECT_EQ(done[0].outcome, Outcome::kCrash);
  EXPECT_EQ(done[0].signal, SIGSEGV);
  EXPECT_NE(done[0].error.find("SIGSEGV"), std::string::npos) << done[0].error;
  EXPECT_NE(done[0].error.find("last output: boom: it segfaulted here"), std::string::npos)
      << done[0].error;
  EXPECT_EQ(exec_.reaps, 1);
  EXPECT_EQ(exec_.starts, 2);
  // b and c again, to the new executor, with their attempt numbers unchanged.
  ASSERT_EQ(exec_.sent.size(), 5u);
  EXPECT_EQ(exec_.sent[3].key.id().hex, "b");
  EXPECT_EQ(exec_.sent[3].attempt, 1);
  EXPECT_EQ(exec_.sent[4].key.id().hex, "c");
  EXPECT_EQ(exec_.sent[4].attempt, 2);
  EXPECT_EQ(Read(Log("a", "attempt-1.err")), "loading\nboom: it segfaulted here\n");

  // The queued shards then finish normally, with their own logs.
  Answer("b", 1, Outcome::kOk, 3, "b out\n");
  Answer("c", 2, Outcome::kOk, 4, "c out\n");
  done = up_.Done();
  ASSERT_EQ(done.size(), 3u);
  EXPECT_EQ(done[1].id.hex, "b");
  EXPECT_EQ(done[2].id.hex, "c");
  EXPECT_EQ(Read(Log("b", "attempt-1.out")), "b out\n");
  EXPECT_EQ(Read(Log("c", "attempt-2.out")), "c out\n");
  EXPECT_FALSE(sup_->executor_busy());
}

TEST_F(SupervisorTest, AnExitedExecutorIsACrashWithItsCode) {
  Send(Shard("a", 1), 0);
  exec_.status = Exited(3);
  sup_->OnExecutorEof(1);
  auto done = up_.Done();
  ASSERT_EQ(done.size(), 1u);
  EXPECT_EQ(done[0].exit_code, 3);
  EXPECT_NE(done[0].error.find("exited with code 3"), std::string::npos) << done[0].error;
}

TEST_F(SupervisorTest, AfterAMemoryKillTheExecutorRestartsAndNobodyElseIsCharged) {
  Send(Shard("a", 1), 0);
  Send(Shard("b", 1), 0);
  // The executor reports a's memory outcome itself (no markers: it kills itself at once).
  sup_->OnExecutorOutput(OutStream::kStderr, "allocating\n");
  ShardDone d;
  d.id = ShardId{"a"};
  d.outcome = Outcome::kMemory;
  d.error = "memory limit exceeded";
  std::string frame;
  Encode(FromWorker{d}, &frame);
  sup_->OnExecutorFrame(frame, 1);
  sup_->RouteOutput();
  sup_->OnExecutorOutput(OutStream::kStderr, "still a's\n");
  sup_->RouteOutput();
  exec_.status = Killed(SIGKILL);
  sup_->OnExecutorEof(1.1);

  auto done = up_.Done();
  ASSERT_EQ(done.size(), 1u) << "the announced death charges nobody else";
  EXPECT_EQ(done[0].outcome, Outcome::kMemory);
  EXPECT_EQ(exec_.starts, 2);
  ASSERT_EQ(exec_.sent.size(), 3u);
  EXPECT_EQ(exec_.sent[2].key.id().hex, "b");
  EXPECT_EQ(Read(Log("a", "attempt-1.err")), "allocating\nstill a's\n");
  EXPECT_FALSE(fs::exists(Log("b", "attempt-1.err")));
}

TEST_F(SupervisorTest, OutputIsSplitIntoAttemptsAtTheMarkers) {
  Send(Shard("a", 1), 0);
  Send(Shard("b", 2), 0);
  // a's end and b's start arrive in one batch with a's ShardDone; b's marker split in two reads.
  const std::string ma = AttemptEndMarker(ShardId{"a"}, 1), mb = AttemptEndMarker(ShardId{"b"}, 2);
  sup_->OnExecutorOutput(OutStream::kStdout, "a1\na2\n" + ma + "b1\n" + mb.substr(0, 5));
  sup_->OnExecutorOutput(OutStream::kStderr, "a err\n" + ma);
  Done("a", 1, Outcome::kOk, 1);
  sup_->RouteOutput();
  EXPECT_EQ(Read(Log("a", "attempt-1.out")), "a1\na2\n");
  EXPECT_EQ(Read(Log("a", "attempt-1.err")), "a err\n");
  EXPECT_EQ(Read(Log("b", "attempt-2.out")), "b1\n") << "live, before b ends";
  // The rest of b's marker, then its ShardDone; b wrote nothing to stderr (no file).
  sup_->OnExecutorOutput(OutStream::kStdout, mb.substr(5));
  Done("b", 2, Outcome::kOk, 2);
  sup_->RouteOutput();
  EXPECT_EQ(Read(Log("b", "attempt-2.out")), "b1\n");
  EXPECT_FALSE(fs::exists(Log("b", "attempt-2.err")));
}

TEST_F(SupervisorTest, WithoutAMarkerOutputAfterAShardDoneIsTheNextShards) {
  Send(Shard("a", 1), 0);
  Send(Shard("b", 1), 0);
  sup_->OnExecutorOutput(OutStream::kStdout, "a says\n");
  sup_->RouteOutput();  // a batch: a still runs
  // a's pipe was empty when it ended (no marker); b started and printed within the next batch.
  sup_->OnExecutorOutput(OutStream::kStdout, "b says\n");
  Done("a", 1, Outcome::kOk, 1);
  sup_->RouteOutput();
  EXPECT_EQ(Read(Log("a", "attempt-1.out")), "a says\n");
  EXPECT_EQ(Read(Log("b", "attempt-1.out")), "b says\n");
}

TEST_F(SupervisorTest, AMarkerOfNoHeldAttemptDoesNotHoldTheStreamBack) {
  Send(Shard("a", 1), 0);
  sup_->OnExecutorOutput(OutStream::kStdout, AttemptEndMarker(ShardId{"zz"}, 7) + "a says\n");
  sup_->RouteOutput();
  EXPECT_EQ(Read(Log("a", "attempt-1.out")), "a says\n");
}

TEST_F(SupervisorTest, OutputOfAnIdleExecutorBelongsToNoAttempt) {
  Send(Shard("a", 1), 0);
  Answer("a", 1, Outcome::kOk, 1, "a\n");
  sup_->OnExecutorOutput(OutStream::kStderr, "stray line from a leftover child\n");
  sup_->RouteOutput();  // to the worker's own stderr
  EXPECT_EQ(Read(Log("a", "attempt-1.out")), "a\n");
  EXPECT_FALSE(fs::exists(Log("a", "attempt-1.err")));
}

TEST_F(SupervisorTest, AFailedAttemptsErrorEndsWithItsLastStderrLine) {
  Send(Shard("a", 2), 0);
  Answer("a", 2, Outcome::kError, 1, "", "warming up\nValueError: lr must be > 0\n");
  auto done = up_.Done();
  ASSERT_EQ(done.size(), 1u);
  EXPECT_EQ(done[0].error, "it failed; last stderr: ValueError: lr must be > 0");
  // A success keeps its (empty) error.
  Send(Shard("b", 1), 2);
  Answer("b", 1, Outcome::kOk, 3, "", "a warning\n");
  EXPECT_EQ(up_.Done().back().error, "");
}

TEST_F(SupervisorTest, InlineShardsRunInProcessOnlyOnceTheExecutorIsIdle) {
  RunShard in = Shard("inl", 1);
  in.isolation = Isolation::kInline;
  Send(Shard("a", 1), 0);
  Send(in, 0);
  EXPECT_FALSE(sup_->RunInProcess()) << "the executor still has a shard";
  EXPECT_TRUE(local_.ran.empty());
  Answer("a", 1, Outcome::kOk, 1);
  local_.outcome = Outcome::kError;
  local_.err_line = "Traceback: the inline cause";
  EXPECT_TRUE(sup_->RunInProcess());
  EXPECT_FALSE(sup_->RunInProcess());
  EXPECT_EQ(local_.ran, std::vector<std::string>{"inl"});
  auto done = up_.Done();
  ASSERT_EQ(done.size(), 2u);
  EXPECT_EQ(done[1].id.hex, "inl");
  EXPECT_EQ(done[1].error, "runner failed; last stderr: Traceback: the inline cause");
  EXPECT_TRUE(std::holds_alternative<Progress>(up_.sent[up_.sent.size() - 2]));
  EXPECT_EQ(Read(Log("inl", "attempt-1.out")), "in-process says hi\n");
}

// An in-process shard's live curve: 5 s of a point every millisecond (a fake clock) go up as at
// most one LivePoints a second, each thinned to the bound, and the last points before ShardDone.
TEST_F(SupervisorTest, InProcessLiveCurvesGoUpCoalescedAtMostOnceASecond) {
  double now = 50;
  SupervisorOptions o;
  o.live_clock = [&] { return now; };
  MemoryUpLink up;
  Supervisor sup(up, exec_, local_, o);
  RunShard in = Shard("inl", 2);
  in.isolation = Isolation::kInline;
  std::string frame;
  Encode(ToWorker{in}, &frame);
  sup.OnMessage(ToWorker{in}, frame, 0);
  local_.during = [&] {
    for (int64_t step = 0; step < 5000; ++step, now += 0.001)
      LivePoint("loss", step, 1.0 / (step + 1));
  };
  ASSERT_TRUE(sup.RunInProcess());
  std::vector<LivePoints> live;
  size_t done_at = 0;
  for (size_t i = 0; i < up.sent.size(); ++i) {
    if (auto* l = std::get_if<LivePoints>(&up.sent[i])) live.push_back(*l);
    if (std::holds_alternative<ShardDone>(up.sent[i])) done_at = i;
  }
  ASSERT_GE(live.size(), 5u);
  EXPECT_LE(live.size(), 7u);  // one a second over 5 s, plus the end's
  for (const auto& l : live) {
    EXPECT_EQ(l.id.hex, "inl");
    EXPECT_EQ(l.attempt, 2);
    ASSERT_EQ(l.curves.size(), 1u);
    EXPECT_LE(l.curves[0].steps.size(), kLiveMaxPoints);
  }
  EXPECT_EQ(live.back().curves[0].steps.back(), 4999);  // nothing lost at the end
  ASSERT_GT(done_at, 0u);
  EXPECT_TRUE(std::holds_alternative<LivePoints>(up.sent[done_at - 1]));  // its last points
  // After the shard, no sink: a stray point goes nowhere.
  const size_t sent = up.sent.size();
  LivePoint("loss", 9999, 1);
  EXPECT_EQ(up.sent.size(), sent);
}

TEST_F(SupervisorTest, GangRanksOtherThanTheLeadWriteTheirOwnLogs) {
  RunShard g = Shard("gang", 3);
  g.gang = {1, 2};  // this worker is world rank 2: gang rank 1
  Send(g, 0);
  EXPECT_TRUE(sup_->RunInProcess());
  EXPECT_EQ(Read(Log("gang", "attempt-3.rank1.out")), "in-process says hi\n");
  EXPECT_FALSE(fs::exists(Log("gang", "attempt-3.out")));
}

// A shard in flight at shutdown was recorded as preempted: it gets SIGTERM and the kill grace
// to save (a command's checkpoint), and what it prints meanwhile lands in its attempt log.
TEST_F(SupervisorTest, ShutdownGivesARunningShardTheGraceThenKillsAndKeepsTheExitCode) {
  Send(Shard("a", 1), 0);
  sup_->OnExecutorOutput(OutStream::kStdout, "partial\n");
  exec_.exit_output = "saved\n";
  std::string frame;
  Encode(ToWorker{Shutdown{5}}, &frame);
  sup_->OnMessage(ToWorker{Shutdown{5}}, frame, 1);
  EXPECT_TRUE(sup_->shutdown());
  EXPECT_EQ(sup_->exit_code(), 5);
  EXPECT_EQ(exec_.signals, (std::vector<int>{SIGTERM, SIGKILL}));
  EXPECT_EQ(exec_.waits, std::vector<double>{3.0});
  EXPECT_EQ(exec_.reaps, 1);
  EXPECT_TRUE(up_.Done().empty()) << "the coordinator recorded it as preempted";
  EXPECT_EQ(Read(Log("a", "attempt-1.out")), "partial\nsaved\n");
}

TEST_F(SupervisorTest, ShutdownKillsAnIdleExecutorAtOnce) {
  std::string frame;
  Encode(ToWorker{Shutdown{0}}, &frame);
  sup_->OnMessage(ToWorker{Shutdown{0}}, frame, 1);
  EXPECT_EQ(exec_.signals, std::vector<int>{SIGKILL});
  EXPECT_TRUE(exec_.waits.empty());
  EXPECT_EQ(exec_.reaps, 1);
}

}  // namespace
}  // namespace seedgrid

// The coordinator's registry writer: what the registry says while shards run and after.
#include "coordinator/registry_writer.h"

#include <unistd.h>

#include <filesystem>

#include <gtest/gtest.h>

namespace seedgrid {
namespace {

namespace fs = std::filesystem;

class RegistryWriterTest : public ::testing::Test {
 protected:
  void SetUp() override {
    char tmpl[] = "/tmp/seedgrid-writer-XXXXXX";
    dir_ = ::mkdtemp(tmpl);
    reg_ = std::make_unique<Registry>(dir_ + "/registry.sqlite", Registry::Mode::kWrite);
    ShardRow r;
    r.sweep = "s";
    for (const char* id : {"1111111111111111", "2222222222222222"}) {
      r.key = ShardKey({.id = ShardId{id}, .stage = "a", .kind = "chaos"});
      reg_->InsertShards({r});
      SchedTask& t = tasks_.emplace_back();
      t.msg.key = r.key;
      seqs_.push_back(reg_->Shard(r.key.id())->seq);
    }
  }
  void TearDown() override {
    reg_.reset();
    fs::remove_all(dir_);
  }
  ShardStatus Status(int task) { return reg_->Shard(tasks_[task].msg.key.id())->status; }

  std::string dir_;
  std::unique_ptr<Registry> reg_;
  std::vector<SchedTask> tasks_;
  std::vector<int64_t> seqs_;
};

// A batch with dispatches and nothing finished still commits the running states (they stayed
// pending until another shard finished: an hour-long training showed as pending for an hour).
TEST_F(RegistryWriterTest, LongShardsShowAsRunningBeforeAnythingFinishes) {
  RegistryWriter w(*reg_, tasks_, seqs_, dir_, "");
  std::vector<SchedEvent> events = {DispatchedEvent{0, WorkerId{1}, 1, 1.0},
                                    DispatchedEvent{1, WorkerId{1}, 1, 1.0}};
  w.Add(events);
  EXPECT_EQ(w.pending(), 2u);
  w.Commit();
  EXPECT_EQ(w.pending(), 0u);
  EXPECT_EQ(Status(0), ShardStatus::kRunning);
  EXPECT_EQ(Status(1), ShardStatus::kRunning);
}

TEST_F(RegistryWriterTest, AShardFinishedInItsBatchIsWrittenOnceAsItsOutcome) {
  RegistryWriter w(*reg_, tasks_, seqs_, dir_, "");
  FinishedEvent f{};
  f.task = 0;
  f.time = 2.0;
  f.worker = WorkerId{1};
  f.new_status = ShardStatus::kFailed;
  f.attempts = 1;
  f.done.id = tasks_[0].msg.key.id();
  f.done.attempt = 1;
  f.done.outcome = Outcome::kError;
  f.done.error = "boom";
  std::vector<SchedEvent> events = {DispatchedEvent{0, WorkerId{1}, 1, 1.0}, f};
  w.Add(events);
  w.Commit();
  EXPECT_EQ(Status(0), ShardStatus::kFailed);
  EXPECT_EQ(Status(1), ShardStatus::kPending);
  ASSERT_EQ(reg_->Attempts(tasks_[0].msg.key.id()).size(), 1u);
  EXPECT_EQ(reg_->Attempts(tasks_[0].msg.key.id())[0].error, "boom");
}

// Live curves: written with the batch while the shard runs (the sweep's page shows them), a
// step sent twice replaced, and dropped when the shard is done (its file holds the final curves);
// a failed shard's stay.
TEST_F(RegistryWriterTest, LivePointsAreRecordedWhileRunningAndDroppedWhenDone) {
  RegistryWriter w(*reg_, tasks_, seqs_, dir_, "");
  auto live = [&](int task, std::vector<int64_t> steps, std::vector<double> values) {
    return LivePointsEvent{task, 5.0,
                           LivePoints{tasks_[task].msg.key.id(),
                                      1,
                                      {LiveCurve{"loss", std::move(steps), std::move(values)}}}};
  };
  std::vector<SchedEvent> events = {DispatchedEvent{0, WorkerId{1}, 1, 1.0},
                                    DispatchedEvent{1, WorkerId{1}, 1, 1.0},
                                    live(0, {0, 1}, {3.0, 2.0}), live(1, {0}, {9.0})};
  w.Add(events);
  w.Commit();
  auto curves = reg_->LiveCurves(tasks_[0].msg.key.id(), 100);
  ASSERT_EQ(curves.size(), 1u);
  EXPECT_EQ(curves[0].name, "loss");
  EXPECT_EQ(curves[0].steps, (std::vector<int64_t>{0, 1}));
  EXPECT_EQ(curves[0].values, (std::vector<double>{3.0, 2.0}));
  EXPECT_EQ(curves[0].t, 5.0);
  auto shards = reg_->LiveShards("s", 8, 100);
  ASSERT_EQ(shards.size(), 2u);
  EXPECT_EQ(shards[0].id, "1111111111111111");

  // Task 0's last points and its end share a batch; task 1 fails.
  auto finished = [&](int task, ShardStatus status) {
    FinishedEvent f{};
    f.task = task;
    f.time = 6.0;
    f.worker = WorkerId{1};
    f.new_status = status;
    f.attempts = 1;
    f.done.id = tasks_[task].msg.key.id();
    f.done.attempt = 1;
    f.done.outcome = status == ShardStatus::kDone ? Outcome::kOk : Outcome::kError;
    return f;
  };
  events = {live(0, {1, 2}, {1.5, 1.0}), finished(0, ShardStatus::kDone), live(1, {1}, {8.0}),
            finished(1, ShardStatus::kFailed)};
  w.Add(events);
  w.Commit();
  EXPECT_TRUE(reg_->LiveCurves(tasks_[0].msg.key.id(), 100).empty());
  curves = reg_->LiveCurves(tasks_[1].msg.key.id(), 100);
  ASSERT_EQ(curves.size(), 1u);
  EXPECT_EQ(curves[0].steps, (std::vector<int64_t>{0, 1}));
  EXPECT_TRUE(reg_->LiveShards("s", 8, 100).empty());  // none running

  // The next launch retries task 1, which succeeds: the points the first launch recorded go.
  RegistryWriter next(*reg_, tasks_, seqs_, dir_, "");
  events = {DispatchedEvent{1, WorkerId{1}, 2, 7.0}, finished(1, ShardStatus::kDone)};
  next.Add(events);
  next.Commit();
  EXPECT_TRUE(reg_->LiveCurves(tasks_[1].msg.key.id(), 100).empty());
}

}  // namespace
}  // namespace seedgrid

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

}  // namespace
}  // namespace seedgrid

#include "worker/attempt_log.h"

#include <stdlib.h>
#include <sys/stat.h>
#include <unistd.h>

#include <gtest/gtest.h>

#include <cstdio>
#include <filesystem>
#include <fstream>
#include <iostream>
#include <sstream>

namespace seedgrid {
namespace {

namespace fs = std::filesystem;

std::string Read(const fs::path& p) {
  std::ifstream f(p);
  std::stringstream s;
  s << f.rdbuf();
  return s.str();
}

class AttemptLogTest : public ::testing::Test {
 protected:
  void SetUp() override {
    char tmpl[] = "/tmp/seedgrid-attempt-log-XXXXXX";
    dir_ = ::mkdtemp(tmpl);
  }
  void TearDown() override { fs::remove_all(dir_); }
  fs::path dir_;
};

TEST(AttemptLogPaths, BesideTheShardFile) {
  EXPECT_EQ(LogDirFor("/o/sw/st/ab12.h5"), "/o/sw/st/ab12.logs");
  EXPECT_EQ(AttemptLogName(2, false), "attempt-2.out");
  EXPECT_EQ(AttemptLogName(2, true), "attempt-2.err");
  EXPECT_EQ(AttemptLogName(1, true, 3), "attempt-1.rank3.err");
}

TEST(AttemptLogCap, ParsesBytesWithSuffixesAndRejectsTheRest) {
  EXPECT_EQ(ParseLogCap("65536").head, 65536);
  EXPECT_EQ(ParseLogCap("512K").tail, 512 * 1024);
  EXPECT_EQ(ParseLogCap("1M").head, 1 << 20);
  EXPECT_EQ(ParseLogCap("0").head, 0);
  for (const char* bad : {"", "lots", "1MB", "-5", "2X"}) {
    EXPECT_THROW(ParseLogCap(bad), std::invalid_argument) << bad;
  }
  EXPECT_EQ(LogCap{}.head, 1 << 20) << "default: 1 MiB head";
  EXPECT_EQ(LogCap{}.tail, 1 << 20) << "default: 1 MiB tail";
}

TEST_F(AttemptLogTest, UnderTheCapEverythingIsWrittenAsItComes) {
  const fs::path p = dir_ / "sub" / "attempt-1.out";
  CappedLog log(p.string(), LogCap{10, 10});
  log.Write("0123456789");
  log.Write("abcdefghij");  // exactly head + tail
  EXPECT_EQ(Read(p), "0123456789abcdefghij") << "live, before Close";
  log.Close();
  EXPECT_EQ(Read(p), "0123456789abcdefghij");
  EXPECT_EQ(log.bytes(), 20);
}

TEST_F(AttemptLogTest, OverTheCapKeepsHeadAndTailAndSaysWhatWasCut) {
  const fs::path p = dir_ / "attempt-1.out";
  CappedLog log(p.string(), LogCap{8, 6});
  std::string all;
  for (int i = 0; i < 100; ++i) {
    std::string chunk = std::to_string(i) + "\n";
    all += chunk;
    log.Write(chunk);
  }
  EXPECT_EQ(Read(p), all.substr(0, 8)) << "past head + tail, only the head is on disk until Close";
  log.Close();
  const int64_t cut = static_cast<int64_t>(all.size()) - 8 - 6;
  EXPECT_EQ(Read(p), all.substr(0, 8) + "[seedgrid: " + std::to_string(cut) +
                         " bytes cut here; this log keeps the first 8 and the last 6]\n" +
                         all.substr(all.size() - 6));
  EXPECT_EQ(log.bytes(), static_cast<int64_t>(all.size()));
}

TEST_F(AttemptLogTest, OneLargeWriteIsCappedToo) {
  const fs::path p = dir_ / "attempt-1.err";
  CappedLog log(p.string(), LogCap{4, 4});
  log.Write(std::string(1000, 'x') + "TAIL");
  log.Close();
  EXPECT_EQ(
      Read(p),
      "xxxx\n[seedgrid: 996 bytes cut here; this log keeps the first 4 and the last 4]\nTAIL");
}

TEST_F(AttemptLogTest, AnEmptyStreamLeavesNoFile) {
  const fs::path p = dir_ / "x.logs" / "attempt-1.out";
  {
    CappedLog log(p.string(), LogCap{});
    log.Write("");
  }
  EXPECT_FALSE(fs::exists(p));
  EXPECT_FALSE(fs::exists(p.parent_path()));
}

TEST_F(AttemptLogTest, LastLinesSkipsBlankLines) {
  CappedLog log((dir_ / "e").string(), LogCap{});
  log.Write("first\nsecond\n\n  \nthird\n\n");
  EXPECT_EQ(log.LastLines(1), "third");
  EXPECT_EQ(log.LastLines(2), "second\nthird");
  EXPECT_EQ(log.LastLines(9), "first\nsecond\nthird");
}

TEST_F(AttemptLogTest, StdioCaptureTakesPrintsWritesAndChildrenThenRestoresTheFds) {
  AttemptLogs logs(dir_.string(), 1, LogCap{});
  struct stat before {};
  ASSERT_EQ(::fstat(STDOUT_FILENO, &before), 0);
  {
    StdioCapture capture(logs);
    std::printf("printf line\n");
    std::cout << "cout line" << std::endl;
    std::fprintf(stderr, "stderr line\n");
    ASSERT_EQ(std::system("echo child out; echo child err >&2"), 0);
  }
  logs.Close();
  EXPECT_EQ(Read(dir_ / "attempt-1.out"), "printf line\ncout line\nchild out\n");
  EXPECT_EQ(Read(dir_ / "attempt-1.err"), "stderr line\nchild err\n");
  struct stat after {};
  ASSERT_EQ(::fstat(STDOUT_FILENO, &after), 0);
  EXPECT_EQ(before.st_ino, after.st_ino) << "fd 1 is ours again";
}

TEST_F(AttemptLogTest, SpoolCaptureTakesPrintsWritesAndChildrenThenRestoresTheFds) {
  StdioSpool spool;
  struct stat before {};
  ASSERT_EQ(::fstat(STDOUT_FILENO, &before), 0);
  for (int attempt : {1, 2}) {  // one spool, shard after shard: nothing carries over
    AttemptLogs logs(dir_.string(), attempt, LogCap{});
    {
      SpoolCapture capture(spool, logs);
      std::printf("printf line %d\n", attempt);
      std::cout << "cout line" << std::endl;
      std::fprintf(stderr, "stderr line\n");
      ASSERT_EQ(std::system("echo child out; echo child err >&2"), 0);
    }
    logs.Close();
  }
  EXPECT_EQ(Read(dir_ / "attempt-1.out"), "printf line 1\ncout line\nchild out\n");
  EXPECT_EQ(Read(dir_ / "attempt-2.out"), "printf line 2\ncout line\nchild out\n");
  EXPECT_EQ(Read(dir_ / "attempt-2.err"), "stderr line\nchild err\n");
  struct stat after {};
  ASSERT_EQ(::fstat(STDOUT_FILENO, &after), 0);
  EXPECT_EQ(before.st_ino, after.st_ino) << "fd 1 is ours again";
}

TEST_F(AttemptLogTest, SpoolCaptureOfASilentShardWritesNoFile) {
  StdioSpool spool;
  AttemptLogs logs(dir_.string(), 1, LogCap{});
  { SpoolCapture capture(spool, logs); }
  logs.Close();
  EXPECT_FALSE(fs::exists(dir_ / "attempt-1.out"));
  EXPECT_FALSE(fs::exists(dir_ / "attempt-1.err"));
}

}  // namespace
}  // namespace seedgrid

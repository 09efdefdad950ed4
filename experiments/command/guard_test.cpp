// The command's guard process (guard.h) with real processes (/bin/sh, sleep): the exit status
// passes through, what the command left (setsid'd or not) is killed when it ends, Kill() and
// the runner's death kill the whole tree, the tree's memory counts a setsid'd child. Each test
// runs twice: with the guard forked from the test, and with the seedgrid-guard program (the
// build's, beside this test's directory; skipped when it is not there).
#include "experiments/command/guard.h"

#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <filesystem>
#include <fstream>
#include <sstream>
#include <string>
#include <system_error>
#include <thread>
#include <vector>

#include <gtest/gtest.h>

namespace seedgrid::command {
namespace {

namespace fs = std::filesystem;

bool Alive(pid_t pid) {
  std::ifstream stat("/proc/" + std::to_string(pid) + "/stat");
  std::string line;
  if (!std::getline(stat, line)) return false;
  const char state = line[line.rfind(')') + 2];
  return state != 'Z' && state != 'X';
}

bool GoneWithin(const std::vector<pid_t>& pids, double seconds) {
  const auto end = std::chrono::steady_clock::now() + std::chrono::duration<double>(seconds);
  while (std::chrono::steady_clock::now() < end) {
    bool any = false;
    for (pid_t p : pids) any = any || Alive(p);
    if (!any) return true;
    std::this_thread::sleep_for(std::chrono::milliseconds(20));
  }
  return false;
}

std::string BuiltGuardProgram() {
  const fs::path p = fs::path(SelfExe()).parent_path().parent_path() / "seedgrid-guard";
  return ::access(p.c_str(), X_OK) == 0 ? p.string() : std::string();
}

class GuardTest : public ::testing::TestWithParam<bool> {
 protected:
  void SetUp() override {
    char tmpl[] = "/tmp/seedgrid-guard-test-XXXXXX";
    dir_ = ::mkdtemp(tmpl);
    if (GetParam()) {
      program_ = BuiltGuardProgram();
      if (program_.empty()) GTEST_SKIP() << "no seedgrid-guard beside " << SelfExe();
    }
  }
  void TearDown() override {
    for (pid_t p : Pids()) ::kill(p, SIGKILL);  // a failed test's leftovers
    fs::remove_all(dir_);
  }
  // sh -c `script`, in our directory.
  SpawnOptions Sh(const std::string& script) const {
    SpawnOptions o;
    o.argv = {"/bin/sh", "-c", script};
    o.cwd = dir_;
    return o;
  }
  // The pids the script wrote to `pids` (written whole, then renamed).
  std::vector<pid_t> Pids() const {
    std::ifstream f(dir_ + "/pids");
    std::vector<pid_t> out;
    for (pid_t p; f >> p;) out.push_back(p);
    return out;
  }
  std::vector<pid_t> WaitForPids(size_t n) const {
    for (int i = 0; i < 500 && Pids().size() < n; ++i) {
      std::this_thread::sleep_for(std::chrono::milliseconds(10));
    }
    return Pids();
  }
  // Starts a child that stays in the group and one that leaves it (setsid), writes
  // "<sh> <child> <setsid child>" and then runs `then`.
  static std::string Forks(const std::string& then) {
    return "sleep 300 & a=$!; setsid sleep 300 & b=$!; echo $$ $a $b > pids.tmp; "
           "mv pids.tmp pids; " +
           then;
  }
  GuardedCommand Start(const SpawnOptions& o) const {
    return GuardedCommand::Start(o, 0, program_);
  }
  std::string dir_;
  std::string program_;  // "": a forked guard
};

TEST_P(GuardTest, ExitCodesAndSignalsPassThrough) {
  auto cmd = Start(Sh("exit 7"));
  ExitStatus s = cmd.Wait();
  EXPECT_TRUE(cmd.reported());
  ASSERT_TRUE(s.exited());
  EXPECT_EQ(s.code(), 7);
  auto killed = Start(Sh("kill -ABRT $$"));
  ExitStatus k = killed.Wait();
  ASSERT_TRUE(k.signaled());
  EXPECT_EQ(k.signal(), SIGABRT);
}

TEST_P(GuardTest, AProgramThatCannotStartThrowsItsErrno) {
  SpawnOptions o;
  o.argv = {"/nonexistent/program"};
  try {
    Start(o);
    FAIL() << "started";
  } catch (const std::system_error& e) {
    EXPECT_EQ(e.code().value(), ENOENT);
  }
}

TEST_P(GuardTest, WhatTheCommandLeftIsKilledWhenItEndsSetsidIncluded) {
  auto cmd = Start(Sh(Forks("exit 0")));
  ExitStatus s = cmd.Wait();
  EXPECT_TRUE(s.exited() && s.code() == 0);
  const auto pids = Pids();
  ASSERT_EQ(pids.size(), 3u);
  EXPECT_TRUE(GoneWithin(pids, 0.1));  // gone before the guard reported: no wait needed
}

TEST_P(GuardTest, KillEndsTheWholeTree) {
  auto cmd = Start(Sh(Forks("wait")));
  const auto pids = WaitForPids(3);
  ASSERT_EQ(pids.size(), 3u);
  EXPECT_EQ(cmd.group(), cmd.pid());
  EXPECT_FALSE(cmd.TryWait().has_value());
  cmd.Kill();
  ExitStatus s = cmd.Wait();
  ASSERT_TRUE(s.signaled());
  EXPECT_EQ(s.signal(), SIGKILL);
  EXPECT_TRUE(GoneWithin(pids, 0.1));
}

TEST_P(GuardTest, TheRunnersDeathByKill9EndsTheWholeTree) {
  // The runner is a child of ours, killed with SIGKILL while its command runs.
  const pid_t runner = ::fork();
  ASSERT_GE(runner, 0);
  if (runner == 0) {
    auto cmd = Start(Sh(Forks("wait")));
    cmd.Wait();
    ::_exit(0);
  }
  const auto pids = WaitForPids(3);
  ::kill(runner, SIGKILL);
  ::waitpid(runner, nullptr, 0);
  ASSERT_EQ(pids.size(), 3u);
  EXPECT_TRUE(GoneWithin(pids, 5));
}

TEST_P(GuardTest, TheTreesMemoryCountsASetsidChild) {
  // 64 MiB held by a setsid'd python3 child; the guard's own pages never count.
  auto cmd =
      Start(Sh("setsid python3 -c 'import time; b = b\"x\" * (64 << 20); time.sleep(300)' & "
               "echo $! > pids.tmp; mv pids.tmp pids; wait"));
  WaitForPids(1);
  int64_t kb = 0;
  for (int i = 0; i < 300 && kb < 64 * 1024; ++i) {
    kb = cmd.TreeRssKb();
    std::this_thread::sleep_for(std::chrono::milliseconds(10));
  }
  EXPECT_GE(kb, 64 * 1024);
  EXPECT_LT(kb, 200 * 1024);
  EXPECT_EQ(cmd.OverMemory(1000), std::nullopt);
  auto over = cmd.OverMemory(32);
  ASSERT_TRUE(over.has_value());
  EXPECT_NE(over->find("memory limit exceeded: the command's processes hold"), std::string::npos);
  EXPECT_NE(over->find("limit 32 MiB"), std::string::npos);
}

INSTANTIATE_TEST_SUITE_P(ForkedAndProgram, GuardTest, ::testing::Bool(),
                         [](const auto& info) { return info.param ? "Program" : "Forked"; });

}  // namespace
}  // namespace seedgrid::command

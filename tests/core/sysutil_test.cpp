#include "core/sysutil.h"

#include <gtest/gtest.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cstdlib>

namespace seedgrid {
namespace {

TEST(ProcessAlive, ThisProcessIs) { EXPECT_TRUE(ProcessAlive(::getpid())); }

TEST(ProcessAlive, NoPidIsNot) {
  EXPECT_FALSE(ProcessAlive(0));
  EXPECT_FALSE(ProcessAlive(-1));
}

// An ended child not yet reaped (a zombie) has ended: a rank mpirun has not reaped is lost.
TEST(ProcessAlive, AZombieIsNotAndNeitherIsAReapedChild) {
  pid_t child = ::fork();
  ASSERT_GE(child, 0);
  if (child == 0) std::_Exit(0);
  siginfo_t info{};
  // Wait for its end without reaping it.
  ASSERT_EQ(::waitid(P_PID, static_cast<id_t>(child), &info, WEXITED | WNOWAIT), 0);
  EXPECT_FALSE(ProcessAlive(child));
  int status = 0;
  ASSERT_EQ(::waitpid(child, &status, 0), child);
  EXPECT_FALSE(ProcessAlive(child));
}

TEST(ProcessAlive, ARunningChildIs) {
  pid_t child = ::fork();
  ASSERT_GE(child, 0);
  if (child == 0) {
    ::pause();
    std::_Exit(0);
  }
  EXPECT_TRUE(ProcessAlive(child));
  ::kill(child, SIGKILL);
  int status = 0;
  ::waitpid(child, &status, 0);
}

}  // namespace
}  // namespace seedgrid

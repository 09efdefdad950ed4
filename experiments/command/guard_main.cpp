// seedgrid-guard: the command's guard process as a program of its own (guard.h), started by the
// runner with posix_spawn so that no copy of the runner's address space is made (a fork of an
// executor with LibTorch loaded costs far more than the command /bin/true). Built next to
// `seedgrid`; only libc and guard_child.cpp.
//
//   seedgrid-guard <lifeline fd> <status fd> <join group> -- <command> [args...]
//
// The runner has already given it the command's environment, working directory and
// descriptors; the guard passes them on and adds nothing.
#include <unistd.h>

#include <cstdio>
#include <cstdlib>
#include <cstring>

#include "experiments/command/guard_child.h"

int main(int argc, char** argv) {
  using seedgrid::command::GuardPlan;
  if (argc < 6 || std::strcmp(argv[4], "--") != 0) {
    std::fprintf(stderr,
                 "seedgrid-guard: started by seedgrid for kind: command, not by hand\n"
                 "usage: seedgrid-guard <lifeline fd> <status fd> <join group> -- <command>...\n");
    return 2;
  }
  GuardPlan plan{};
  plan.argv = argv + 5;
  plan.lifeline = std::atoi(argv[1]);
  plan.status = std::atoi(argv[2]);
  plan.join_group = static_cast<pid_t>(std::atol(argv[3]));
  plan.close_first[0] = plan.close_first[1] = -1;
  seedgrid::command::GuardMain(plan);
}

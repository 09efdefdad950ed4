// The guard process's own code (guard.h has the why and the layout): what runs in the guard
// and in the command between fork and exec. Async-signal-safe system calls only, no
// allocation, no dependency but libc: the same code runs in a child forked from a
// multi-threaded runner (the fallback) and in the small `seedgrid-guard` program the runner
// normally starts (guard_main.cpp: no fork of the runner's large address space).
//
// Protocol, guard -> runner on the status descriptor, one 8-byte GuardReport each (a pipe
// writes it whole): kGuardStarted <command pid>, then kGuardEnded <wait status>; or
// kGuardFailed <errno> and nothing more. Runner -> guard on the lifeline (a stream socket only
// the runner holds): kGuardKillByte asks for the kill; EOF says the runner is gone.
#pragma once

#include <sys/types.h>

#include <cstdint>

namespace seedgrid::command {

enum : int32_t { kGuardStarted = 1, kGuardFailed = 2, kGuardEnded = 3 };
struct GuardReport {
  int32_t kind;
  int32_t value;
};
inline constexpr char kGuardKillByte = 'K';

// A descriptor of the command made before exec: `child_fd` becomes a copy of `from_fd`, or
// the file at `path` opened with `flags`.
struct GuardRedirect {
  int child_fd;
  int from_fd;
  const char* path;
  int flags;
};

// Everything the guard needs, prepared before it exists.
struct GuardPlan {
  char* const* argv;  // the command, NULL-terminated; argv[0] looked up in its PATH
  char* const* envp;  // its environment; nullptr: the guard's
  const char* cwd;    // nullptr or "": the guard's
  const GuardRedirect* redirects;
  int n_redirects;
  pid_t join_group;    // > 0: the command joins it; 0: it leads its own
  int lifeline;        // the guard's end
  int status;          // the guard's end (write)
  int close_first[2];  // the runner's ends, inherited by a forked guard (-1: none)
};

// The guard's whole life: starts the command, reports, waits, kills the tree, reports, exits.
[[noreturn]] void GuardMain(const GuardPlan& plan);

// The parent pid in /proc/<pid>/stat, -1 when it cannot be read (the process is gone). `pid`
// is the decimal name of the /proc entry.
long ParentOfProc(const char* pid);
// A /proc entry's name as a pid, -1 when it is not one.
long ParseProcPid(const char* name);

}  // namespace seedgrid::command

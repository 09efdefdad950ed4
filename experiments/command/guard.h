// The user's command under a guard process: nothing the command started outlives its attempt,
// whatever kills the process that runs it.
//
// Why a guard. The runner (an executor, or a worker rank for a gang) can die by SIGKILL, which
// it cannot act on: a parent-death signal on the command kills the command alone, and what
// the command forked lives on, reparented to init. Process groups catch more, but only while
// someone alive signals them, and not what left the group (setsid, a daemon).
//
// So the runner starts a guard, and the guard forks and execs the command. The guard is
// `seedgrid-guard` (guard_main.cpp, libc only, next to `seedgrid`), started with posix_spawn:
// a fork of the runner would copy its page tables (an executor with LibTorch loaded: more
// than the whole cost of running /bin/true). Without that program the runner forks and the
// copy runs the same GuardMain (guard_child.h: async-signal-safe calls only, the runner may be
// a multi-threaded MPI process).
//
//   runner ──lifeline──► guard (own process group, PR_SET_CHILD_SUBREAPER, cwd /)
//                          └── command (joins `group`, or leads a group of its own;
//                                PR_SET_PDEATHSIG SIGKILL on the guard)
//                                └── whatever the command starts, setsid'd or not
//
//   * a subreaper: every orphaned descendant of the command (a child whose parent ended, a
//     double-forked daemon, a setsid'd grandchild) becomes the guard's child, so the guard can
//     always see and kill the whole tree, which a process group alone cannot;
//   * the lifeline, a socket pair: the runner holds one end (close-on-exec, no other process
//     has it), so EOF at the other means the runner process is gone, however it ended (a
//     parent-death signal follows the thread that forked, not the process);
//   * the command ends (or the runner asks with Kill(), or the lifeline breaks): the guard
//     SIGKILLs the command if it still runs, then every child it has, round after round, until
//     it has no child left (each killed process's own children become the guard's in turn);
//     then it reports the command's wait status to the runner and exits.
//
// The guard holds none of the runner's descriptors (a worker's MPI sockets, an executor's pipes
// to its worker): only the lifeline, its status pipe and a signalfd; its stdio is /dev/null.
//
// What it does not catch: a process that makes itself a subreaper and leaves it (then its
// orphans go there, not to the guard), one that ptrace-detaches or otherwise leaves the
// tree, and anything still running if the guard itself is SIGKILLed (the command then dies by
// its parent-death signal, its children are killed by the runner's group kill when they
// stayed in the group). A cgroup would catch those; seedgrid does not require one.
#pragma once

#include <sys/types.h>

#include <cstdint>
#include <optional>
#include <string>

#include "core/process.h"

namespace seedgrid::command {

class GuardedCommand {
 public:
  GuardedCommand() = default;
  // SIGKILLs the command's tree (through the guard) and reaps the guard if it still runs.
  ~GuardedCommand();
  GuardedCommand(GuardedCommand&& o) noexcept;
  GuardedCommand& operator=(GuardedCommand&& o) noexcept;
  GuardedCommand(const GuardedCommand&) = delete;
  GuardedCommand& operator=(const GuardedCommand&) = delete;

  // Starts `o.argv` under a guard. `join_group` > 0: the command joins that process group (of
  // our session: the executor's own, so its worker's signals to the group reach the command);
  // 0: it leads a group of its own. o.new_process_group and o.parent_death_signal are not
  // used (the guard decides both); every signal is reset to its default in the command, none
  // blocked. Throws std::system_error when the command cannot be started (exec's errno).
  static GuardedCommand Start(const SpawnOptions& o, pid_t join_group);
  // The same with the guard given: `guard_program` is a seedgrid-guard binary, "" forks the
  // guard from this process instead. Start uses the seedgrid-guard next to this program, if
  // any (a fork of an executor with LibTorch loaded is slower than the command /bin/true).
  static GuardedCommand Start(const SpawnOptions& o, pid_t join_group,
                              const std::string& guard_program);

  pid_t pid() const { return pid_; }          // the command's
  pid_t group() const { return group_; }      // the command's process group
  pid_t guard_pid() const { return guard_; }  // its guard's

  // The command's wait status once it has ended and the guard has killed what it left and
  // reported; nullopt while either runs. Blocking and non-blocking forms.
  std::optional<ExitStatus> TryWait();
  ExitStatus Wait();
  // Whether the guard reported (false: it was itself killed; its status stands for the
  // command's, and what the command left may still run).
  bool reported() const { return reported_; }

  // Asks the guard to SIGKILL the command and everything under it now (it then reports as
  // usual). No effect once the command has been reaped.
  void Kill();
  // SIGTERM to the command's process group (a gang's timeout: the command saves and exits in
  // its grace, then Kill). Only for a command that leads its own group (join_group 0): a
  // joined group is the caller's own. Processes that left the group (setsid) get no SIGTERM,
  // as with the executor's group; the guard still kills them at the end.
  void Terminate();

  // The resident sets of every process under the guard (the command's whole tree, setsid'd
  // processes included; not the guard, a copy of the runner's pages), in KiB.
  int64_t TreeRssKb() const;
  // The memory limit's message when that sum is over `limit_mb` (> 0), else nullopt.
  std::optional<std::string> OverMemory(int64_t limit_mb) const;

 private:
  bool ReadReport(bool block);
  ExitStatus Reap();
  ExitStatus Outcome(ExitStatus guard) const;
  void Release() noexcept;

  pid_t guard_ = -1, pid_ = -1, group_ = -1;
  Child spawned_;  // the guard when it is seedgrid-guard (else a fork of ours: guard_ only)
  Fd lifeline_;    // write end: its closing (our death) makes the guard clean up
  Fd status_;      // read end: the guard's reports
  std::string buf_;
  std::optional<ExitStatus> status_seen_;
  std::optional<ExitStatus> done_;
  bool reported_ = false;
};

}  // namespace seedgrid::command

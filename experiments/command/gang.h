// A command gang's control channel: one rank failing fails and stops the gang.
//
// The ranks' commands (an unchanged torch.distributed script) talk among themselves; seedgrid
// must still notice when one of them fails and stop the others, which would otherwise wait in
// a rendezvous or a collective until their timeout. The gang's Collective only has blocking
// calls, so the ranks keep a TCP connection each to rank 0 beside it (its port is shared in
// the rendezvous, with MASTER_PORT):
//
//   rank r > 0 -> rank 0   "E <r> <code> <error text>\n" when r's command ended
//   rank 0 -> every rank   "K <code> <error text>\n" when a command failed: stop yours
//
// code: 0 success, 1 failure, 2 the memory limit (resources.memory, checked by every rank on
// its own command's process tree): a gang stopped by it fails as `memory` on every rank;
// 3 the timeout, 4 a preemption. Every rank keeps the timeout itself (SIGTERM to its
// command's group, the grace, SIGKILL), started together at the rendezvous, and sees the
// coordinator's Shutdown itself, so neither stops another rank: a SIGKILL from rank 0 would
// cut the others' grace short.
//
// Rank 0 keeps serving until its own command and every other rank's have ended. A connection
// that closes before its rank reported counts as that rank failing (its worker died).
#pragma once

#include <sys/types.h>

#include <functional>
#include <optional>
#include <string>
#include <vector>

#include "core/collective.h"
#include "core/process.h"
#include "experiments/command/guard.h"

namespace seedgrid::command {

struct GangEnv {
  int rank = 0, world = 1, local_rank = 0, local_world = 1;
  std::string master_addr;
  int master_port = 0;
};

// How a rank's command ended.
struct GangEnd {
  ExitStatus status;
  std::string over_memory;         // this rank's command went over the limit: the message
  std::string stopped_by;          // the error of another rank that made this one stop its
                                   // command (SIGKILL to its tree), empty otherwise
  bool stopped_by_memory = false;  // ... and that error was the memory limit
  bool timed_out = false;          // this rank's command ran past the timeout (was SIGTERMed)
  bool preempted = false;          // the worker was told to shut down (the command SIGTERMed)
};

// The shard's timeout and this rank's grace after it (the caller caps the grace so the rank
// reports before the coordinator's own deadline for the gang).
struct GangLimits {
  double timeout_s = 0;  // 0: none
  double grace_s = 0;
  double preempt_grace_s = 0;            // SIGTERM -> SIGKILL on preemption
  std::function<bool()> stop_requested;  // a preemption: polled every 50 ms (may be empty)
};

class GangControl {
 public:
  // Collective calls: every rank of the gang calls this at the same point. Fills `env`.
  GangControl(Collective& c, GangEnv* env);
  ~GangControl() = default;

  // Waits for this rank's command while watching the gang, with `memory_mb` > 0 the
  // command's tree against that limit (every 50 ms; over it, the tree is SIGKILLed), and the
  // timeout (SIGTERM to the command's group at limits.timeout_s from now, SIGKILL to its tree
  // limits.grace_s later) and the worker's shutdown (the same with preempt_grace_s).
  // `describe` words a status for the other ranks.
  GangEnd Wait(GuardedCommand& cmd, int64_t memory_mb, const GangLimits& limits,
               const std::function<std::string(ExitStatus)>& describe);

 private:
  void SendLine(int fd, const std::string& line);
  void Broadcast(const std::string& line);  // rank 0: to every peer still connected

  int rank_ = 0;
  Fd listen_;              // rank 0
  std::vector<Fd> peers_;  // rank 0: a connection per rank 1..n-1
  Fd to_lead_;             // rank > 0
};

}  // namespace seedgrid::command

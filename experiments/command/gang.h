// A command gang's control channel: one rank failing fails and stops the gang.
//
// The ranks' commands (an unchanged torch.distributed script) talk among themselves; seedgrid
// must still notice when one of them fails and stop the others, which would otherwise wait in
// a rendezvous or a collective until their timeout. The gang's Collective only has blocking
// calls, so the ranks keep a TCP connection each to rank 0 beside it (its port is shared in
// the rendezvous, with MASTER_PORT):
//
//   rank r > 0 -> rank 0   "E <code> <error text>\n" when r's command ended (code 0: success)
//   rank 0 -> every rank   "K <error text>\n" when a command failed: stop yours
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

namespace seedgrid::command {

struct GangEnv {
  int rank = 0, world = 1, local_rank = 0, local_world = 1;
  std::string master_addr;
  int master_port = 0;
};

class GangControl {
 public:
  // Collective calls: every rank of the gang calls this at the same point. Fills `env`.
  GangControl(Collective& c, GangEnv* env);
  ~GangControl() = default;

  // Waits for `child` (a process group leader) while watching the gang. Returns the child's
  // status, and in `stopped_by` the error of another rank that made this one stop its command
  // (SIGKILL to its group), empty otherwise.
  ExitStatus Wait(Child& child, const std::function<std::string(ExitStatus)>& describe,
                  std::string* stopped_by);

 private:
  void SendLine(int fd, const std::string& line);
  void Broadcast(const std::string& line);  // rank 0: to every peer still connected

  int rank_ = 0;
  Fd listen_;              // rank 0
  std::vector<Fd> peers_;  // rank 0: a connection per rank 1..n-1
  Fd to_lead_;             // rank > 0
};

}  // namespace seedgrid::command

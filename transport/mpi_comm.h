// The coordinator's Comm (core/comm.h) over MPI_COMM_WORLD, both directions: messages to a
// worker rank are encoded once into a reused buffer and sent as one frame; replies are received
// as frames, decoded by the caller (DecodeFromWorker), so the receive costs no copy.
//
// TryRecv is not part of the Comm interface on purpose: the scheduler only sends (it is handed
// each message), and the coordinator's loop calls TryRecv on the concrete type, so a round
// costs no virtual call. Tests fake the seam in memory (tests/support/memory_comm.h).
#pragma once

#include <string>

#include "core/comm.h"
#include "core/protocol.h"
#include "transport/mpi.h"

namespace seedgrid {

class MpiComm final : public Comm {
 public:
  void Send(WorkerId to, const ToWorker& msg) override;
  void Send(WorkerId to, const RunShard& shard) override;

  // One frame from any worker rank into `frame` (its capacity reused): false when nothing is
  // waiting. Never blocks.
  bool TryRecv(std::string* frame, WorkerId* from) {
    int source = 0;
    if (!TryRecvFrame(frame, &source)) return false;
    from->rank = source;
    return true;
  }

 private:
  std::string buf_;
};

}  // namespace seedgrid

// The coordinator's transport seam: MPI in production (transport/mpi_comm.h), in memory in
// tests (tests/support/memory_comm.h, which round-trips every message through the codec).
#pragma once

#include "core/protocol.h"

namespace seedgrid {

class Comm {
 public:
  virtual ~Comm() = default;
  virtual void Send(WorkerId to, const ToWorker& msg) = 0;
  // The dispatch path: a shard sent without building a ToWorker first (that copies every
  // string of it). Transports that encode override it; the default goes through ToWorker.
  virtual void Send(WorkerId to, const RunShard& shard) { Send(to, ToWorker{shard}); }
};

}  // namespace seedgrid

// The transport seam, both ways: MPI in production, in memory in tests
// (tests/support/memory_comm.h, which round-trips every message through the codec).
//   Comm    the coordinator's: messages down to worker ranks (transport/mpi_comm.h).
//   UpLink  a worker's: messages up to the coordinator (worker/worker.cpp over MPI), driven
//           by the worker's supervisor (worker/supervisor.h).
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

class UpLink {
 public:
  virtual ~UpLink() = default;
  virtual void Send(const FromWorker& msg) = 0;
  // A frame that is already a FromWorker encoding (the executor's, forwarded unchanged).
  virtual void SendEncoded(const std::string& frame) = 0;
};

}  // namespace seedgrid

// A worker rank (>= 1): talks MPI to the coordinator and runs shards.
//
// Its policy is the Supervisor (worker/supervisor.h), a pure reactor: per-shard timeouts
// (SIGTERM, grace, SIGKILL, to the executor's process group; the executor enforces memory
// limits itself), a dead executor turned into a failed attempt with its reason (signal, exit
// code, last stderr line), restarts with the shards queued behind re-sent uncharged,
// `isolation: inline` and gang shards run in this process (gang shards need MPI; see
// worker/collective_mpi.h), and every attempt's stdout and stderr in its own log
// (worker/attempt_log.h). RunWorker is its driver: the MPI uplink, the executor child
// (worker/executor.h) with its three pipes, and the clock.
//
// Waiting: the loop polls MPI (MPI_Iprobe) and the executor's pipes together; it spins for a
// few hundred microseconds after activity, then blocks in poll(2) on the pipes for 1–2 ms at a
// time, so an idle or busy worker costs no CPU and a hot one has no wake-up latency.
#pragma once

#include <string>

#include "transport/mpi.h"

namespace seedgrid {

struct WorkerOptions {
  std::string binary;       // this executable (for the executor)
  double kill_grace_s = 3;  // SIGTERM -> SIGKILL on timeout
};

// Returns the exit code the coordinator asked for in Shutdown.
int RunWorker(const MpiSession& mpi, const WorkerOptions& options);

// Compute threads for one worker on this node: SEEDGRID_THREADS, else cores / workers here.
int ThreadsPerWorker(const MpiSession& mpi);

}  // namespace seedgrid

// Rank 0: plans a sweep into the registry, runs the scheduler over MPI, writes every event to
// the registry (the only writer, in batched transactions issued after the dispatch window has
// been refilled, so SQLite stays off the critical path), shows progress, handles preemption
// (SIGTERM/SIGUSR1/SIGINT: stop dispatch, mark in-flight shards preempted, flush, exit 4) and
// publishes runs/<sweep>/results.h5 at the end.
#pragma once

#include <string>
#include <vector>

#include "core/spec.h"
#include "transport/mpi.h"

namespace seedgrid {

struct CoordinatorOptions {
  std::string registry_path;  // absolute
  std::string out_dir;        // absolute artifacts root
  int window = 2;
  bool rerun = false;                     // `seedgrid rerun`: re-queue failed/preempted/orphaned
  std::vector<std::string> rerun_shards;  // --shards: only these (id prefixes)
  std::string resume_hint;                // the command line that resumes, printed on preemption
  bool quiet = false;
  // When set, a JSON file of dispatch statistics: shards, seconds, shards/s, and the round trip
  // (dispatch -> result received) p50/p90/p99/max in microseconds. Benchmarks read it.
  std::string stats_path;
};

// Runs the plan to completion over the MPI job; returns the exit code (also sent to the workers).
// When a worker rank was retired (stuck in an inline or gang shard past its timeout), it does
// not return: once the registry and results.h5 are written it records the code (RankExit) and
// calls MPI_Abort with it, since the stuck rank would keep the job from ending.
int RunCoordinator(const MpiSession& mpi, const Plan& plan, const CoordinatorOptions& options);

// Rank 0's process exit status for the sweep's exit `code`: under the self-launcher
// (SEEDGRID_EXIT_FILE set) the code goes to the launch record as "exit CODE" and the rank exits
// 0 (a rank exiting non-zero would make mpirun abort the job with a page of noise); otherwise
// the code itself.
int RankExit(int code);

// The self-launcher's launch record, SEEDGRID_EXIT_FILE: a memfd of `seedgrid run` that the
// ranks open as /proc/<launcher pid>/fd/<n> (nothing on disk, whatever kills the launcher).
// Lines, each appended by one write(2):
//   rank R PID HOST   a rank has started (every rank, once MPI is up)
//   bye R             worker rank R ends as told (after Shutdown)
//   lost R            rank 0 found worker rank R dead and has said so
//   exit CODE         rank 0's exit code for the sweep (its last line)
// The launcher watches the PIDs: a rank gone without its bye (or exit) line, before any exit
// line, was lost, and the launch exits 3 naming it (app/main.cpp). No-op without the variable.
void AppendLaunchRecord(const std::string& line);

// Sends Shutdown{code} to every worker rank (used when rank 0 fails before scheduling).
void ShutdownWorkers(const MpiSession& mpi, int code);

// Installs the handlers that turn SIGTERM/SIGUSR1/SIGINT into a preemption request.
void InstallPreemptionHandlers();
bool PreemptionRequested();
int PreemptionSignal();

}  // namespace seedgrid

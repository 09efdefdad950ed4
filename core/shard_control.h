// What a runner that starts processes of its own in the worker needs from it beyond
// ShardContext: a command gang's ranks run in their workers' main threads, where the
// supervisor can neither signal them at the timeout nor read the coordinator's Shutdown, so
// each rank's runner sends its command SIGTERM at the timeout or on preemption, waits the
// grace and kills it (experiments/command/gang.h).
//
// The worker's context (worker/shard_exec.cpp) implements this beside ShardContext, and a
// runner that wants it asks with dynamic_cast. Kept out of ShardTaskView and ShardContext
// (core/runner.h) on purpose: every kind, the LibTorch ones included, compiles against that
// header, and only kind: command in a gang reads these.
#pragma once

namespace seedgrid {

struct ShardTimeLimits {
  double timeout_s = 0;  // 0: none
  double grace_s = 0;    // SIGTERM -> SIGKILL; 0: the worker's default
};

class ShardControl {
 public:
  virtual ShardTimeLimits time_limits() const = 0;
  // True once the worker has been told to shut down (a preemption): stop the shard's
  // processes (SIGTERM, the grace, SIGKILL) and end the attempt as `preempted`. Cheap (an
  // MPI_Iprobe): call it every few tens of milliseconds.
  virtual bool stop_requested() const = 0;

 protected:
  ~ShardControl() = default;
};

}  // namespace seedgrid

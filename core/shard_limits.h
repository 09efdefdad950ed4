// A shard's time limits (resources.timeout, resources.grace) for a runner that must enforce
// them itself: a command gang's ranks run in their workers, whose supervisors cannot signal
// them (the gang needs the worker's main thread), so each rank's runner sends its command
// SIGTERM at the timeout, waits the grace and kills it (experiments/command/gang.h).
//
// A context that knows the limits (the worker's, worker/shard_exec.cpp) implements this beside
// ShardContext, and a runner that wants them asks with dynamic_cast. Kept out of
// ShardTaskView (core/runner.h) on purpose: every kind, the LibTorch ones included, compiles
// against that header, and only kind: command in a gang reads these.
#pragma once

namespace seedgrid {

struct ShardTimeLimits {
  double timeout_s = 0;  // 0: none
  double grace_s = 0;    // SIGTERM -> SIGKILL; 0: the worker's default
};

class ShardTimeLimitsSource {
 public:
  virtual ShardTimeLimits time_limits() const = 0;

 protected:
  ~ShardTimeLimitsSource() = default;
};

}  // namespace seedgrid

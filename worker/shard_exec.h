// Runs one shard in the current process: builds the ShardContext, calls the kind's runner,
// writes the shard attributes and publishes the HDF5 file by rename. Used by the executor child
// (isolated shards), by the worker itself (`isolation: inline`, gang shards) and by tests.
// Never throws for a runner failure: an exception becomes ShardDone{outcome = error}.
#pragma once

#include <functional>
#include <string>

#include "core/protocol.h"
#include "core/runner.h"

namespace seedgrid {

struct LocalRunOptions {
  Collective* collective = nullptr;  // gang shards
  bool publish = true;               // false on gang ranks other than the lead
  int threads = 1;
  std::string device = "cpu";
  // Called with (step, total) at most every progress_interval_s (and for the last step).
  std::function<void(int64_t, int64_t)> on_progress;
  double progress_interval_s = 0.5;
  // Gang shards: whether the worker has been told to shut down (core/shard_control.h).
  std::function<bool()> stop_requested;
};

ShardDone RunShardLocally(const RunShard& task, const RunnerRegistry& runners,
                          const LocalRunOptions& options);

// Peak resident set of this process since the last reset, in KiB (VmHWM), then resets it
// (/proc/self/clear_refs), so an executor reports each shard's own peak.
int64_t TakePeakRssKb();
// Current resident set of this process in KiB (/proc/self/statm through a kept descriptor).
int64_t CurrentRssKb();

}  // namespace seedgrid

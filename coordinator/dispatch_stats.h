// Round-trip latencies and the loop's time as the coordinator sees them (benchmarks,
// `seedgrid run --stats-json`): bench/dispatch reads the JSON this writes.
//
// The first completions (the executor's start-up, cold caches) are a warm-up, reported apart:
// the steady-state rate counts from the warm-up's last completion to the last one. Costs the
// loop nothing when not asked for (the coordinator holds none); when asked for, Observe reads
// each round's events once and Mark is a clock read (~25 ns here), inline.
#pragma once

#include <chrono>
#include <cstddef>
#include <cstdint>
#include <string>
#include <vector>

#include "coordinator/scheduler.h"

namespace seedgrid {

class DispatchStats {
 public:
  using Clock = std::chrono::steady_clock;

  // `n`: the number of tasks (samples are preallocated: no reallocation in the loop).
  explicit DispatchStats(size_t n);
  void Observe(const std::vector<SchedEvent>& events);
  void ObserveFlush(double seconds) {
    ++flushes_;
    flush_s_ += seconds;
  }
  // Where the loop's time goes: the time since the previous mark is charged to `phase`.
  enum Phase { kMessages, kRegistry, kCommit, kIdle, kOther, kPhases };
  void Mark(Phase phase) {
    auto t = Clock::now();
    if (finished_ > warmup_) phase_s_[phase] += std::chrono::duration<double>(t - mark_).count();
    mark_ = t;
  }
  // Call once the loop is over: the coordinator thread's CPU time since the warm-up.
  void Stop();
  // The JSON file: shards, seconds, shards/s, round trip p50/p90/p99/mean/max (µs), CPU and
  // loop time per shard, registry commits. Sorts the samples (call once, at the end).
  void Write(const std::string& path);

 private:
  Json PhaseJson() const;

  std::vector<double> sent_;
  std::vector<double> rtt_us_;
  size_t warmup_;
  size_t finished_ = 0;
  double first_ = 0, warm_ = 0, last_ = 0;
  double warm_cpu_ = 0, stop_cpu_ = 0;
  Clock::time_point mark_ = Clock::now();
  double phase_s_[kPhases] = {};
  int64_t flushes_ = 0;
  double flush_s_ = 0;
};

}  // namespace seedgrid

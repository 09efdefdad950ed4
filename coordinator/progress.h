// The coordinator's progress display: on a terminal, one live line rewritten in place
// (done/running/failed/pending, rate, ETA, the stage being worked on and the latest shard
// progress); otherwise (Slurm log files, pipes) a plain line every `interval` seconds.
// SEEDGRID_PROGRESS=tty|plain|off overrides the detection (the self-launcher passes the
// original terminal's answer, since under mpirun stdout is a pipe).
#pragma once

#include <chrono>
#include <string>
#include <vector>

#include "coordinator/scheduler.h"

namespace seedgrid {

class ProgressLine {
 public:
  ProgressLine(std::string sweep, int64_t total, bool quiet);
  void Observe(const std::vector<SchedEvent>& events, const std::vector<SchedTask>& tasks);
  void Tick(const SchedCounts& c) { Tick(c, Clock::now()); }
  void Tick(const SchedCounts& c, std::chrono::steady_clock::time_point now);
  void Finish(const SchedCounts& c, double seconds);

 private:
  std::string Line(const SchedCounts& c, double elapsed) const;
  enum class Mode { kTty, kPlain, kOff };
  using Clock = std::chrono::steady_clock;
  std::string sweep_;
  int64_t total_;
  Mode mode_;
  Clock::time_point start_ = Clock::now(), last_ = Clock::now();
  double interval_s_;
  int64_t done_at_start_ = -1;
  std::string stage_;
  std::string shard_progress_;
  size_t last_width_ = 0;
};

}  // namespace seedgrid

// Live curves: points of a running shard's training curves (loss per step), on their way to the
// coordinator (LivePoints, core/protocol.h) and `seedgrid serve`'s pages.
//
// A runner reports a point with LivePoint(name, step, value), from anywhere in its training loop
// (lora_steer's θ+ and θ− losses, pretrain's loss): like the Python helper's
// seedgrid.log(name, value, step), it needs no handle passed down. A runner whose points are
// written by another process (kind: command: the script's metrics.jsonl) names that file with
// LiveFile(path), and whoever runs the shard tails it. Both go to the LiveSink installed for the
// shard by whoever runs it (ScopedLiveSink: the executor, or the worker for inline and gang
// shards); outside a shard, or in a process that installed none (tests, `seedgrid run-shard`),
// they cost a relaxed atomic load and do nothing.
//
// One shard runs at a time in a process (the executor runs them one after another; the worker
// runs one in-process shard at a time), so the sink is process-wide, not per thread: a runner
// may report from any of its threads.
//
// LiveCoalescer is the rate bound, pure (no clock of its own; `now` is passed in) so tests drive
// it: points are held per curve and taken as one LivePoints message at most once per
// kLiveInterval, thinned to kLiveMaxPoints per curve (see core/protocol.h).
// JsonlTail reads the whole lines appended to a JSON-lines file since the last read.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "core/process.h"
#include "core/protocol.h"

namespace seedgrid {

class LiveSink {
 public:
  virtual ~LiveSink() = default;
  virtual void Point(std::string_view name, int64_t step, double value) = 0;
  virtual void File(const std::string& path) = 0;
};

// To the sink of the shard running in this process; nothing when none is installed.
void LivePoint(std::string_view name, int64_t step, double value);
void LiveFile(const std::string& path);

// Installs `sink` for one shard's run (the previous one, if any, is restored at the end).
class ScopedLiveSink {
 public:
  explicit ScopedLiveSink(LiveSink* sink);
  ~ScopedLiveSink();
  ScopedLiveSink(const ScopedLiveSink&) = delete;
  ScopedLiveSink& operator=(const ScopedLiveSink&) = delete;

 private:
  LiveSink* previous_;
};

class LiveCoalescer {
 public:
  struct Options {
    double interval_s = kLiveInterval;
    size_t max_curves = kLiveMaxCurves;
    size_t max_points = kLiveMaxPoints;  // >= 2
  };
  LiveCoalescer() : LiveCoalescer(Options{}) {}
  explicit LiveCoalescer(Options options) : options_(options) {}

  // Holds a point (non-finite values and curves past max_curves names are dropped).
  void Add(std::string_view name, int64_t step, double value);
  // The held points, when any are held and `now` is at least interval_s after the last take
  // (the first take is due at once). Empties the holding.
  std::optional<std::vector<LiveCurve>> Take(double now);
  // The held points whatever the time (the shard's end); nullopt when none.
  std::optional<std::vector<LiveCurve>> Flush();
  // Forgets the shard's curves (a new shard starts).
  void Reset();
  bool empty() const { return held_ == 0; }

 private:
  Options options_;
  std::vector<LiveCurve> curves_;   // by first appearance; a curve emptied by a take stays
  std::vector<std::string> names_;  // every name seen for this shard (at most max_curves)
  size_t held_ = 0;                 // points held
  std::optional<double> last_take_;
};

// The lines {"name": ..., "value": ..., "step": ...} appended to a file since the last Poll;
// lines without an integer step or a finite number value are skipped (scalars, not curves),
// an incomplete last line is left for the next Poll, and a file that does not exist yet is
// simply empty. Once opened, the file is read through its descriptor: the lines its writer
// appended last are still read after the runner moved or removed the file (a command's
// scratch directory is renamed or removed as soon as the command ends).
class JsonlTail {
 public:
  explicit JsonlTail(std::string path) : path_(std::move(path)) {}
  const std::string& path() const { return path_; }
  // Calls `point` for each new point; reads at most `max_bytes` per call.
  template <typename F>
  void Poll(F&& point, size_t max_bytes = 1 << 20) {
    ReadMore(max_bytes);
    size_t start = 0;
    for (size_t nl; (nl = buf_.find('\n', start)) != std::string::npos; start = nl + 1) {
      std::string name;
      int64_t step = 0;
      double value = 0;
      if (ParseLine(std::string_view(buf_).substr(start, nl - start), &name, &step, &value)) {
        point(name, step, value);
      }
    }
    buf_.erase(0, start);
  }

 private:
  void ReadMore(size_t max_bytes);
  static bool ParseLine(std::string_view line, std::string* name, int64_t* step, double* value);
  std::string path_;
  Fd fd_;
  uint64_t offset_ = 0;
  std::string buf_;
};

}  // namespace seedgrid

// The runner half of an experiment kind: what runs a shard. No LibTorch in this header, so the
// worker and executor compile against it; the LibTorch kinds implement it in experiments/.
//
// A runner writes its arrays into ctx.out() (an HDF5 file under a temporary name), reports
// metrics with ctx.Metric and progress with ctx.Progress, and throws on failure (the message
// becomes the attempt's error). After it returns, the caller writes the shard attributes and
// publishes the file by rename. Extra artifacts (a safetensors checkpoint) go under
// ctx.artifact_dir(); they must be complete before the runner returns, since the shard file is
// the commit point.
#pragma once

#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <stdexcept>
#include <string>
#include <utility>
#include <vector>

#include "core/collective.h"
#include "core/shard_key.h"
#include "core/store.h"
#include "core/types.h"

namespace seedgrid {

// A needed shard's published output: its key (id, stage, kind, seed, params, axes, ...) and
// its files (path, artifact_dir).
using InputArtifact = ShardInput;

// The shard a runner runs: its key (task().key.params(), .role(), ...) and the attempt's
// facts.
struct ShardTaskView {
  ShardKey key;
  std::string sweep;
  int attempt = 1;
  std::vector<InputArtifact> inputs;
  // The shard's memory limit (resources.memory, 0: none). The executor enforces it on its own
  // RSS; a runner that starts processes (kind: command) enforces it on theirs.
  int64_t memory_mb = 0;
};

// Thrown by a runner to end the attempt with an outcome other than `error` (a command over its
// memory limit: `memory`). Any other exception is an `error`.
class ShardFailure : public std::runtime_error {
 public:
  ShardFailure(Outcome outcome, const std::string& message)
      : std::runtime_error(message), outcome_(outcome) {}
  Outcome outcome() const { return outcome_; }

 private:
  Outcome outcome_;
};

class ShardContext {
 public:
  virtual ~ShardContext() = default;
  virtual const ShardTaskView& task() const = 0;
  const Json& params() const { return task().key.params(); }
  int64_t seed() const { return task().key.seed(); }

  virtual H5Writer& out() = 0;             // the shard's HDF5 file (temp name)
  virtual std::string artifact_dir() = 0;  // created on first call
  virtual void Metric(const std::string& name, double value) = 0;
  virtual void Progress(int64_t step, int64_t total) = 0;  // cheap; rate-limited by the caller
  virtual Collective* collective() = 0;                    // nullptr unless a gang shard
  virtual int threads() const = 0;                         // compute threads this shard may use
  virtual std::string device() const = 0;                  // "cpu" or "cuda:N"
};

using Runner = std::function<void(ShardContext&)>;

class RunnerRegistry {
 public:
  void Add(const std::string& kind, Runner runner);
  const Runner* Find(const std::string& kind) const;

 private:
  std::map<std::string, Runner> runners_;
};

// Every runner this build knows: chaos and noop, plus the LibTorch kinds when built with
// SEEDGRID_WITH_TORCH (defined in experiments/all_runners.cpp).
RunnerRegistry& AllRunners();

// Process-wide compute settings for processes that run shards (the executor at start, the
// worker before its first inline or gang shard): LibTorch and OpenBLAS thread pools, malloc
// thresholds. A no-op in builds without LibTorch (experiments/all_runners.cpp).
void ConfigureComputeProcess(int threads);

}  // namespace seedgrid

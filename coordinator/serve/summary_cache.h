// What a sweep's page needs that costs a pass over all its shards: counts by stage and status
// (with the recent ones, for the throughput) and the first failed shards. At 10^6 shards one
// pass takes ~0.6 s of CPU (a join of sweep_shards and shard_states; BENCHMARKS.md §8), too
// slow to run per request. A Refresher thread, on a read-only connection of its own (WAL:
// readers run side by side), recomputes every sweep's aggregates whenever the registry
// changed (PRAGMA data_version) and at least every kMaxAge; requests read the latest result
// from the cache and never wait for a pass. A small sweep's counts are as fresh as the last
// commit plus kPeriod; a 10^6-shard sweep's lag by one pass.
#pragma once

#include <atomic>
#include <chrono>
#include <condition_variable>
#include <map>
#include <mutex>
#include <optional>
#include <string>
#include <thread>
#include <vector>

#include "core/registry.h"

namespace seedgrid::serve {

struct SweepAggregates {
  std::vector<StageStatusCount> counts;  // CountByStatusSince(now - kThroughputWindow)
  std::vector<ShardBrief> failed;        // first page of failed shards
  double computed_at = 0;                // unix seconds the pass started
};

class SummaryCache {
 public:
  std::optional<SweepAggregates> Get(const std::string& sweep) const;
  void Put(const std::string& sweep, SweepAggregates a);
  // Counts completed refresh passes: part of /api/version, so a page re-fetches when new
  // aggregates are in, not only when the registry changed.
  int64_t generation() const { return generation_.load(); }
  void Published() { ++generation_; }

 private:
  std::atomic<int64_t> generation_{0};
  mutable std::mutex mu_;
  std::map<std::string, SweepAggregates> by_sweep_;
};

// Fills `cache` from its own read-only connection to `registry_path` until destroyed.
class Refresher {
 public:
  // Between passes: kPeriod, or as long as the last pass took (at most half a core).
  static constexpr std::chrono::milliseconds kPeriod{200};
  // On NFS/Lustre/GPFS: every 2 s, or four times as long as a pass took (see Loop).
  static constexpr std::chrono::milliseconds kNetworkPeriod{2000};
  static constexpr double kMaxAge = 5;  // seconds: the throughput window moves on its own
  static constexpr int kFailedPage = 50;

  Refresher(const std::string& registry_path, SummaryCache& cache, double throughput_window);
  ~Refresher();  // stops and joins the thread; never throws
  Refresher(const Refresher&) = delete;
  Refresher& operator=(const Refresher&) = delete;

  // One pass over every sweep (the thread's body; public for tests).
  static void RefreshAll(Registry& reg, SummaryCache& cache, double throughput_window);

 private:
  void Loop();
  Registry reg_;
  SummaryCache& cache_;
  double window_;
  std::mutex mu_;
  std::condition_variable cv_;
  bool stop_ = false;
  std::thread thread_;
};

}  // namespace seedgrid::serve

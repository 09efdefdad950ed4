#include "coordinator/serve/summary_cache.h"

#include <algorithm>
#include <cstdio>

#include <fmt/format.h>

namespace seedgrid::serve {

namespace {
double WallNow() {
  return std::chrono::duration<double>(std::chrono::system_clock::now().time_since_epoch()).count();
}
}  // namespace

std::optional<SweepAggregates> SummaryCache::Get(const std::string& sweep) const {
  std::lock_guard<std::mutex> lock(mu_);
  auto it = by_sweep_.find(sweep);
  if (it == by_sweep_.end()) return std::nullopt;
  return it->second;
}

void SummaryCache::Put(const std::string& sweep, SweepAggregates a) {
  std::lock_guard<std::mutex> lock(mu_);
  by_sweep_[sweep] = std::move(a);
}

Refresher::Refresher(const std::string& registry_path, SummaryCache& cache,
                     double throughput_window)
    : reg_(registry_path, Registry::Mode::kReadOnly), cache_(cache), window_(throughput_window) {
  RefreshAll(reg_, cache_, window_);  // the first pages never wait for the thread
  thread_ = std::thread([this] { Loop(); });
}

Refresher::~Refresher() {
  {
    std::lock_guard<std::mutex> lock(mu_);
    stop_ = true;
  }
  cv_.notify_all();
  if (thread_.joinable()) thread_.join();
}

void Refresher::RefreshAll(Registry& reg, SummaryCache& cache, double window) {
  for (const auto& s : reg.Sweeps()) {
    SweepAggregates a;
    a.computed_at = WallNow();
    a.counts = reg.CountByStatusSince(s.name, a.computed_at - window);
    a.failed = reg.ShardPage(ShardPageQuery{s.name, "", "failed", 0, kFailedPage});
    cache.Put(s.name, std::move(a));
  }
  cache.Published();
}

void Refresher::Loop() {
  int64_t seen = reg_.DataVersion();
  double last = WallNow();
  std::chrono::duration<double> wait = kPeriod;
  std::unique_lock<std::mutex> lock(mu_);
  while (!cv_.wait_for(lock, wait, [this] { return stop_; })) {
    lock.unlock();
    try {
      const int64_t v = reg_.DataVersion();
      if (v != seen || WallNow() - last >= kMaxAge) {
        seen = v;
        last = WallNow();
        RefreshAll(reg_, cache_, window_);
        // On a network filesystem (rollback journal) a reader's shared lock holds the
        // coordinator's commits back for the length of a pass: read at most a fifth of the time.
        const double took = WallNow() - last;
        wait = std::max<std::chrono::duration<double>>(
            reg_.on_network_fs() ? kNetworkPeriod : kPeriod,
            std::chrono::duration<double>(took * (reg_.on_network_fs() ? 4 : 1)));
      }
    } catch (const std::exception& e) {
      // A busy or briefly unreadable registry (NFS): keep the last counts, try again.
      fmt::print(stderr, "seedgrid serve: refreshing counts: {}\n", e.what());
    }
    lock.lock();
  }
}

}  // namespace seedgrid::serve

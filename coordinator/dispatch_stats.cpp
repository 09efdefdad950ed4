#include "coordinator/dispatch_stats.h"

#include <time.h>

#include <algorithm>
#include <cstdio>

namespace seedgrid {
namespace {

double ThreadCpuSeconds() {
  timespec ts{};
  clock_gettime(CLOCK_THREAD_CPUTIME_ID, &ts);
  return ts.tv_sec + ts.tv_nsec * 1e-9;
}

}  // namespace

DispatchStats::DispatchStats(size_t n) : sent_(n, 0), warmup_(std::min<size_t>(1000, n / 10)) {
  rtt_us_.reserve(n);  // no reallocation (a copy of every sample so far) in the loop
}

void DispatchStats::Observe(const std::vector<SchedEvent>& events) {
  for (const auto& e : events) {
    if (auto* d = std::get_if<DispatchedEvent>(&e)) {
      sent_[d->task] = d->time;
      if (first_ == 0) first_ = d->time;
    } else if (auto* f = std::get_if<FinishedEvent>(&e)) {
      if (f->done.outcome == Outcome::kPreempted) continue;
      if (++finished_ == warmup_) {
        warm_ = f->time;
        warm_cpu_ = ThreadCpuSeconds();
      }
      if (finished_ > warmup_) rtt_us_.push_back((f->time - sent_[f->task]) * 1e6);
      last_ = f->time;
    }
  }
}

void DispatchStats::Stop() { stop_cpu_ = ThreadCpuSeconds(); }

void DispatchStats::Write(const std::string& path) {
  double sum = 0;
  for (double r : rtt_us_) sum += r;
  std::sort(rtt_us_.begin(), rtt_us_.end());
  auto q = [&](double p) {
    return rtt_us_.empty() ? 0.0
                           : rtt_us_[std::min(rtt_us_.size() - 1, size_t(p * rtt_us_.size()))];
  };
  double secs = last_ - (warmup_ > 0 ? warm_ : first_);
  double all_secs = last_ - first_;
  Json j = {{"shards", rtt_us_.size()},
            {"seconds", secs},
            {"shards_per_s", secs > 0 ? rtt_us_.size() / secs : 0.0},
            {"rtt_us",
             {{"p50", q(0.5)},
              {"p90", q(0.9)},
              {"p99", q(0.99)},
              {"mean", rtt_us_.empty() ? 0.0 : sum / rtt_us_.size()},
              {"max", rtt_us_.empty() ? 0.0 : rtt_us_.back()}}},
            {"warmup_shards", warmup_},
            // The coordinator thread's CPU per shard in steady state: what bounds its rate.
            {"coordinator_cpu_us_per_shard",
             rtt_us_.empty() ? 0.0 : (stop_cpu_ - warm_cpu_) * 1e6 / rtt_us_.size()},
            {"all",
             {{"shards", finished_},
              {"seconds", all_secs},
              {"shards_per_s", all_secs > 0 ? finished_ / all_secs : 0.0}}},
            {"registry_commits", {{"count", flushes_}, {"seconds", flush_s_}}},
            // Coordinator loop time per steady-state shard, by phase (µs).
            {"loop_us_per_shard", PhaseJson()}};
  if (FILE* f = std::fopen(path.c_str(), "w")) {
    std::fputs(j.dump(2).c_str(), f);
    std::fclose(f);
  }
}

Json DispatchStats::PhaseJson() const {
  const double n = std::max<double>(1, static_cast<double>(rtt_us_.size()));
  return {{"messages", phase_s_[kMessages] * 1e6 / n},
          {"registry", phase_s_[kRegistry] * 1e6 / n},
          {"commit", phase_s_[kCommit] * 1e6 / n},
          {"idle", phase_s_[kIdle] * 1e6 / n},
          {"other", phase_s_[kOther] * 1e6 / n}};
}

}  // namespace seedgrid

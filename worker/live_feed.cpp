#include "worker/live_feed.h"

#include <chrono>

namespace seedgrid {

ThreadedLiveFeed::ThreadedLiveFeed(LiveSend send, LiveClock clock, double poll_s)
    : send_(std::move(send)), clock_(std::move(clock)), poll_s_(poll_s) {
  thread_ = std::thread([this] { Loop(); });
}

ThreadedLiveFeed::~ThreadedLiveFeed() {
  {
    std::lock_guard lock(mu_);
    stop_ = true;
  }
  cv_.notify_one();
  thread_.join();
}

void ThreadedLiveFeed::Begin(const ShardId& id, int attempt) {
  std::lock_guard lock(mu_);
  id_ = id;
  attempt_ = attempt;
  coalescer_.Reset();
  tail_.reset();
  active_ = true;
}

void ThreadedLiveFeed::End() {
  std::optional<LivePoints> last;
  {
    std::lock_guard lock(mu_);
    if (!active_) return;
    last = Due(true);
    active_ = false;
    tail_.reset();
  }
  if (last) send_(*last);
}

void ThreadedLiveFeed::Point(std::string_view name, int64_t step, double value) {
  std::lock_guard lock(mu_);
  if (active_) coalescer_.Add(name, step, value);
}

void ThreadedLiveFeed::File(const std::string& path) {
  {
    std::lock_guard lock(mu_);
    if (!active_) return;
    tail_.emplace(path);
  }
  cv_.notify_one();
}

std::optional<LivePoints> ThreadedLiveFeed::Due(bool all) {
  if (tail_) {
    tail_->Poll([&](const std::string& n, int64_t s, double v) { coalescer_.Add(n, s, v); });
  }
  auto curves = all ? coalescer_.Flush() : coalescer_.Take(clock_());
  if (!curves) return std::nullopt;
  return LivePoints{id_, attempt_, std::move(*curves)};
}

void ThreadedLiveFeed::Loop() {
  std::unique_lock lock(mu_);
  while (!stop_) {
    cv_.wait_for(lock, std::chrono::duration<double>(poll_s_));
    if (stop_ || !active_) continue;
    std::optional<LivePoints> due = Due(false);
    if (!due) continue;
    lock.unlock();  // the send takes the frame lock: never both held by this thread
    try {
      send_(*due);
    } catch (const std::exception&) {
      // The worker is gone (EPIPE): the runner's next frame ends this executor.
    }
    lock.lock();
  }
}

void InlineLiveFeed::Point(std::string_view name, int64_t step, double value) {
  coalescer_.Add(name, step, value);
  if (auto curves = coalescer_.Take(clock_())) send_(LivePoints{id_, attempt_, std::move(*curves)});
}

void InlineLiveFeed::End() {
  if (auto curves = coalescer_.Flush()) send_(LivePoints{id_, attempt_, std::move(*curves)});
}

}  // namespace seedgrid

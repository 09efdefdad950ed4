// The polling back-off of the coordinator's and the workers' loops (see the threading contract in
// transport/mpi.h: nobody blocks in MPI). Pure: a clock reading in, a decision out.
#pragma once

#include <chrono>

namespace seedgrid {

// Back-off for polling loops that wait on MPI and pipes together, without threads:
//   * for `spin` after the last activity: busy polling (a reply to a fast shard arrives in
//     microseconds);
//   * until `yield_until`: polling with sched_yield() between rounds, so a busy machine runs
//     the executor or the shard's threads instead of us;
//   * after that: blocking waits of `max_wait_ms` (poll(2) on the pipes, or a sleep), so a
//     worker or coordinator waiting on long shards costs no CPU. Timed sleeps last >= 90 µs on
//     VMs, so they are used only once nothing has happened for a while.
// WaitMs() says how long the caller may block now (0: poll and go on); Active() resets.
class Poller {
 public:
  using Clock = std::chrono::steady_clock;

  Poller(std::chrono::microseconds spin = std::chrono::microseconds(500),
         std::chrono::microseconds yield_until = std::chrono::milliseconds(20), int max_wait_ms = 1)
      : spin_(spin), yield_until_(yield_until), max_wait_ms_(max_wait_ms) {}
  void Active() { Active(Clock::now()); }
  // 0: keep polling (yield first when Yield() says so); > 0: block up to that many ms.
  int WaitMs() const { return WaitMs(Clock::now()); }
  bool Yield() const { return Yield(Clock::now()); }
  // The same with the caller's clock reading (one per polling round).
  void Active(Clock::time_point now) { last_ = now; }
  int WaitMs(Clock::time_point now) const { return now - last_ < yield_until_ ? 0 : max_wait_ms_; }
  bool Yield(Clock::time_point now) const { return now - last_ >= spin_; }
  // An idle round that may not block: yield the core (past the spin) rather than spin.
  bool ShouldYield() const {
    auto idle = Clock::now() - last_;
    return idle >= spin_ && idle < yield_until_;
  }

 private:
  Clock::time_point last_ = Clock::now();
  std::chrono::microseconds spin_;
  std::chrono::microseconds yield_until_;
  int max_wait_ms_;
};

}  // namespace seedgrid

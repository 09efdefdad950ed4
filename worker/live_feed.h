// Live curves on the worker side (core/live.h): the sinks that coalesce a running shard's
// points and send them up as LivePoints, at most once per kLiveInterval (core/protocol.h says
// why and how they are bounded).
//
//   * ThreadedLiveFeed, in the executor: the runner's thread only adds points (a mutex and a
//     vector push); a thread of the feed tails the shard's live file, if it named one
//     (kind: command's metrics.jsonl), every `poll_s`, and sends what is due through `send`
//     (which writes the frame under the executor's frame lock). End() polls the file a last
//     time and sends what is left, before the shard's ShardDone.
//   * InlineLiveFeed, in the worker, for the shards it runs in its own process (inline and
//     gang): the worker's only MPI thread is the runner's, so points go up from the runner's
//     own calls when due, and End() sends the rest. A live file is not tailed there (an inline
//     command waits on its process in that thread); its curves come in the shard file at the end.
#pragma once

#include <condition_variable>
#include <functional>
#include <mutex>
#include <optional>
#include <string>
#include <thread>

#include "core/live.h"
#include "core/protocol.h"

namespace seedgrid {

using LiveSend = std::function<void(const LivePoints&)>;
using LiveClock = std::function<double()>;

class ThreadedLiveFeed final : public LiveSink {
 public:
  ThreadedLiveFeed(LiveSend send, LiveClock clock, double poll_s = 0.2);
  ~ThreadedLiveFeed() override;  // stops and joins the thread
  ThreadedLiveFeed(const ThreadedLiveFeed&) = delete;
  ThreadedLiveFeed& operator=(const ThreadedLiveFeed&) = delete;

  void Begin(const ShardId& id, int attempt);
  void End();
  void Point(std::string_view name, int64_t step, double value) override;
  void File(const std::string& path) override;

 private:
  void Loop();
  // With mu_ held: polls the file, and takes what is due (`all`: whatever is held).
  std::optional<LivePoints> Due(bool all);

  LiveSend send_;
  LiveClock clock_;
  double poll_s_;
  std::mutex mu_;
  std::condition_variable cv_;
  bool active_ = false, stop_ = false;
  ShardId id_;
  int attempt_ = 0;
  LiveCoalescer coalescer_;
  std::optional<JsonlTail> tail_;
  std::thread thread_;  // last: started when the rest is ready
};

class InlineLiveFeed final : public LiveSink {
 public:
  InlineLiveFeed(const ShardId& id, int attempt, LiveSend send, LiveClock clock)
      : id_(id), attempt_(attempt), send_(std::move(send)), clock_(std::move(clock)) {}
  void Point(std::string_view name, int64_t step, double value) override;
  void File(const std::string&) override {}
  void End();

 private:
  ShardId id_;
  int attempt_;
  LiveSend send_;
  LiveClock clock_;
  LiveCoalescer coalescer_;
};

}  // namespace seedgrid

// In-memory transports for the reactors' tests: Comm (the scheduler's, down to workers) and
// UpLink (the worker supervisor's, up to the coordinator). Every message is encoded and decoded
// through the real codec (so a field the codec forgets fails the tests), then queued.
#pragma once

#include <deque>
#include <map>
#include <string>
#include <vector>

#include "core/comm.h"

namespace seedgrid::testing {

class MemoryComm final : public Comm {
 public:
  void Send(WorkerId to, const ToWorker& msg) override {
    std::string buf;
    Encode(msg, &buf);
    inbox[to.rank].push_back(DecodeToWorker(buf));
  }
  // Pops the oldest message for a worker; false when none.
  bool Pop(int rank, ToWorker* out) {
    auto& q = inbox[rank];
    if (q.empty()) return false;
    *out = std::move(q.front());
    q.pop_front();
    return true;
  }
  size_t Pending(int rank) { return inbox[rank].size(); }
  std::map<int, std::deque<ToWorker>> inbox;
};

// Round-trips a worker's message through the codec, as MPI would.
inline FromWorker Wire(const FromWorker& msg) {
  std::string buf;
  Encode(msg, &buf);
  return DecodeFromWorker(buf);
}

class MemoryUpLink final : public UpLink {
 public:
  void Send(const FromWorker& msg) override { sent.push_back(Wire(msg)); }
  void SendEncoded(const std::string& frame) override { sent.push_back(DecodeFromWorker(frame)); }
  // The ShardDone messages sent so far, in order.
  std::vector<ShardDone> Done() const {
    std::vector<ShardDone> out;
    for (const auto& m : sent) {
      if (const auto* d = std::get_if<ShardDone>(&m)) out.push_back(*d);
    }
    return out;
  }
  std::vector<FromWorker> sent;
};

}  // namespace seedgrid::testing

// In-memory Comm for scheduler tests: every message is encoded and decoded through the real
// codec (so a field the codec forgets fails the tests), then queued per worker.
#pragma once

#include <deque>
#include <map>
#include <string>

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

}  // namespace seedgrid::testing

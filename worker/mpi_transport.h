// Thin, checked MPI layer shared by the coordinator and the workers.
//
// Threading contract: only the main thread of each rank calls MPI (the registry's checkpoint
// thread, LibTorch's and OpenBLAS's pools, NCCL's proxy never do). The level requested is
// MPI_THREAD_SINGLE unless SEEDGRID_MPI_THREAD_LEVEL=funneled: Open MPI 4.1 turns on locking
// in every send and receive at any level above SINGLE (opal_uses_threads; a small-message
// round trip went from 0.41-0.57 µs to 0.67-1.66 µs here), and with one MPI thread those
// locks protect nothing. This is the level `MPI_Init` gives, the one most MPI+OpenMP codes run
// at. Nobody blocks in MPI while waiting for work: both sides poll with
// MPI_Iprobe interleaved with their other sources (the executor pipe, signals), with a short
// spin after activity and bounded sleeps when idle (see Poller). Blocking threads were measured
// to add milliseconds of tail latency on small machines (research/calibration.md, Part B).
//
// Every frame is one MPI message of MPI_BYTE with tag kFrameTag on MPI_COMM_WORLD; gang shards
// build their own communicators with MPI_Comm_create_group (collective only over the gang).
#pragma once

#include <mpi.h>

#include <chrono>
#include <cstdint>
#include <string>

#include "core/comm.h"
#include "core/protocol.h"

namespace seedgrid {

[[noreturn]] void ThrowMpiError(const char* call, int code, const char* file, int line);

#define SEEDGRID_MPI_CHECK(call)                                          \
  do {                                                                    \
    int seedgrid_mpi_rc_ = (call);                                        \
    if (seedgrid_mpi_rc_ != MPI_SUCCESS) {                                \
      ::seedgrid::ThrowMpiError(#call, seedgrid_mpi_rc_, __FILE__, __LINE__); \
    }                                                                     \
  } while (0)

inline constexpr int kFrameTag = 7;

// MPI_Init_thread/MPI_Finalize as RAII, plus node-local facts every rank needs.
class MpiSession {
 public:
  MpiSession(int* argc, char*** argv);
  ~MpiSession();  // MPI_Finalize; never throws
  MpiSession(const MpiSession&) = delete;
  MpiSession& operator=(const MpiSession&) = delete;

  int rank() const { return rank_; }
  int size() const { return size_; }
  int local_rank() const { return local_rank_; }   // among ranks on this node
  int local_size() const { return local_size_; }
  bool coordinator_is_local() const { return coordinator_local_; }
  std::string library_version() const;

 private:
  int rank_ = 0, size_ = 1, local_rank_ = 0, local_size_ = 1;
  bool coordinator_local_ = true;
};

// True when this process was started by an MPI launcher (mpirun, srun).
bool UnderMpiLauncher();

// Non-blocking receive of one frame from any rank. Returns false when nothing is waiting.
bool TryRecvFrame(std::string* buf, int* source);
void SendFrame(int dest, const std::string& frame);

// Comm over MPI_COMM_WORLD.
class MpiComm final : public Comm {
 public:
  void Send(WorkerId to, const ToWorker& msg) override;
  void Send(WorkerId to, const RunShard& shard) override;

 private:
  std::string buf_;
};

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

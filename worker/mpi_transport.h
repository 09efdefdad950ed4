// Thin, checked MPI layer shared by the coordinator and the workers.
//
// Threading contract: MPI is initialised with MPI_THREAD_FUNNELED and only the main thread of
// each rank calls MPI. Nobody blocks in MPI while waiting for work: both sides poll with
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

 private:
  std::string buf_;
};

// Spin-then-sleep back-off for polling loops: Idle() returns how long the caller may block
// (0 while spinning shortly after activity, then growing to max_wait); Active() resets it.
class Poller {
 public:
  explicit Poller(std::chrono::microseconds spin = std::chrono::microseconds(300),
                  int max_wait_ms = 2)
      : spin_(spin), max_wait_ms_(max_wait_ms) {}
  void Active() { last_ = Clock::now(); }
  int WaitMs() const {
    auto idle = Clock::now() - last_;
    if (idle < spin_) return 0;
    if (idle < spin_ * 10) return 1;
    return max_wait_ms_;
  }

 private:
  using Clock = std::chrono::steady_clock;
  Clock::time_point last_ = Clock::now();
  std::chrono::microseconds spin_;
  int max_wait_ms_;
};

}  // namespace seedgrid

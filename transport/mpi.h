// Thin, checked MPI layer shared by the coordinator and the workers (target seedgrid_transport,
// the only one besides seedgrid_worker's collectives that calls MPI): the session, the check
// macro and the frame primitives. The coordinator's Comm over them is transport/mpi_comm.h;
// the polling back-off both sides use is transport/poller.h.
//
// Threading contract: only the main thread of each rank calls MPI (the registry's checkpoint
// thread, LibTorch's and OpenBLAS's pools, NCCL's proxy never do). The level requested is
// MPI_THREAD_SINGLE unless SEEDGRID_MPI_THREAD_LEVEL=funneled: Open MPI 4.1 turns on locking
// in every send and receive at any level above SINGLE (opal_uses_threads; a small-message
// round trip went from 0.41-0.57 µs to 0.67-1.66 µs here), and with one MPI thread those
// locks protect nothing. This is the level `MPI_Init` gives, the one most MPI+OpenMP codes run
// at. Nobody blocks in MPI while waiting for work: both sides poll with
// MPI_Iprobe interleaved with their other sources (the executor pipe, signals), with a short
// spin after activity and bounded sleeps when idle (transport/poller.h). Blocking threads were
// measured to add milliseconds of tail latency on small machines (research/calibration.md, Part B).
//
// Every frame is one MPI message of MPI_BYTE with tag kFrameTag on MPI_COMM_WORLD; gang shards
// build their own communicators with MPI_Comm_create_group (collective only over the gang).
#pragma once

#include <mpi.h>

#include <cstdint>
#include <string>

namespace seedgrid {

[[noreturn]] void ThrowMpiError(const char* call, int code, const char* file, int line);

#define SEEDGRID_MPI_CHECK(call)                                              \
  do {                                                                        \
    int seedgrid_mpi_rc_ = (call);                                            \
    if (seedgrid_mpi_rc_ != MPI_SUCCESS) {                                    \
      ::seedgrid::ThrowMpiError(#call, seedgrid_mpi_rc_, __FILE__, __LINE__); \
    }                                                                         \
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
  int local_rank() const { return local_rank_; }  // among ranks on this node
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
// Whether a frame from rank `source` waits, left unreceived (for TryRecvFrame).
bool FrameWaiting(int source);

}  // namespace seedgrid

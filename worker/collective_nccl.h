// Collective over NCCL for gang shards on GPUs (built only with -DSEEDGRID_WITH_CUDA=ON).
//
// Setup, collective over the gang and in this order, so that one rank's failure fails every
// rank with a message instead of leaving the others waiting inside NCCL:
//   1. every rank makes its device current (cudaSetDevice(N) for "cuda:N"; "cuda" keeps the
//      current one) and creates its stream (non-blocking), an event and the barrier's word;
//   2. the ranks learn over the bootstrap that all of them got there (AllReduce min of a flag);
//   3. gang rank 0 calls ncclGetUniqueId and broadcasts it, with a success flag, over the
//      bootstrap;
//   4. every rank calls ncclCommInitRank(size, id, rank).
// The bootstrap is a host-memory Collective over the gang's ranks in gang order: the gang's MPI
// sub-communicator (MpiCollective). It is needed only while constructing.
//
// Buffers are device pointers on this rank's device. Ordering: each call makes its device
// current, makes its stream wait (cudaEventRecord + cudaStreamWaitEvent) for the legacy default
// stream, where LibTorch's default stream queues the kernels that wrote the buffer, enqueues the
// NCCL work and returns after cudaStreamSynchronize, so the result is in place. Work the caller
// queued on other streams must be synchronized by the caller.
// Threading: one thread calls (the worker's main thread), as for MpiCollective.
// Errors: every CUDA and NCCL call is checked and throws std::runtime_error naming the call.
// After a failed call the destructor aborts the communicator (ncclCommAbort) instead of
// destroying it, which would wait for peers that may be gone.
#pragma once

#include <cuda_runtime_api.h>
#include <nccl.h>

#include <cstdint>
#include <string>
#include <vector>

#include "core/collective.h"

namespace seedgrid {

[[noreturn]] void ThrowCudaError(const char* call, cudaError_t code, const char* file, int line);
[[noreturn]] void ThrowNcclError(const char* call, ncclResult_t code, const char* file, int line);

#define SEEDGRID_CUDA_CHECK(call)                                               \
  do {                                                                          \
    cudaError_t seedgrid_cuda_rc_ = (call);                                     \
    if (seedgrid_cuda_rc_ != cudaSuccess) {                                     \
      ::seedgrid::ThrowCudaError(#call, seedgrid_cuda_rc_, __FILE__, __LINE__); \
    }                                                                           \
  } while (0)

#define SEEDGRID_NCCL_CHECK(call)                                               \
  do {                                                                          \
    ncclResult_t seedgrid_nccl_rc_ = (call);                                    \
    if (seedgrid_nccl_rc_ != ncclSuccess) {                                     \
      ::seedgrid::ThrowNcclError(#call, seedgrid_nccl_rc_, __FILE__, __LINE__); \
    }                                                                           \
  } while (0)

class NcclCollective final : public Collective {
 public:
  // `bootstrap`: a host-memory collective over the same ranks (not another NcclCollective).
  // `device`: "cuda:N" or "cuda".
  NcclCollective(Collective& bootstrap, const std::string& device);
  // Bootstraps over the gang's MPI sub-communicator (an MpiCollective over `world_ranks`,
  // tagged by `gang_id`), freed once the NCCL communicator exists.
  NcclCollective(const std::vector<int32_t>& world_ranks, int gang_id, const std::string& device);
  ~NcclCollective()
      override;  // ncclCommDestroy (ncclCommAbort after an error), frees; never throws
  NcclCollective(const NcclCollective&) = delete;
  NcclCollective& operator=(const NcclCollective&) = delete;

  int rank() const override { return rank_; }
  int size() const override { return size_; }
  std::string backend() const override { return "nccl"; }
  int device() const { return device_; }
  void AllReduce(void* data, size_t count, DType type, ReduceOp op) override;
  void Broadcast(void* data, size_t count, DType type, int root) override;
  void Gather(const void* in, void* out, size_t count, DType type, int root) override;
  void Barrier() override;

 private:
  void Init(Collective& bootstrap, const std::string& device);
  void Release() noexcept;
  template <typename Enqueue>
  void Run(Enqueue&& enqueue);

  int rank_ = 0, size_ = 1, device_ = -1;
  bool failed_ = false;
  ncclComm_t comm_ = nullptr;
  cudaStream_t stream_ = nullptr;
  cudaEvent_t ready_ = nullptr;
  int32_t* barrier_word_ = nullptr;  // device memory, one element
};

}  // namespace seedgrid

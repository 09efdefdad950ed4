// Collective: the tensor-moving interface of gang shards (`ranks: k > 1`). A gang's ranks each
// run the same shard; rank 0 of the gang publishes the results.
//
// Backends: MPI (worker/collective_mpi.*, CPU, tested here), NCCL (worker/collective_nccl.*,
// built with -DSEEDGRID_WITH_CUDA=ON; its unique id is broadcast over MPI), and an in-process
// fake over threads for tests (tests/support/fake_collective.h).
//
// Contract: every rank of the gang calls the same collectives in the same order with the same
// counts. Buffers are host pointers for MPI, device pointers for NCCL. Calls block.
#pragma once

#include <cstddef>
#include <cstdint>
#include <string>
#include <vector>

namespace seedgrid {

enum class DType : uint8_t { kFloat32, kFloat64, kInt32, kInt64, kUInt8 };
enum class ReduceOp : uint8_t { kSum, kMax, kMin };

class Collective {
 public:
  virtual ~Collective() = default;
  virtual int rank() const = 0;
  virtual int size() const = 0;
  virtual std::string backend() const = 0;  // "mpi", "nccl", "fake"
  virtual void AllReduce(void* data, size_t count, DType type, ReduceOp op) = 0;
  virtual void Broadcast(void* data, size_t count, DType type, int root) = 0;
  // Gathers `count` elements of every rank to root, rank-major (out has size()*count; root only).
  virtual void Gather(const void* in, void* out, size_t count, DType type, int root) = 0;
  virtual void Barrier() = 0;
};

size_t DTypeSize(DType t);

}  // namespace seedgrid

// Collective over MPI for gang shards. The communicator is built with MPI_Comm_create_group
// over the gang's world ranks (collective only over those ranks, so the rest of the job keeps
// working), tagged with the gang id so concurrent gangs cannot mix.
// Threading: called from the worker's main thread only (MPI_THREAD_FUNNELED).
#pragma once

#include <mpi.h>

#include <vector>

#include "core/collective.h"

namespace seedgrid {

class MpiCollective final : public Collective {
 public:
  MpiCollective(const std::vector<int32_t>& world_ranks, int gang_id);
  ~MpiCollective() override;  // MPI_Comm_free; never throws
  MpiCollective(const MpiCollective&) = delete;
  MpiCollective& operator=(const MpiCollective&) = delete;

  int rank() const override { return rank_; }
  int size() const override { return size_; }
  std::string backend() const override { return "mpi"; }
  void AllReduce(void* data, size_t count, DType type, ReduceOp op) override;
  void Broadcast(void* data, size_t count, DType type, int root) override;
  void Gather(const void* in, void* out, size_t count, DType type, int root) override;
  void Barrier() override;

 private:
  MPI_Comm comm_ = MPI_COMM_NULL;
  int rank_ = 0, size_ = 1;
};

}  // namespace seedgrid

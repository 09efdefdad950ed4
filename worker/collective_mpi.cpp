#include "worker/collective_mpi.h"

#include <climits>
#include <stdexcept>

#include "transport/mpi.h"

namespace seedgrid {
namespace {

MPI_Datatype ToMpi(DType t) {
  switch (t) {
    case DType::kFloat32: return MPI_FLOAT;
    case DType::kFloat64: return MPI_DOUBLE;
    case DType::kInt32: return MPI_INT32_T;
    case DType::kInt64: return MPI_INT64_T;
    case DType::kUInt8: return MPI_UINT8_T;
  }
  return MPI_BYTE;
}

MPI_Op ToMpi(ReduceOp op) {
  switch (op) {
    case ReduceOp::kSum: return MPI_SUM;
    case ReduceOp::kMax: return MPI_MAX;
    case ReduceOp::kMin: return MPI_MIN;
  }
  return MPI_SUM;
}

// MPI counts are int: large buffers go in chunks.
constexpr size_t kChunk = size_t{1} << 30;

}  // namespace

MpiCollective::MpiCollective(const std::vector<int32_t>& world_ranks, int gang_id) {
  MPI_Group world, group;
  SEEDGRID_MPI_CHECK(MPI_Comm_group(MPI_COMM_WORLD, &world));
  std::vector<int> ranks(world_ranks.begin(), world_ranks.end());
  SEEDGRID_MPI_CHECK(MPI_Group_incl(world, static_cast<int>(ranks.size()), ranks.data(), &group));
  int rc = MPI_Comm_create_group(MPI_COMM_WORLD, group, 1000 + (gang_id % 30000), &comm_);
  MPI_Group_free(&group);
  MPI_Group_free(&world);
  if (rc != MPI_SUCCESS) ThrowMpiError("MPI_Comm_create_group", rc, __FILE__, __LINE__);
  MPI_Comm_set_errhandler(comm_, MPI_ERRORS_RETURN);
  SEEDGRID_MPI_CHECK(MPI_Comm_rank(comm_, &rank_));
  SEEDGRID_MPI_CHECK(MPI_Comm_size(comm_, &size_));
}

MpiCollective::~MpiCollective() {
  if (comm_ != MPI_COMM_NULL) MPI_Comm_free(&comm_);
}

void MpiCollective::AllReduce(void* data, size_t count, DType type, ReduceOp op) {
  char* p = static_cast<char*>(data);
  for (size_t off = 0; off < count; off += kChunk) {
    int n = static_cast<int>(std::min(kChunk, count - off));
    SEEDGRID_MPI_CHECK(
        MPI_Allreduce(MPI_IN_PLACE, p + off * DTypeSize(type), n, ToMpi(type), ToMpi(op), comm_));
  }
}

void MpiCollective::Broadcast(void* data, size_t count, DType type, int root) {
  char* p = static_cast<char*>(data);
  for (size_t off = 0; off < count; off += kChunk) {
    int n = static_cast<int>(std::min(kChunk, count - off));
    SEEDGRID_MPI_CHECK(MPI_Bcast(p + off * DTypeSize(type), n, ToMpi(type), root, comm_));
  }
}

void MpiCollective::Gather(const void* in, void* out, size_t count, DType type, int root) {
  if (count > static_cast<size_t>(INT_MAX)) throw std::runtime_error("Gather: count too large");
  SEEDGRID_MPI_CHECK(MPI_Gather(in, static_cast<int>(count), ToMpi(type), out,
                                static_cast<int>(count), ToMpi(type), root, comm_));
}

void MpiCollective::Barrier() { SEEDGRID_MPI_CHECK(MPI_Barrier(comm_)); }

}  // namespace seedgrid

#include "transport/mpi_comm.h"

namespace seedgrid {

void MpiComm::Send(WorkerId to, const ToWorker& msg) {
  buf_.clear();
  Encode(msg, &buf_);
  SendFrame(to.rank, buf_);
}

void MpiComm::Send(WorkerId to, const RunShard& shard) {
  buf_.clear();
  Encode(shard, &buf_);
  SendFrame(to.rank, buf_);
}

}  // namespace seedgrid

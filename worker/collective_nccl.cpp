#include "worker/collective_nccl.h"

#include <charconv>
#include <cstring>
#include <stdexcept>

#include <fmt/format.h>

#include "worker/collective_mpi.h"

#if NCCL_VERSION_CODE < NCCL_VERSION(2, 7, 0)
#error "the NCCL collective needs NCCL >= 2.7 (ncclSend/ncclRecv)"
#endif

namespace seedgrid {

void ThrowCudaError(const char* call, cudaError_t code, const char* file, int line) {
  throw std::runtime_error(fmt::format("{} failed at {}:{}: {} ({})", call, file, line,
                                       cudaGetErrorString(code), cudaGetErrorName(code)));
}

void ThrowNcclError(const char* call, ncclResult_t code, const char* file, int line) {
  std::string detail;
#if NCCL_VERSION_CODE >= NCCL_VERSION(2, 13, 0)
  if (const char* last = ncclGetLastError(nullptr); last && *last)
    detail = fmt::format(" ({})", last);
#endif
  throw std::runtime_error(
      fmt::format("{} failed at {}:{}: {}{}", call, file, line, ncclGetErrorString(code), detail));
}

namespace {

ncclDataType_t ToNccl(DType t) {
  switch (t) {
    case DType::kFloat32: return ncclFloat32;
    case DType::kFloat64: return ncclFloat64;
    case DType::kInt32: return ncclInt32;
    case DType::kInt64: return ncclInt64;
    case DType::kUInt8: return ncclUint8;
  }
  throw std::invalid_argument("NcclCollective: unknown DType");
}

ncclRedOp_t ToNccl(ReduceOp op) {
  switch (op) {
    case ReduceOp::kSum: return ncclSum;
    case ReduceOp::kMax: return ncclMax;
    case ReduceOp::kMin: return ncclMin;
  }
  throw std::invalid_argument("NcclCollective: unknown ReduceOp");
}

// "cuda:N" → N; "cuda" → the current device.
int ParseDevice(const std::string& device) {
  if (device == "cuda") {
    int current = 0;
    SEEDGRID_CUDA_CHECK(cudaGetDevice(&current));
    return current;
  }
  int n = -1;
  if (device.starts_with("cuda:")) {
    const char* first = device.data() + 5;
    const char* last = device.data() + device.size();
    auto [end, ec] = std::from_chars(first, last, n);
    if (ec == std::errc() && end == last && first != last && n >= 0) return n;
  }
  throw std::invalid_argument(
      fmt::format("NcclCollective: device \"{}\" is not \"cuda\" or \"cuda:N\"", device));
}

void CheckRoot(int root, int size, const char* call) {
  if (root < 0 || root >= size)
    throw std::invalid_argument(
        fmt::format("NcclCollective::{}: root {} is not a rank of a gang of {}", call, root, size));
}

}  // namespace

NcclCollective::NcclCollective(Collective& bootstrap, const std::string& device) {
  try {
    Init(bootstrap, device);
  } catch (...) {
    Release();
    throw;
  }
}

NcclCollective::NcclCollective(const std::vector<int32_t>& world_ranks, int gang_id,
                               const std::string& device) {
  MpiCollective bootstrap(world_ranks, gang_id);
  try {
    Init(bootstrap, device);
  } catch (...) {
    Release();
    throw;
  }
}

NcclCollective::~NcclCollective() { Release(); }

void NcclCollective::Init(Collective& bootstrap, const std::string& device) {
  if (bootstrap.backend() == "nccl")
    throw std::invalid_argument("NcclCollective: the bootstrap must be a host-memory collective");
  rank_ = bootstrap.rank();
  size_ = bootstrap.size();

  // 1–2. Local CUDA setup; then every rank learns whether all of them got this far.
  std::string local_error;
  try {
    device_ = ParseDevice(device);
    SEEDGRID_CUDA_CHECK(cudaSetDevice(device_));
    SEEDGRID_CUDA_CHECK(cudaStreamCreateWithFlags(&stream_, cudaStreamNonBlocking));
    SEEDGRID_CUDA_CHECK(cudaEventCreateWithFlags(&ready_, cudaEventDisableTiming));
    SEEDGRID_CUDA_CHECK(cudaMalloc(reinterpret_cast<void**>(&barrier_word_), sizeof(int32_t)));
    SEEDGRID_CUDA_CHECK(cudaMemset(barrier_word_, 0, sizeof(int32_t)));
  } catch (const std::exception& e) {
    local_error = e.what();
  }
  int32_t all_ok = local_error.empty() ? 1 : 0;
  bootstrap.AllReduce(&all_ok, 1, DType::kInt32, ReduceOp::kMin);
  if (!local_error.empty()) throw std::runtime_error(local_error);
  if (!all_ok) throw std::runtime_error("NcclCollective: another gang rank could not set up CUDA");

  // 3. Gang rank 0 makes the unique id; the byte after it says whether that worked.
  ncclUniqueId id{};
  unsigned char blob[sizeof(ncclUniqueId) + 1] = {};
  std::string id_error;
  if (rank_ == 0) {
    try {
      SEEDGRID_NCCL_CHECK(ncclGetUniqueId(&id));
      std::memcpy(blob, &id, sizeof id);
      blob[sizeof id] = 1;
    } catch (const std::exception& e) {
      id_error = e.what();
    }
  }
  bootstrap.Broadcast(blob, sizeof blob, DType::kUInt8, 0);
  if (blob[sizeof id] != 1)
    throw std::runtime_error(rank_ == 0 ? id_error
                                        : "NcclCollective: gang rank 0 could not get an NCCL id");
  std::memcpy(&id, blob, sizeof id);

  // 4. Blocks until every rank of the gang has joined.
  failed_ = true;  // until it succeeds: a half-made communicator is aborted
  SEEDGRID_NCCL_CHECK(ncclCommInitRank(&comm_, size_, id, rank_));
  failed_ = false;
}

void NcclCollective::Release() noexcept {
  if (device_ >= 0) cudaSetDevice(device_);
  if (comm_) {
    if (failed_)
      ncclCommAbort(comm_);
    else
      ncclCommDestroy(comm_);
    comm_ = nullptr;
  }
  if (barrier_word_) cudaFree(barrier_word_);
  if (ready_) cudaEventDestroy(ready_);
  if (stream_) cudaStreamDestroy(stream_);
  barrier_word_ = nullptr;
  ready_ = nullptr;
  stream_ = nullptr;
}

template <typename Enqueue>
void NcclCollective::Run(Enqueue&& enqueue) {
  try {
    SEEDGRID_CUDA_CHECK(cudaSetDevice(device_));
    SEEDGRID_CUDA_CHECK(cudaEventRecord(ready_, cudaStreamLegacy));
    SEEDGRID_CUDA_CHECK(cudaStreamWaitEvent(stream_, ready_, 0));
    enqueue();
    SEEDGRID_CUDA_CHECK(cudaStreamSynchronize(stream_));
  } catch (...) {
    failed_ = true;
    throw;
  }
}

// Counts are equal on every rank (core/collective.h), so returning early on 0 keeps the ranks
// in step.

void NcclCollective::AllReduce(void* data, size_t count, DType type, ReduceOp op) {
  if (count == 0) return;
  Run([&] {
    SEEDGRID_NCCL_CHECK(ncclAllReduce(data, data, count, ToNccl(type), ToNccl(op), comm_, stream_));
  });
}

void NcclCollective::Broadcast(void* data, size_t count, DType type, int root) {
  CheckRoot(root, size_, "Broadcast");
  if (count == 0) return;
  Run([&] {
    SEEDGRID_NCCL_CHECK(ncclBroadcast(data, data, count, ToNccl(type), root, comm_, stream_));
  });
}

void NcclCollective::Gather(const void* in, void* out, size_t count, DType type, int root) {
  CheckRoot(root, size_, "Gather");
  if (count == 0) return;
  const size_t bytes = count * DTypeSize(type);
  const ncclDataType_t t = ToNccl(type);
  Run([&] {
    if (rank_ == root) {
      char* dst = static_cast<char*>(out);
      SEEDGRID_CUDA_CHECK(cudaMemcpyAsync(dst + static_cast<size_t>(root) * bytes, in, bytes,
                                          cudaMemcpyDeviceToDevice, stream_));
    }
    if (size_ == 1) return;
    // Every send/recv of one rank in one group, so they progress together; the group is closed
    // even when an enqueue fails.
    SEEDGRID_NCCL_CHECK(ncclGroupStart());
    ncclResult_t rc = ncclSuccess;
    const char* failed_call = nullptr;
    if (rank_ == root) {
      char* dst = static_cast<char*>(out);
      for (int r = 0; r < size_ && rc == ncclSuccess; ++r) {
        if (r == root) continue;
        rc = ncclRecv(dst + static_cast<size_t>(r) * bytes, count, t, r, comm_, stream_);
        failed_call = "ncclRecv";
      }
    } else {
      rc = ncclSend(in, count, t, root, comm_, stream_);
      failed_call = "ncclSend";
    }
    const ncclResult_t end = ncclGroupEnd();
    if (rc != ncclSuccess) ThrowNcclError(failed_call, rc, __FILE__, __LINE__);
    if (end != ncclSuccess) ThrowNcclError("ncclGroupEnd()", end, __FILE__, __LINE__);
  });
}

void NcclCollective::Barrier() {
  Run([&] {
    SEEDGRID_NCCL_CHECK(
        ncclAllReduce(barrier_word_, barrier_word_, 1, ncclInt32, ncclSum, comm_, stream_));
  });
}

}  // namespace seedgrid

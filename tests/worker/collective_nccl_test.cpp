// NcclCollective with MPI_COMM_WORLD as the gang, each rank on device `rank % device count`.
// ctest runs it twice (tests/worker/CMakeLists.txt, label gpu): under `mpirun -n 1` (a gang of
// one: the identities) and `mpirun -n 2` (sums, maxima, broadcast, rank-major gather, barrier).
// Without a CUDA device it exits 77, which ctest reports as skipped (SKIP_RETURN_CODE).
//
// Every rank runs the same tests in the same order, and a test calls the same collectives on
// every rank: checks are EXPECT_*, never an early return between two collectives.
#include <cuda_runtime_api.h>
#include <gtest/gtest.h>
#include <mpi.h>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <memory>
#include <numeric>
#include <string>
#include <thread>
#include <vector>

#include <fmt/format.h>

#include "transport/mpi.h"
#include "worker/collective_mpi.h"
#include "worker/collective_nccl.h"

namespace seedgrid {
namespace {

int g_rank = 0, g_size = 1, g_devices = 0;

std::vector<int32_t> WorldRanks() {
  std::vector<int32_t> ranks(static_cast<size_t>(g_size));
  std::iota(ranks.begin(), ranks.end(), 0);
  return ranks;
}

std::string MyDevice() { return fmt::format("cuda:{}", g_rank % g_devices); }

// Device memory for `n` values of T, filled from and read back to host vectors.
template <typename T>
class DeviceBuffer {
 public:
  explicit DeviceBuffer(size_t n) : n_(n) {
    SEEDGRID_CUDA_CHECK(
        cudaMalloc(reinterpret_cast<void**>(&p_), std::max<size_t>(n, 1) * sizeof(T)));
  }
  explicit DeviceBuffer(const std::vector<T>& v) : DeviceBuffer(v.size()) { Upload(v); }
  ~DeviceBuffer() { cudaFree(p_); }
  DeviceBuffer(const DeviceBuffer&) = delete;
  DeviceBuffer& operator=(const DeviceBuffer&) = delete;

  T* get() const { return p_; }
  void Upload(const std::vector<T>& v) {
    SEEDGRID_CUDA_CHECK(cudaMemcpy(p_, v.data(), v.size() * sizeof(T), cudaMemcpyHostToDevice));
  }
  std::vector<T> Download() const {
    std::vector<T> v(n_);
    SEEDGRID_CUDA_CHECK(cudaMemcpy(v.data(), p_, n_ * sizeof(T), cudaMemcpyDeviceToHost));
    return v;
  }

 private:
  size_t n_;
  T* p_ = nullptr;
};

class NcclCollectiveTest : public ::testing::Test {
 protected:
  static void SetUpTestSuite() {
    gang_ = std::make_unique<NcclCollective>(WorldRanks(), /*gang_id=*/7, MyDevice());
  }
  static void TearDownTestSuite() { gang_.reset(); }
  static std::unique_ptr<NcclCollective> gang_;
};

std::unique_ptr<NcclCollective> NcclCollectiveTest::gang_;

TEST_F(NcclCollectiveTest, RankAndSizeAreTheGangs) {
  EXPECT_EQ(gang_->rank(), g_rank);
  EXPECT_EQ(gang_->size(), g_size);
  EXPECT_EQ(gang_->backend(), "nccl");
  EXPECT_EQ(gang_->device(), g_rank % g_devices);
}

TEST_F(NcclCollectiveTest, AllReduceSumsAndMaxima) {
  const float r = static_cast<float>(g_rank);
  DeviceBuffer<float> sum(std::vector<float>{r + 1, 10 * (r + 1), -r});
  gang_->AllReduce(sum.get(), 3, DType::kFloat32, ReduceOp::kSum);
  const float n = static_cast<float>(g_size);
  EXPECT_EQ(sum.Download(),
            (std::vector<float>{n * (n + 1) / 2, 10 * n * (n + 1) / 2, -n * (n - 1) / 2}));

  DeviceBuffer<double> max(std::vector<double>{static_cast<double>(g_rank), -1.0 * g_rank});
  gang_->AllReduce(max.get(), 2, DType::kFloat64, ReduceOp::kMax);
  EXPECT_EQ(max.Download(), (std::vector<double>{g_size - 1.0, 0.0}));

  DeviceBuffer<int64_t> min(std::vector<int64_t>{int64_t{1} << 40 | g_rank});
  gang_->AllReduce(min.get(), 1, DType::kInt64, ReduceOp::kMin);
  EXPECT_EQ(min.Download(), (std::vector<int64_t>{int64_t{1} << 40}));

  DeviceBuffer<uint8_t> bytes(std::vector<uint8_t>{1, static_cast<uint8_t>(g_rank)});
  gang_->AllReduce(bytes.get(), 2, DType::kUInt8, ReduceOp::kMax);
  EXPECT_EQ(bytes.Download(), (std::vector<uint8_t>{1, static_cast<uint8_t>(g_size - 1)}));
}

// The stream the collective runs on does not synchronize with the default stream by itself:
// the input written there by an asynchronous memset must be waited for.
TEST_F(NcclCollectiveTest, AllReduceWaitsForTheDefaultStream) {
  const size_t n = size_t{64} << 20;
  DeviceBuffer<uint8_t> buf(n);
  SEEDGRID_CUDA_CHECK(cudaMemsetAsync(buf.get(), 0, n, cudaStreamLegacy));
  SEEDGRID_CUDA_CHECK(cudaMemsetAsync(buf.get(), 1, n, cudaStreamLegacy));
  gang_->AllReduce(buf.get(), n, DType::kUInt8, ReduceOp::kSum);
  const std::vector<uint8_t> got = buf.Download();
  EXPECT_EQ(std::count(got.begin(), got.end(), static_cast<uint8_t>(g_size)),
            static_cast<std::ptrdiff_t>(n));
}

TEST_F(NcclCollectiveTest, BroadcastCopiesTheRootsBuffer) {
  const int root = g_size - 1;
  std::vector<int32_t> mine(5, -1);
  if (g_rank == root) mine = {42, 43, 44, 45, 46};
  DeviceBuffer<int32_t> buf(mine);
  gang_->Broadcast(buf.get(), 5, DType::kInt32, root);
  EXPECT_EQ(buf.Download(), (std::vector<int32_t>{42, 43, 44, 45, 46}));
}

TEST_F(NcclCollectiveTest, GatherIsRankMajorAtEitherRoot) {
  for (const int root : {0, g_size - 1}) {
    std::vector<int64_t> mine(3);
    for (int i = 0; i < 3; ++i) mine[static_cast<size_t>(i)] = 100 * g_rank + i;
    DeviceBuffer<int64_t> in(mine);
    DeviceBuffer<int64_t> out(std::vector<int64_t>(3 * static_cast<size_t>(g_size), -7));
    gang_->Gather(in.get(), out.get(), 3, DType::kInt64, root);
    std::vector<int64_t> want(3 * static_cast<size_t>(g_size), -7);  // untouched off the root
    if (g_rank == root)
      for (int r = 0; r < g_size; ++r)
        for (int i = 0; i < 3; ++i) want[static_cast<size_t>(3 * r + i)] = 100 * r + i;
    EXPECT_EQ(out.Download(), want) << "root " << root;
  }
}

TEST_F(NcclCollectiveTest, BarrierWaitsForTheLastRank) {
  gang_->Barrier();
  if (g_rank == 0) std::this_thread::sleep_for(std::chrono::milliseconds(300));
  const auto start = std::chrono::steady_clock::now();
  gang_->Barrier();
  const double waited =
      std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
  if (g_rank != 0) {
    EXPECT_GT(waited, 0.2);
  }
}

TEST_F(NcclCollectiveTest, ZeroCountsAreNoOps) {
  gang_->AllReduce(nullptr, 0, DType::kFloat32, ReduceOp::kSum);
  gang_->Broadcast(nullptr, 0, DType::kFloat32, 0);
  gang_->Gather(nullptr, nullptr, 0, DType::kFloat32, 0);
  gang_->Barrier();
}

TEST(NcclCollectiveSetup, BootstrapsOverAHostCollective) {
  MpiCollective bootstrap(WorldRanks(), /*gang_id=*/8);
  NcclCollective gang(bootstrap, MyDevice());
  DeviceBuffer<int32_t> one(std::vector<int32_t>{1});
  gang.AllReduce(one.get(), 1, DType::kInt32, ReduceOp::kSum);
  EXPECT_EQ(one.Download(), (std::vector<int32_t>{g_size}));
}

// One rank's bad device fails every rank (none is left waiting in ncclCommInitRank).
TEST(NcclCollectiveSetup, ABadDeviceOnOneRankFailsEveryRank) {
  const std::string device = g_rank == 0 ? "gpu:0" : MyDevice();
  try {
    NcclCollective gang(WorldRanks(), /*gang_id=*/9, device);
    ADD_FAILURE() << "constructed on " << device;
  } catch (const std::exception& e) {
    EXPECT_NE(std::string(e.what()).find(g_rank == 0 ? "is not \"cuda\"" : "another gang rank"),
              std::string::npos)
        << e.what();
  }
}

TEST(NcclCollectiveSetup, RefusesAnNcclBootstrap) {
  MpiCollective bootstrap(WorldRanks(), /*gang_id=*/10);
  NcclCollective first(bootstrap, MyDevice());
  EXPECT_THROW({ NcclCollective second(first, MyDevice()); }, std::invalid_argument);
}

}  // namespace
}  // namespace seedgrid

int main(int argc, char** argv) {
  seedgrid::MpiSession mpi(&argc, &argv);
  seedgrid::g_rank = mpi.rank();
  seedgrid::g_size = mpi.size();
  if (cudaGetDeviceCount(&seedgrid::g_devices) != cudaSuccess || seedgrid::g_devices == 0) {
    if (mpi.rank() == 0) std::printf("no CUDA device: skipped\n");
    return 77;
  }
  ::testing::InitGoogleTest(&argc, argv);
  return RUN_ALL_TESTS();
}

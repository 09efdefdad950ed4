// An in-process Collective over threads, for gang tests without MPI: one FakeGang of n ranks,
// each rank's Collective used by its own thread (core/collective.h's contract: every rank calls
// the same collectives in the same order with the same counts).
//
// Reductions are computed by every rank in rank order from all inputs, so every rank gets the
// bitwise-same result, as MPI_Allreduce gives. Buffers are host memory.
#pragma once

#include <condition_variable>
#include <cstdint>
#include <cstring>
#include <memory>
#include <mutex>
#include <stdexcept>
#include <string>
#include <vector>

#include "core/collective.h"

namespace seedgrid::testing {

class FakeGang {
 public:
  explicit FakeGang(int size) : size_(size), slots_(static_cast<size_t>(size)) {
    if (size < 1) throw std::invalid_argument("FakeGang: size must be >= 1");
  }
  int size() const { return size_; }

  // The Collective of `rank`; the gang must outlive it.
  std::unique_ptr<Collective> Member(int rank);

  // Cyclic barrier over all ranks.
  void Arrive() {
    std::unique_lock<std::mutex> lock(mu_);
    const uint64_t gen = generation_;
    if (++waiting_ == size_) {
      waiting_ = 0;
      ++generation_;
      cv_.notify_all();
      return;
    }
    cv_.wait(lock, [&] { return generation_ != gen; });
  }

  std::vector<const void*>& slots() { return slots_; }

 private:
  int size_;
  std::mutex mu_;
  std::condition_variable cv_;
  int waiting_ = 0;
  uint64_t generation_ = 0;
  std::vector<const void*> slots_;
};

class FakeCollective : public Collective {
 public:
  FakeCollective(FakeGang& gang, int rank) : gang_(gang), rank_(rank) {}
  int rank() const override { return rank_; }
  int size() const override { return gang_.size(); }
  std::string backend() const override { return "fake"; }

  void AllReduce(void* data, size_t count, DType type, ReduceOp op) override {
    const size_t bytes = count * DTypeSize(type);
    std::vector<uint8_t> result(bytes);
    gang_.slots()[static_cast<size_t>(rank_)] = data;
    gang_.Arrive();
    std::memcpy(result.data(), gang_.slots()[0], bytes);
    for (int r = 1; r < size(); ++r)
      Combine(result.data(), gang_.slots()[static_cast<size_t>(r)], count, type, op);
    gang_.Arrive();  // everyone has read every input
    std::memcpy(data, result.data(), bytes);
    gang_.Arrive();
  }

  void Broadcast(void* data, size_t count, DType type, int root) override {
    gang_.slots()[static_cast<size_t>(rank_)] = data;
    gang_.Arrive();
    if (rank_ != root)
      std::memcpy(data, gang_.slots()[static_cast<size_t>(root)], count * DTypeSize(type));
    gang_.Arrive();
  }

  void Gather(const void* in, void* out, size_t count, DType type, int root) override {
    gang_.slots()[static_cast<size_t>(rank_)] = in;
    gang_.Arrive();
    if (rank_ == root) {
      const size_t bytes = count * DTypeSize(type);
      for (int r = 0; r < size(); ++r)
        std::memcpy(static_cast<uint8_t*>(out) + bytes * static_cast<size_t>(r),
                    gang_.slots()[static_cast<size_t>(r)], bytes);
    }
    gang_.Arrive();
  }

  void Barrier() override { gang_.Arrive(); }

 private:
  template <typename T>
  static void CombineAs(void* acc, const void* in, size_t count, ReduceOp op) {
    auto* a = static_cast<T*>(acc);
    const auto* b = static_cast<const T*>(in);
    for (size_t i = 0; i < count; ++i) {
      switch (op) {
        case ReduceOp::kSum: a[i] = static_cast<T>(a[i] + b[i]); break;
        case ReduceOp::kMax: a[i] = a[i] < b[i] ? b[i] : a[i]; break;
        case ReduceOp::kMin: a[i] = b[i] < a[i] ? b[i] : a[i]; break;
      }
    }
  }
  static void Combine(void* acc, const void* in, size_t count, DType type, ReduceOp op) {
    switch (type) {
      case DType::kFloat32: CombineAs<float>(acc, in, count, op); break;
      case DType::kFloat64: CombineAs<double>(acc, in, count, op); break;
      case DType::kInt32: CombineAs<int32_t>(acc, in, count, op); break;
      case DType::kInt64: CombineAs<int64_t>(acc, in, count, op); break;
      case DType::kUInt8: CombineAs<uint8_t>(acc, in, count, op); break;
    }
  }

  FakeGang& gang_;
  int rank_;
};

inline std::unique_ptr<Collective> FakeGang::Member(int rank) {
  if (rank < 0 || rank >= size_) throw std::out_of_range("FakeGang::Member: bad rank");
  return std::make_unique<FakeCollective>(*this, rank);
}

}  // namespace seedgrid::testing

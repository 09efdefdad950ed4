#include "experiments/model/runtime_env.h"

#include <dlfcn.h>
#include <malloc.h>

#include <ATen/Parallel.h>
#include <c10/core/DeviceType.h>
#include <c10/core/impl/DeviceGuardImplInterface.h>

#include <mutex>
#include <stdexcept>

namespace seedgrid {

void ConfigureTorchProcess(int threads) {
  if (threads < 1) threads = 1;
  mallopt(M_MMAP_THRESHOLD, 64 << 20);
  mallopt(M_TRIM_THRESHOLD, 1 << 30);
  at::set_num_threads(threads);
  // OpenBLAS keeps its own pool; reach it if the BLAS in this process is OpenBLAS.
  using SetThreads = void (*)(int);
  if (auto* fn = reinterpret_cast<SetThreads>(dlsym(RTLD_DEFAULT, "openblas_set_num_threads")))
    fn(threads);
  static std::once_flag once;
  std::call_once(once, [] {
    try {
      at::set_num_interop_threads(1);
    } catch (const std::exception&) {
      // Already set or the inter-op pool already started: keep what is there.
    }
  });
}

std::string ResolveTorchDevice(int local_rank) {
  const auto* impl = c10::impl::hasDeviceGuardImpl(c10::DeviceType::CUDA)
                         ? c10::impl::getDeviceGuardImpl(c10::DeviceType::CUDA)
                         : nullptr;
  const int n = impl != nullptr ? static_cast<int>(impl->deviceCount()) : 0;
  if (n <= 0) return "cpu";
  return "cuda:" + std::to_string((local_rank < 0 ? 0 : local_rank) % n);
}

}  // namespace seedgrid

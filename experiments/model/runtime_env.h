// Process-wide LibTorch settings a worker makes once, before its first shard
// (research/calibration.md Part A: without them C++ steps ran 1.2–2.8× slower than PyTorch).
//
//   * glibc malloc: M_MMAP_THRESHOLD 64 MiB and M_TRIM_THRESHOLD 1 GiB, so per-step tensor
//     buffers are reused instead of mmap'd, page-faulted and unmapped every step.
//   * at::set_num_threads(threads) and OpenBLAS's own pool (openblas_set_num_threads, looked up
//     at run time; at::set_num_threads does not reach it).
//   * at::set_num_interop_threads(1), once per process (LibTorch throws on a second call).
// OMP_WAIT_POLICY=passive and OPENBLAS_NUM_THREADS must be in the environment before the
// process starts (the runtimes read them at load time); the worker sets them for its executor.
#pragma once

#include <string>

namespace seedgrid {

void ConfigureTorchProcess(int threads);

// "cuda:<local_rank mod device count>" when LibTorch sees CUDA devices, else "cpu".
std::string ResolveTorchDevice(int local_rank);

}  // namespace seedgrid

#include "experiments/all_kinds.h"
#ifdef SEEDGRID_WITH_TORCH
#include "experiments/model/runtime_env.h"
#endif

namespace seedgrid {

RunnerRegistry& AllRunners() {
  static RunnerRegistry runners = [] {
    RunnerRegistry r;
    RegisterExperimentRunners(r);
    return r;
  }();
  return runners;
}

void ConfigureComputeProcess(int threads) {
#ifdef SEEDGRID_WITH_TORCH
  ConfigureTorchProcess(threads);
#else
  (void)threads;
#endif
}

}  // namespace seedgrid

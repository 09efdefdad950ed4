#include "core/runner.h"
#include "experiments/chaos/chaos.h"
#include "experiments/command/command.h"
#ifdef SEEDGRID_WITH_TORCH
#include "experiments/model/runtime_env.h"
#include "experiments/torch_runners.h"
#endif

namespace seedgrid {

RunnerRegistry& AllRunners() {
  static RunnerRegistry runners = [] {
    RunnerRegistry r;
    RegisterChaosRunners(r);
    RegisterCommandRunners(r);
#ifdef SEEDGRID_WITH_TORCH
    RegisterTorchRunners(r);
#endif
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

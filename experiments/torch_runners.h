// Runner halves of the LibTorch kinds (worker side). Only the worker/executor link this.
#pragma once

#include "core/runner.h"

namespace seedgrid {

// Registers pretrain and lora_steer (ablation and harvest register from their own folders).
void RegisterTorchRunners(RunnerRegistry& runners);

}  // namespace seedgrid

// The lora_steer runner, declared without LibTorch so torch_runners.cpp stays a light TU.
// Everything else about lora_steer (the HDF5 layout, evaluation helpers) is in lora_steer.h.
#pragma once

#include "core/runner.h"

namespace seedgrid {

void RunLoraSteer(ShardContext& ctx);

}  // namespace seedgrid

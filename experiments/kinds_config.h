// Config halves of the experiment kinds (no LibTorch). Each kind's folder defines its
// Register*Config; all_kinds.cpp calls them all.
#pragma once

#include "core/kinds.h"

namespace seedgrid {

void RegisterChaosConfigs(KindRegistry& kinds);      // chaos, noop
void RegisterTorchKindConfigs(KindRegistry& kinds);  // pretrain, lora_steer, ablation, harvest

}  // namespace seedgrid

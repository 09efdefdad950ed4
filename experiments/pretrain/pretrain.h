// kind `pretrain`: trains the base model from scratch on the synthetic task (or an HDF5 token
// file) and publishes it. Datasets, artifacts and metrics: layout.h.
//
// params (defaults in config.cpp):
//   model: ModelConfig::ModelParamDefaults()  (V 48, d 64, 2 layers, 4 heads, d_mlp 256, T 24)
//   data:  {source: synthetic | file, path, dataset, seed, n_content, induction_frac, none_bias}
//   train: {steps, batch, lr, weight_decay, warmup, schedule, grad_clip, loss}
//   eval:  {rows}
//   init:  {std}
// This header includes no LibTorch.
#pragma once

#include "core/kinds.h"
#include "core/runner.h"

namespace seedgrid {

KindConfig PretrainKindConfig();                   // config.cpp (no LibTorch)
void RegisterPretrainConfig(KindRegistry& kinds);  // config.cpp
void RunPretrain(ShardContext& ctx);               // pretrain.cpp (LibTorch)
void RegisterPretrainRunners(RunnerRegistry& runners);

}  // namespace seedgrid

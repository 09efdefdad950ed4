// Config halves (no LibTorch) of the LibTorch kinds: pretrain and lora_steer here; ablation and
// harvest add theirs from their own folders. Declared for the coordinator in
// experiments/kinds_config.h; this header only documents the params.
//
// pretrain params (defaults in torch_kinds.cpp):
//   model: ModelConfig::ModelParamDefaults()  (V 48, d 64, 2 layers, 4 heads, d_mlp 256, T 24)
//   data:  {source: synthetic | file, path, dataset, seed, n_content, induction_frac, none_bias}
//   train: {steps, batch, lr, weight_decay, warmup, schedule, grad_clip, loss}
//   eval:  {rows}
//   init:  {std}
// lora_steer params:
//   base: ""  (checkpoint directory; empty: the needed pretrain shard's artifact)
//   adapter: lora | ia3
//   lora:    {rank, alpha, dropout, init}
//   targets: {modules: [q,k,v,o,gate,up,down] or [] (adapter default), layers: [lo, hi]}
//   train:   {steps, batch, lr (0: the adapter's default, lora 1e-4, ia3 3e-3), weight_decay,
//             warmup, schedule, grad_clip}
//   data:    {n_train, n_eval, n_kl}
//   eval:    {alphas}
#pragma once

#include "core/kinds.h"
#include "experiments/kinds_config.h"

namespace seedgrid {

KindConfig PretrainKindConfig();
KindConfig LoraSteerKindConfig();

}  // namespace seedgrid

// kind `lora_steer`, declared without LibTorch: its config half (config.cpp) and its runner
// (lora_steer.cpp). The method and evaluation helpers are in lora_steer.h, the datasets and
// metrics it writes in layout.h.
//
// params (defaults in config.cpp):
//   base: ""  (checkpoint directory; empty: the needed pretrain shard's artifact)
//   adapter: lora | ia3
//   lora:    {rank, alpha, dropout, init}
//   targets: {modules: [q,k,v,o,gate,up,down] or [] (adapter default), layers: [lo, hi]}
//   train:   {steps, batch, lr (0: the adapter's default, lora 1e-4, ia3 3e-3), weight_decay,
//             warmup, schedule, grad_clip}
//   data:    {source: synthetic | text, n_train, n_eval, n_kl (synthetic), and for text
//             tokenizer, template, generation_prompt, train, eval, neutral, columns, answers,
//             max_len, truncation (docs/data.md; experiments/data/text_data.h)}
//   eval:    {alphas}
#pragma once

#include "core/kinds.h"
#include "core/runner.h"

namespace seedgrid {

KindConfig LoraSteerKindConfig();                   // config.cpp (no LibTorch)
void RegisterLoraSteerConfig(KindRegistry& kinds);  // config.cpp
void RunLoraSteer(ShardContext& ctx);               // lora_steer.cpp (LibTorch)
void RegisterLoraSteerRunners(RunnerRegistry& runners);

}  // namespace seedgrid

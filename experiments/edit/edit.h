// kind `edit`: the rank-1 LoRA editing baseline (issue 18 §1, docs/edit.md). From a base
// checkpoint, train a rank-1 LoRA on one linear layer (chosen by role and layer; A ~
// init_std·N(0, 1), B = 0, AdamW) so that the model predicts a target token at "fire positions"
// while keeping its distribution elsewhere:
//   loss = mean over fire positions of −log P_edited(target)
//          + λ · mean over the other non-pad positions of KL(P_edited ‖ P_base)
// then measure P(target) at held-out fire positions, the KL at their windows' other positions
// and the KL on a generic batch. A sweep over λ × n_train gives the Pareto fronts of P(target)
// against KL that the report draws (figure `pareto_front`).
//
// params (defaults in config.cpp):
//   base: ""  (checkpoint directory; empty: the needed pretrain shard's artifact)
//   weight: {module: q|k|v|o|gate|up|down, layer: index}
//   lambda: λ >= 0
//   n_train: training windows, an integer >= 1 or "all" (null: all)
//   n_eval: held-out windows (the first n_eval of the source, whatever n_train)
//   train: {steps, batch, lr, weight_decay, init_std}
//   fire: {source: rule | jsonl | harvest, after, target, path, tokens: synthetic | file,
//          rows_kind, dataset, rows, component}
//   global: {source: synthetic | file, path, dataset, rows}
// Shard layout and metrics: layout.h.
#pragma once

#include "core/kinds.h"
#include "core/runner.h"

namespace seedgrid {

KindConfig EditKindConfig();                   // config.cpp (no LibTorch)
void RegisterEditConfig(KindRegistry& kinds);  // config.cpp
void RunEdit(ShardContext& ctx);               // runner.cpp (LibTorch)
void RegisterEditRunners(RunnerRegistry& runners);

}  // namespace seedgrid

// ablation: where does the steering live? (research/spd_ws.md §3, §4 T7/T8, §5 F3). One kind,
// two targets, declared here without LibTorch (the coordinator links the config half, and
// the runner registration stays light). The LibTorch API is ablation_torch.h; the names it writes
// are in layout.h, the HDF5 layouts, variant list and metric meanings in docs/ablation.md.
//
// target: dw — ablation grid over a lora_steer shard's dW. Needs a lora_steer shard (`needs:
//   steer` fans out one ablation shard per steer shard, with its seed and axes; `needs: [steer,
//   base]` also hands over the pretrain shard). Every variant is a weight delta built from dW
//   (anchors full / zero / random_norm_matched; module families and single modules kept or
//   dropped; single_layer_keep and leave_one_layer_out per adapted layer; crops of dW's own SVD
//   and of the base weight's SVD, with complements and norm-matched random controls), evaluated
//   as W + α·delta on the held-out rows lora_steer scores (split kSteerEval, rows 0..n_eval-1;
//   for a steer shard trained on text, the eval set its file stores, every row, `rows` unused),
//   at each α of `alphas`. m = steer_delta = mean(label·logratio | α=1) − mean(… | α=0), the
//   same number lora_steer reports; retained = (m(variant) − m(zero)) / (m(full) − m(zero)).
//   The base model and dW are loaded once; α=0 is the base model, scored once; the remaining
//   (variant, α) cells run batched, several cells and all rows per forward.
// target: heads — attention-head ablation of the base model (`needs: base`, a pretrain shard,
//   or params.base): zero each head's attention·V before o_proj through the model's per-head
//   multiplier and score ΔCE, KL to the base and top-1 changes on task rows, plus each head's
//   previous-token and induction scores from the unablated model's attention pattern. The rows
//   are the synthetic task's, or (data.source text) windows of the user's corpus with induction
//   rows repeating each window's first half; the shard stores them (eval/…).
//
// Base checkpoint, in order: params.base; else the needed pretrain shard's artifact; else (dw)
// the steer shard file's `base_checkpoint` attribute.
//
// Params (defaults in ablation_config.cpp):
//   target:  dw | heads
//   base:    ""                   checkpoint directory (see above)
//   alphas:  [0.0, 1.0]           dw: must contain 0 and 1; others (e.g. -1) are extra rows
//   rows:    0                    dw: held-out rows; 0 = the steer shard's data.n_eval
//   lenses:  [module, layer, svd, base_svd]   dw: variant families beyond the anchors
//   batch:   {rows: 4096, cells: 64}   most (cell × row) rows per forward; most cells per forward
//   heads:   {task_rows: 256, induction_rows: 128}
//   model:   {dtype: float32}     compute dtype of the base, float32 | bfloat16 (docs/models.md)
//   data:    {source: synthetic, path, tokenizer, column: text, window: 128, digest}
//            heads: synthetic rows, or (text) a corpus checked and hashed at plan time
#pragma once

#include "core/kinds.h"
#include "core/runner.h"

namespace seedgrid {

KindConfig AblationKindConfig();
void RegisterAblationConfig(KindRegistry& kinds);  // torch-free (ablation_config.cpp)

// Dispatches on params.target (LibTorch; ablation.cpp and heads.cpp).
void RunAblation(ShardContext& ctx);
void RegisterAblationRunners(RunnerRegistry& runners);

}  // namespace seedgrid

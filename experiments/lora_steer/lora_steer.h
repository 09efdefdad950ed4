// lora_steer: multi-seed weight steering (research/spd_ws.md §4). From a base checkpoint, train
// adapter θ+ on rows answered as the POS persona answers and θ− on rows answered as the NEG
// persona answers — persona token replaced by SYS_NONE, loss on the answer token only (prompt
// masked), same seed (same init, same batch order) — then dW = Δθ+ − Δθ− per target weight,
// and evaluate α·dW applied in place (restored bit-exactly) on held-out SYS_NONE rows.
//
// Shard HDF5 layout (names are a contract with reports and ablation):
//   train/loss_pos, train/loss_neg   [steps] f32     training loss per step
//   eval/alphas                      [A] f64         α list (contains 0 and 1)
//   eval/logratio                    [A, R] f32      log p(YES) − log p(NO) at the answer
//   eval/pmass                       [A, R] f32      p(YES) + p(NO)
//   eval/row_idx                     [R] i64         row index in split kSteerEval
//   eval/label                       [R] i64         h = ±1 (POS persona answers YES iff +1)
//   eval/kl                          [A] f64         KL(base ‖ steered), mean per token over
//                                                    neutral induction rows (split kNeutral)
//   eval/acc                         [A] f64         mean(sign(logratio) == label)
//   dW/<hf weight name>              [out, in] f32   dense dW when out·in ≤ 4M elements
//   dW_svals/<hf weight name>        [min(out,in)] f32  singular values of dW, descending
//   adapter/{pos,neg}/<name>/A,B     lora factors [r, in], [out, r] (delta = scale·B·A)
//   adapter/{pos,neg}/<name>/l       ia3 vectors ([out]; [in] for down_proj: input scaling)
// Attributes on "/": adapter, lora_scale (alpha/rank; 1 for ia3), alpha_meaning, base_checkpoint
// (absolute directory of the base model), task (JSON of the synthetic task), targets (JSON list
// of HF weight names), gang_size (k of `ranks: k`; 1 without a gang), collective_backend ("mpi",
// "nccl", "fake"; "none" without a gang). On "eval": alpha_meaning.
// Metrics: final_loss_pos, final_loss_neg (mean of the last max(1, steps/10) steps), dw_fro
// (‖dW‖_F over all targets), steer_delta = mean(label·logratio | α=1) − mean(label·logratio |
// α=0), steer_slope (least-squares slope of mean label·logratio over α), pmass_min (min over α
// of the mean pmass), kl_at_1, acc_at_0, acc_at_1.
//
// `ranks: k > 1`: every rank builds the same adapter (same seed) and trains on its 1/k slice of
// each global batch; the flat gradient is all-reduced (sum) through ctx.collective() with the
// loss normalised by the global batch, so the update equals the ranks:1 update up to float
// summation order. LoRA dropout masks are drawn for the global batch on every rank and sliced
// (TrainableAdapter::set_batch_slice), so they too equal the ranks:1 masks of the same rows.
// Rank 0 of the gang evaluates and writes; the other ranks write nothing.
#pragma once

#include <map>
#include <string>
#include <vector>

#include "core/runner.h"
#include "experiments/data/synthetic.h"
#include "experiments/lora_steer/runner.h"
#include "experiments/model/adapters.h"
#include "experiments/model/model.h"

namespace seedgrid {

// Per-row yes/no scores at the answer position of dilemma/steering rows.
struct YesNoScores {
  torch::Tensor logratio;  // [R] f32 CPU: log p(YES) − log p(NO)
  torch::Tensor pmass;     // [R] f32 CPU: p(YES) + p(NO)
};
YesNoScores ScoreYesNo(const Model& model, const synth::RowBatch& rows,
                       const ForwardOptions& opts = {}, int64_t batch = 256);

// Log-probabilities [R, T, V] (CPU f32) of rows, and the mean per-token KL(p ‖ q) of two such
// arrays.
torch::Tensor RowLogProbs(const Model& model, const synth::RowBatch& rows,
                          const ForwardOptions& opts = {}, int64_t batch = 256);
double MeanKl(const torch::Tensor& logp, const torch::Tensor& logq);

// dW of a published lora_steer shard file: dW/<name> when stored dense, else rebuilt from the
// adapter factors (lora: scale·(B+A+ − B−A−); ia3: (l+ − l−)⊙W, which needs `base`). Throws
// std::runtime_error naming the file when neither is there.
std::map<std::string, torch::Tensor> ReadSteeringDelta(const std::string& h5_path,
                                                       const Model* base = nullptr);

// The base checkpoint directory of a lora_steer (or ablation) task: `explicit_dir` when not
// empty, else the artifact_dir of the needed pretrain shard (which must hold
// model.safetensors). Throws std::runtime_error saying what was looked at.
std::string ResolveBaseCheckpoint(const ShardTaskView& task, const std::string& explicit_dir);

// The synthetic task a checkpoint was trained on: config.json's "seedgrid_task", else the
// defaults sized to the model's vocab_size and max_position_embeddings.
synth::TaskSpec TaskOfCheckpoint(const std::string& dir);

}  // namespace seedgrid

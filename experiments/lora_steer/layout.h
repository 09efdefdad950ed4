// What a lora_steer shard writes: the names its runner writes and its report defaults and the
// ablation kind read (no LibTorch).
//
// Shard HDF5 layout:
//   train/loss_pos, train/loss_neg   [steps] f32     training loss per step
//   eval/alphas                      [A] f64         α list (contains 0 and 1)
//   eval/logratio                    [A, R] f32      log p(YES) − log p(NO) at the answer
//   eval/pmass                       [A, R] f32      p(YES) + p(NO)
//   eval/row_idx                     [R] i64         row index in split kSteerEval
//   eval/label                       [R] i64         h = ±1 (POS persona answers YES iff +1)
//   eval/tokens                      [R, T] i32      synthetic source: the scored rows (to recompute
//                                                    logratio with another stack; Q position)
//   eval/kl                          [A] f64         KL(base ‖ steered), mean per token over
//                                                    neutral induction rows (split kNeutral)
//   eval/acc                         [A] f64         mean(sign(logratio) == label)
// With data.source text (docs/data.md), the evaluation set itself, so any number can be
// recomputed from the shard file alone:
//   eval/token_ids                   [Σ len] i32     the R prompts' token ids, concatenated
//   eval/token_offsets               [R+1] i64       row r is token_ids[off[r], off[r+1])
//   eval/line                        [R] i64         1-based line of the row in data.eval
//   eval/yes_ids, eval/no_ids        [k] i32         the answer token-id sets
//   (eval/row_idx is then the 0-based row in data.eval; attribute eval/data_digest the data
//   files' digest, as in the shard id)
//   dW/<checkpoint tensor name>      f32, the checkpoint's stored shape and layout (W_file + dW
//                                    is the steered tensor): [out, in] for Llama-style families;
//                                    GPT-2 Conv1D [in, out], c_attn one fused [d, 3d] delta;
//                                    NeoX query_key_value fused, head-interleaved rows. Written
//                                    when it has ≤ 4M elements (docs/models.md, roles)
//   dW_svals/<checkpoint tensor name> [min(out,in)] f32  singular values of dW, descending
//   adapter/{pos,neg}/<role>/A,B     lora factors [r, in], [out, r] (delta = scale·B·A), by role
//                                    weight name (model.layers.N.self_attn.q_proj.weight, ...)
//   adapter/{pos,neg}/<name>/l       ia3 vectors ([out]; [in] for down_proj: input scaling)
// Attributes on "/": adapter, lora_scale (alpha/rank; 1 for ia3), alpha_meaning, base_checkpoint
// (absolute directory of the base model), task (JSON of the synthetic task, or of the text
// data params), targets (JSON list
// of the dW tensor names), target_roles (JSON list of the role weight names adapted),
// gang_size (k of `ranks: k`; 1 without a gang), collective_backend ("mpi",
// "nccl", "fake"; "none" without a gang). On "eval": alpha_meaning.
// Metrics: final_loss_pos, final_loss_neg (mean of the last max(1, steps/10) steps), dw_fro
// (‖dW‖_F over all targets), steer_delta = mean(label·logratio | α=1) − mean(label·logratio |
// α=0), steer_slope (least-squares slope of mean label·logratio over α), pmass_min (min over α
// of the mean pmass), kl_at_1, acc_at_0, acc_at_1.
#pragma once

namespace seedgrid::lora_steer_layout {

inline constexpr char kTrainLossPos[] = "train/loss_pos";
inline constexpr char kTrainLossNeg[] = "train/loss_neg";
inline constexpr char kEvalAlphas[] = "eval/alphas";
inline constexpr char kEvalLogratio[] = "eval/logratio";
inline constexpr char kEvalPmass[] = "eval/pmass";
inline constexpr char kEvalRowIdx[] = "eval/row_idx";
inline constexpr char kEvalTokens[] = "eval/tokens";
inline constexpr char kEvalLabel[] = "eval/label";
inline constexpr char kEvalKl[] = "eval/kl";
inline constexpr char kEvalAcc[] = "eval/acc";
inline constexpr char kEvalTokenIds[] = "eval/token_ids";
inline constexpr char kEvalTokenOffsets[] = "eval/token_offsets";
inline constexpr char kEvalLine[] = "eval/line";
inline constexpr char kEvalYesIds[] = "eval/yes_ids";
inline constexpr char kEvalNoIds[] = "eval/no_ids";

inline constexpr char kFinalLossPos[] = "final_loss_pos";
inline constexpr char kFinalLossNeg[] = "final_loss_neg";
inline constexpr char kDwFro[] = "dw_fro";
inline constexpr char kSteerDelta[] = "steer_delta";
inline constexpr char kSteerSlope[] = "steer_slope";
inline constexpr char kPmassMin[] = "pmass_min";
inline constexpr char kKlAt1[] = "kl_at_1";
inline constexpr char kAccAt0[] = "acc_at_0";
inline constexpr char kAccAt1[] = "acc_at_1";

}  // namespace seedgrid::lora_steer_layout

// What an edit shard writes: the names its runner writes and its report defaults read (no
// LibTorch). Method and formulas: docs/edit.md.
//
// Shard HDF5 layout (F = held-out fire positions, W = held-out windows, T = their padded length,
// G × Tg = the generic batch, S = train.steps):
//   train/loss, train/ce, train/kl   [S] f32    loss = ce + λ·kl per step (batch means)
//   eval/tokens                      [W, T] i32 held-out windows, right-padded with 0
//   eval/role                        [W, T] i32 1 fire, 0 surrounding, -1 padding
//   eval/kl                          [W, T] f32 KL(edited ‖ base) per position (NaN at padding)
//   eval/fire_window, eval/fire_pos  [F] i64   where each held-out fire position is
//   eval/target                      [F] i64   the token it should predict
//   eval/p_target                    [F] f32   P_edited(target) there
//   eval/p_target_base               [F] f32   P_base(target) there
//   global/kl                        [G, Tg] f32 KL(edited ‖ base) per position of the generic
//                                               batch
//   adapter/<hf weight name>/A, /B   [1, in], [out, 1] f32: the rank-1 factors; the edited
//                                    weight is W + B·A
// Attributes on "/": base_checkpoint (absolute directory), weight (the HF weight name edited),
// fire_source, lambda, n_train (training windows used), n_eval.
// Metrics: p_target (mean of eval/p_target), p_target_base, kl_surrounding (mean of eval/kl over
// role 0), kl_global (mean of global/kl), final_loss (mean of the last max(1, S/10) steps),
// delta_fro (‖B·A‖_F).
#pragma once

namespace seedgrid::edit_layout {

inline constexpr char kTrainLoss[] = "train/loss";
inline constexpr char kTrainCe[] = "train/ce";
inline constexpr char kTrainKl[] = "train/kl";
inline constexpr char kEvalTokens[] = "eval/tokens";
inline constexpr char kEvalRole[] = "eval/role";
inline constexpr char kEvalKl[] = "eval/kl";
inline constexpr char kEvalFireWindow[] = "eval/fire_window";
inline constexpr char kEvalFirePos[] = "eval/fire_pos";
inline constexpr char kEvalTarget[] = "eval/target";
inline constexpr char kEvalPTarget[] = "eval/p_target";
inline constexpr char kEvalPTargetBase[] = "eval/p_target_base";
inline constexpr char kGlobalKl[] = "global/kl";
inline constexpr char kAdapter[] = "adapter";

inline constexpr char kPTarget[] = "p_target";
inline constexpr char kPTargetBase[] = "p_target_base";
inline constexpr char kKlSurrounding[] = "kl_surrounding";
inline constexpr char kKlGlobal[] = "kl_global";
inline constexpr char kFinalLoss[] = "final_loss";
inline constexpr char kDeltaFro[] = "delta_fro";

}  // namespace seedgrid::edit_layout

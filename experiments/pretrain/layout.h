// What a pretrain shard writes: the names its runner writes and its report defaults read (no
// LibTorch).
//   train/loss      [steps] f32   mean next-token loss per step, over the learnable targets
//                                 (train.loss = predictable: answers and repeated induction
//                                 halves, synth::PredictableTargets) or every target ("all")
//   eval/accuracy   [1] f64       task accuracy on persona rows (also metric task_accuracy)
// Artifacts: <artifact_dir>/model.safetensors and <artifact_dir>/config.json (HF-style, plus
// "seedgrid_task": the synthetic task spec). Metrics: final_loss (mean of the last
// max(1, steps/10) steps), task_accuracy (argmax at the answer position equals the persona's
// answer, over eval.rows persona rows of split kPretrainEval; synthetic data only).
#pragma once

namespace seedgrid::pretrain_layout {

inline constexpr char kTrainLoss[] = "train/loss";
inline constexpr char kEvalAccuracy[] = "eval/accuracy";

inline constexpr char kFinalLoss[] = "final_loss";
inline constexpr char kTaskAccuracy[] = "task_accuracy";

}  // namespace seedgrid::pretrain_layout

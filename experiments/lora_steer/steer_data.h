// What lora_steer trains and evaluates on, behind one seam so the method (train θ+ and θ−,
// dW, α sweep) is written once for the synthetic task and for the user's text
// (docs/data.md). Internal to the kind (LibTorch).
//
// Loss contract: loss(model, opts, idx) returns the SUM over the rows idx of each row's mean
// next-token cross-entropy on its answer tokens (prompt masked out); the trainer divides by the
// global batch, so a gang's summed gradients equal the ranks:1 mean.
#pragma once

#include <functional>
#include <string>
#include <vector>

#include "core/runner.h"
#include "core/store.h"
#include "experiments/lora_steer/lora_steer.h"

namespace seedgrid::steer {

using RowsLoss = std::function<torch::Tensor(const Model& model, const ForwardOptions& opts,
                                             const std::vector<int64_t>& idx)>;

struct SteerData {
  int64_t n_train = 0;          // training rows (θ+ and θ− see the same indices)
  RowsLoss loss_pos, loss_neg;  // answered as the positive / negative persona
  // Yes/no scores of the evaluation rows under the model's current weights.
  std::function<YesNoScores(const Model& model)> score;
  // Log-probabilities [..., V] of every position of the neutral rows (for MeanKl).
  std::function<torch::Tensor(const Model& model)> neutral_logp;
  std::vector<int64_t> row_idx, label;  // per evaluation row
  // Writes what the shard needs to recompute its evaluation (text: the token ids).
  std::function<void(H5Writer& out)> write_eval_set;
  std::string task_json;  // the "task" attribute: the synthetic task, or the text data params
};

// The user's text (data.source: text): the rows' ids from the token cache among `inputs` (the
// tokens shard the planner adds, experiments/tokens/cache.h), on the model's device. Throws
// std::runtime_error when no needed tokens shard holds this data's digest, or a row does not fit
// the model.
SteerData TextSteerData(const Model& model, const Json& params,
                        const std::vector<InputArtifact>& inputs);

// Yes/no scores of variable-length prompts at their last token: logratio =
// logsumexp(logp[yes]) − logsumexp(logp[no]), pmass = Σ p[yes] + Σ p[no]. Rows of one length
// run as one batch (no padding).
YesNoScores ScoreYesNoText(const Model& model, const std::vector<std::vector<int32_t>>& prompts,
                           const std::vector<int32_t>& yes, const std::vector<int32_t>& no,
                           const ForwardOptions& opts = {}, int64_t batch = 64);

}  // namespace seedgrid::steer

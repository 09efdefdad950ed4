// lora_steer: multi-seed weight steering (research/spd_ws.md §4). From a base checkpoint, train
// adapter θ+ on rows answered as the POS persona answers and θ− on rows answered as the NEG
// persona answers — persona token replaced by SYS_NONE, loss on the answer token only (prompt
// masked), same seed (same init, same batch order) — then dW = Δθ+ − Δθ− per target weight,
// and evaluate α·dW applied in place (restored bit-exactly) on held-out SYS_NONE rows.
//
// Shard HDF5 layout, attributes and metrics: layout.h (the names the runner writes, the report
// and ablation read).
//
// `ranks: k > 1`: every rank builds the same adapter (same seed) and trains on its 1/k slice of
// each global batch; the flat gradient is all-reduced (sum) through ctx.collective() with the
// loss normalised by the global batch, so the update equals the ranks:1 update up to float
// summation order. LoRA dropout masks are drawn for the global batch on every rank and sliced
// (TrainableAdapter::set_batch_slice), so they too equal the ranks:1 masks of the same rows.
// Rank 0 of the gang evaluates and writes; the other ranks write nothing.
#pragma once

#include <map>
#include <optional>
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
// What to score on rows of text (data.source: text): right-padded rows, each scored at its own
// last prompt token, with yes/no token-id sets (logratio = logsumexp(logp[yes]) −
// logsumexp(logp[no]), pmass = Σ p[yes] + Σ p[no]).
struct YesNoQuery {
  std::vector<int64_t> position;  // per row: the logits that predict the answer
  std::vector<int32_t> yes, no;
};
// Without a query: synthetic rows at their Q token, with YES and NO.
YesNoScores ScoreYesNo(const Model& model, const synth::RowBatch& rows,
                       const ForwardOptions& opts = {}, int64_t batch = 256,
                       const YesNoQuery* query = nullptr);
// The evaluation set a text lora_steer shard stored (layout.h: eval/token_ids, ...) as
// right-padded rows (index, label set) and their query; nullopt for a synthetic shard's file.
std::optional<std::pair<synth::RowBatch, YesNoQuery>> ReadTextEvalSet(const std::string& h5_path);

// Log-probabilities [R, T, V] (CPU f32) of rows, and the mean per-token KL(p ‖ q) of two such
// arrays.
torch::Tensor RowLogProbs(const Model& model, const synth::RowBatch& rows,
                          const ForwardOptions& opts = {}, int64_t batch = 256);
double MeanKl(const torch::Tensor& logp, const torch::Tensor& logq);

// dW of a published lora_steer shard file by role weight name ([out, in], what WeightEdit and
// the ablation lenses take): dW/<name> when stored dense, mapped from the checkpoint's names
// and layout (GPT-2, NeoX) by RoleDeltas with `base`'s config or else the config.json of the
// file's base_checkpoint; else rebuilt from the adapter factors (lora: scale·(B+A+ − B−A−);
// ia3: (l+ − l−)⊙W, which needs `base`). Throws std::runtime_error naming the file when neither
// is there.
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

// The LibTorch half of kind `ablation` (see ablation.h for what the kind does, docs/ablation.md
// for the HDF5 layout). Split into building variants, evaluating them and scoring heads so the
// tests can drive each piece on a hand-built model without a runtime.
//
// Why it looks the way it does:
//   * Variants are plain {HF weight name -> delta} maps on the CPU, built in float64 and stored
//     float32, holding only tensors with a nonzero element. A variant with no tensor is the base
//     model and one equal to full is full: neither is forwarded again, so zero retains exactly 0
//     and an unadapted module family exactly 0 (and its complement exactly 1).
//   * Cells (variant, α ≠ 0) are evaluated batched without touching the base weights: the rows of
//     C cells are stacked cell-major into one [C·rows, T] batch, and a LinearAdapter multiplies
//     each cell's rows by its own merged weight W + α·delta (summed in float32, rounded once to
//     the compute dtype), one GEMM per cell for each (layer, fused group) that some cell
//     changes (a dense delta added beside the base GEMM would double the cost); untouched
//     groups run the plain GEMM over the whole batch. Each cell's GEMM is the model's own
//     BaseLinear on the merged weight, the op lora_steer's WeightEdit evaluation runs, so a
//     bf16 ablation reproduces its bf16 steer shard's logratios (0 difference in the tests), not
//     only to bf16 rounding. Nothing is edited, so nothing needs restoring.
//   * Every keep has its drop computed independently (the complementary SVD components, the
//     complementary tensor set), so keep + drop = full is a real check of the crops; the runner
//     fails the shard when any pair is off by more than 1e-5 (relative, per tensor).
#pragma once

#include <cmath>
#include <cstdint>
#include <functional>
#include <map>
#include <string>
#include <vector>

#include "core/runner.h"
#include "experiments/data/synthetic.h"
#include "experiments/lora_steer/lora_steer.h"
#include "experiments/model/model.h"

namespace seedgrid {

using DeltaMap = std::map<std::string, torch::Tensor>;  // HF weight name -> [out, in]

struct Variant {
  std::string name;          // unique, [a-z0-9_.]: a registry metric suffix
  std::string lens;          // anchor | module | layer | svd | base_svd
  std::string group;         // family, module, layer number or crop ("attention", "1", ...)
  std::string keep_or_drop;  // full | zero | random | keep | drop
  DeltaMap delta;            // CPU f32; only tensors with a nonzero element
  int64_t n_tensors = 0;     // delta.size()
  double energy_frac = 0;    // <delta, full>_F / ||full||²_F (= ||delta||²/||full||² for crops)
  double frob_frac = 0;      // ||delta||_F / ||full||_F
  double recon_err = NAN;    // keep/drop pairs: max over tensors of ||keep+drop−full|| / ||full||
};

struct VariantOptions {
  std::vector<std::string> lenses = {"module", "layer", "svd", "base_svd"};
  uint64_t seed = 0;  // random controls: Gaussian per tensor, seeded (seed, control, tensor)
};

// Every variant of `full` (HF name -> dW [out, in], any device) for the lenses asked, anchors
// first; `base` supplies the weights of the base-SVD lens and the layer count. Names:
//   full, zero, random_norm_matched
//   module.<m>.{keep,drop}   m: attention, mlp, residual_write, qkv, q_proj … down_proj
//   layer.<l>.{keep,drop}    keep = single_layer_keep, drop = leave_one_layer_out
//   svd.<crop>.{keep,drop,random}  crop: top25_rank, bottom25_rank, top50_energy, top90_energy
//                                  (random only for the top crops)
//   base_svd.top25.{keep,drop,random}
// Measures reconstruction (MeasureReconstruction) before returning.
std::vector<Variant> BuildVariants(const DeltaMap& full, const Model& base,
                                   const VariantOptions& options = {});

// Sets recon_err of every keep/drop pair (same lens and group), NaN for the others.
void MeasureReconstruction(std::vector<Variant>& variants, const DeltaMap& full);
// One line per pair whose recon_err exceeds `tolerance` (or is not finite).
std::vector<std::string> ReconstructionProblems(const std::vector<Variant>& variants,
                                                double tolerance = 1e-5);

struct EvalOptions {
  std::vector<double> alphas = {0.0, 1.0};  // must contain 0 and 1
  int64_t batch_rows = 4096;                // most (cell × row) rows in one forward
  int64_t batch_cells = 64;                 // most cells in one forward
  std::function<void(int64_t done, int64_t total)> progress;  // per forward
  // Text rows (a text steer shard's eval set): per-row answer positions and yes/no ids.
  const YesNoQuery* query = nullptr;
};

struct VariantScores {
  torch::Tensor logratio;  // [A, R] f32 CPU, rows of EvalOptions::alphas
  torch::Tensor pmass;     // [A, R] f32 CPU
  double steer_delta = 0;  // m = mean(label·logratio | α=1) − mean(label·logratio | α=0)
  double retained = NAN;   // (m − m(zero)) / (m(full) − m(zero)); NaN when m(full) = m(zero)
};

struct EvalResult {
  std::vector<VariantScores> variants;  // parallel to the variants given
  int64_t cells_evaluated = 0;          // (variant, α ≠ 0) cells actually forwarded
  int64_t forwards = 0;
};

// Scores every variant on steering rows (label = h = ±1 per row). The anchors `full` and
// `zero` must be among the variants.
EvalResult EvaluateVariants(const Model& model, const synth::RowBatch& rows,
                            const std::vector<Variant>& variants, const EvalOptions& options);

// ---- Head ablation -----------------------------------------------------------------------

struct HeadOptions {
  int64_t task_rows = 256;       // synthetic: pretraining-mix rows of split kPretrainEval; text:
                                 // most windows of the corpus
  int64_t induction_rows = 128;  // synthetic: repeated random halves, split kNeutral; text: most
                                 // windows whose first half is repeated
  int64_t batch_rows = 256;      // rows per forward
  std::function<void(int64_t done, int64_t total)> progress;
};

// The rows heads are scored on, as the shard stores them (eval/…, docs/ablation.md), so any score
// can be recomputed from the file alone.
//   task       [rows, seq_len] token ids, counted [rows, seq_len − 1]: 1 where the next-token loss
//              of position t (predicting token t+1) enters dce
//   induction  [induction_rows, induction_len] token ids whose token p repeats token p − period
struct HeadEvalSet {
  std::vector<int32_t> task;
  int64_t rows = 0, seq_len = 0;
  std::vector<int32_t> counted;
  std::vector<int32_t> induction;
  int64_t induction_rows = 0, induction_len = 0, period = 0;
};
// The synthetic task's rows: the answer of dilemma rows and the repeated half of induction rows
// are counted; the induction rows are the task's repeated random halves.
HeadEvalSet SyntheticHeadRows(const synth::TaskSpec& task, const HeadOptions& options);
// A token stream cut into non-overlapping windows of `window` tokens (the rest dropped): the
// first task_rows windows with every position counted, and the first induction_rows windows'
// first ⌊window/2⌋ tokens written twice. Throws when the stream is shorter than one window.
HeadEvalSet TextHeadRows(const std::vector<int32_t>& stream, int64_t window,
                         const HeadOptions& options, const std::string& origin);

// Per head, [L, H] row-major, float64.
//   dce          CE(head zeroed) − CE(base) over the counted positions of the task rows
//   kl           KL(base ‖ head zeroed), mean over every position of the task rows
//   top1_changed fraction of those positions whose argmax token changes
//   prev_token   mean attention of query p to key p−1 (p >= 1) on the task rows, unablated
//   induction    mean attention of query p to key p−m+1 (p >= m+1, m the period) on the
//                induction rows, unablated: the token after the earlier copy of token p
// Attention and log-probabilities are summed in float32 or wider whatever the compute dtype.
struct HeadScores {
  int64_t layers = 0, heads = 0;
  std::vector<double> dce, kl, top1_changed, prev_token, induction;
  double base_ce = 0;
};
HeadScores ScoreHeads(const Model& model, const HeadEvalSet& rows, const HeadOptions& options);
// The synthetic task's rows (CheckTaskFits first).
HeadScores ScoreHeads(const Model& model, const synth::TaskSpec& task, const HeadOptions& options);

// ---- Runner helpers ----------------------------------------------------------------------

// The base checkpoint: params.base when set, else the needed pretrain shard's artifact, else the
// `base_checkpoint` attribute of the needed lora_steer shard's file. Throws saying what it saw.
std::string ResolveAblationBase(const ShardTaskView& task, const std::string& explicit_dir);
// params.model.dtype as a compute dtype (Model::Load; float32 | bfloat16).
torch::ScalarType AblationDtype(const Json& params);
// Throws when the synthetic task does not fit the model (vocabulary, context).
void CheckTaskFits(const synth::TaskSpec& task, const Model& model, const std::string& dir);

// The target: heads runner (heads.cpp); RunAblation dispatches to it.
void RunHeadAblation(ShardContext& ctx);

}  // namespace seedgrid

// harvest: per-component activation statistics of a model over a token dataset
// (research/spd_ws.md §1, §5 F2), sharded over data and reduced exactly.
//
// Components are the units of one capture point (model.h's CapturePoint: mlp_post by default,
// i.e. the MLP hidden units) over the chosen layers, concatenated in layer order: C = Σ widths.
// A component fires on a token when its activation is > `threshold`.
//
// Why it is built this way (the SPD harvest's failures, §1):
//   * Counts are int64 and sums float64, dense and preallocated; [C, V] statistics are optional.
//   * Data is cut into global batches of `data.batch` rows; map shard i of n takes a contiguous
//     block of them, gang rank r of k a block of that. Everything per batch (the per-batch
//     reservoir cap included) depends only on the batch, and reservoir keys are a hash of
//     (seed, component, row, position): so the reduce of any split equals the unsharded run —
//     integers bit for bit, float sums up to summation order, reservoirs identical.
//   * The reduce requires exactly shard_count map files with distinct indices, the same
//     config, and batches that tile the data; anything else fails naming the map shard.
//   * `ranks: k` reduces in memory through the Collective (AllReduce of dense arrays, Gather of
//     reservoirs) instead of through files, with the same result.
//
// The accumulators and their merge are in accumulator.h, files and reductions in files.h (both
// without LibTorch); the forward pass is in runner.cpp. The HDF5 layout is docs/harvest.md.
//
// Params (defaults in config.cpp):
//   base: ""               checkpoint directory; empty: the needed pretrain shard's artifact
//   data:
//     source: synthetic    synthetic (the checkpoint's task, split kHarvest) | file | text
//     rows_kind: pretrain  synthetic rows: pretrain | induction | persona
//     path, dataset        token HDF5 file and its int32 [N, T] dataset (source: file)
//     path, column, tokenizer, window   a text corpus cut into windows (source: text; text.h)
//     rows: 4096           rows to harvest (file: 0 = all rows of the file; text: all windows)
//     batch: 32            rows per global batch
//   components: {point: mlp_post, layers: []}   capture point; layers [] = every layer
//   threshold: 0.0         fires when activation > threshold
//   stats: {cooc: true, input_tokens: true, output_tokens: true}   the optional accumulators
//   reservoir: {k: 16, context: 4, per_batch: 5, weighting: uniform | activation}
//   pmi: {top_k: 10}
// Injected by the runtime: shard_index, shard_count (map shards), role: reduce (the reduce).
// Set at plan time (source: text): data.digest (hashed) and data_dir (not).
#pragma once

#include <string>

#include "core/kinds.h"
#include "core/runner.h"
#include "core/types.h"

namespace seedgrid {

KindConfig HarvestKindConfig();
void RegisterHarvestConfig(KindRegistry& kinds);

void RunHarvest(ShardContext& ctx);  // runner.cpp (LibTorch)
void RegisterHarvestRunners(RunnerRegistry& runners);

// The runner (runner.cpp, LibTorch). Map, single and gang shards run the model; the reduce
// shard only merges files.
namespace harvest {

// The params that must agree between the map shards and their reduce: all of them except the
// runtime-injected shard_index, shard_count and role, as canonical JSON text.
std::string ConfigText(const Json& params);

}  // namespace harvest
}  // namespace seedgrid

// The LibTorch half of the harvest: the forward pass that feeds the accumulators. Separate from
// harvest.h so that only runner.cpp and the benchmark include LibTorch for it.
#pragma once

#include <cstdint>
#include <functional>

#include "core/types.h"
#include "experiments/data/tokens.h"
#include "experiments/harvest/accumulator.h"
#include "experiments/model/model.h"

namespace seedgrid::harvest {

// The Options of a harvest with these params over `rows` rows of `seq_len` tokens of a model
// with `config` (component width from the capture point; layers [] = every layer). Throws
// std::runtime_error for a capture point or layer the model does not have.
Options MakeOptions(const Json& params, const ModelConfig& config, int64_t seq_len, int64_t rows,
                    uint64_t seed);

// Runs global batches [b0, b1) — rows [b·batch_rows, min((b+1)·batch_rows, rows)) of `source`
// — through `model` and folds them into `acc`. Logits are computed at every position only when
// output-token statistics are on. `progress(done)` after each batch.
void HarvestBatches(const Model& model, const TokenSource& source, int64_t rows, int64_t b0,
                    int64_t b1, Accumulators& acc, BatchUpdater& updater,
                    const std::function<void(int64_t)>& progress = {});

}  // namespace seedgrid::harvest

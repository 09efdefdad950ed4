// What a harvest shard writes: the names its files code writes, its launch check verifies and its
// report defaults read (no LibTorch). The full HDF5 layout is docs/harvest.md.
#pragma once

namespace seedgrid::harvest_layout {

// Every file (map and reduce): the accumulators.
inline constexpr char kNTokens[] = "n_tokens";            // scalar i64 (also a metric)
inline constexpr char kNRows[] = "n_rows";                // scalar i64
inline constexpr char kFiringCount[] = "firing_count";    // [C] i64
inline constexpr char kActSumPost[] = "act_sum/post";     // [C] f64
inline constexpr char kReservoirKey[] = "reservoir/key";  // [C, K] u64
// Reduce (and single) files: the derived statistics.
inline constexpr char kFiringDensity[] = "firing_density";      // [C] f64
inline constexpr char kComponentsLayer[] = "components/layer";  // [C] i64

}  // namespace seedgrid::harvest_layout

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

// Text sources (data.source: text; experiments/harvest/text.h): decoded reservoir examples,
// strings [C·K] row-major, and the eval set reference.
inline constexpr char kTextPrefix[] = "reservoir/text_prefix";
inline constexpr char kTextToken[] = "reservoir/text_token";
inline constexpr char kTextSuffix[] = "reservoir/text_suffix";
inline constexpr char kEvalWindows[] = "eval/windows";  // [n] i64, attrs on group eval
// Root attribute of text single/reduce files: what the report's Examples section shows
// (coordinator/report/examples.h, kExamplesAttr).
inline constexpr char kReportExamples[] = "seedgrid_examples";

}  // namespace seedgrid::harvest_layout

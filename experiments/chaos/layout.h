// What a chaos shard writes (noop writes nothing). No report defaults: a chaos-only sweep gets
// tables of every metric and no figure.
#pragma once

namespace seedgrid::chaos_layout {

inline constexpr char kValues[] = "chaos/values";  // [8] f64, a function of seed and params
inline constexpr char kBlob[] = "chaos/blob";      // write_mb MiB of incompressible bytes

inline constexpr char kValue[] = "value";       // metric
inline constexpr char kSleepMs[] = "sleep_ms";  // metric

}  // namespace seedgrid::chaos_layout

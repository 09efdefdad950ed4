// Harvest accumulators in HDF5 files and across a gang: what map shards publish, how the
// reduce shard merges them, how a gang merges in memory. No LibTorch. The layout (names,
// shapes, dtypes) is documented in docs/harvest.md.
//
// Memory: arrays are written straight from the accumulators (no copies of [C, V]); the reduce
// holds one set of accumulators and reads the map files' [C, C] and [C, V] arrays and
// reservoirs in blocks of rows of about `block_bytes`; the gang reduces the dense arrays in
// place and gathers reservoirs in blocks of components.
#pragma once

#include <cstdint>
#include <string>
#include <utility>
#include <vector>

#include "core/collective.h"
#include "core/store.h"
#include "experiments/harvest/accumulator.h"

namespace seedgrid::harvest {

inline constexpr int64_t kLayoutVersion = 1;

// Root attributes of every harvest file: harvest_layout (int64), harvest_role (single | map |
// reduce), harvest_shard_index, harvest_shard_count (int64), harvest_config (the params that
// must agree, harvest::ConfigText), harvest_options (Options JSON).
struct FileMeta {
  std::string role = "single";
  int64_t shard_index = 0;
  int64_t shard_count = 1;
  std::string config;
};

// The accumulators (every harvest file has them) and the root attributes.
void WriteAccumulators(H5Writer& w, const Accumulators& acc, const FileMeta& meta);
// What a finished harvest adds: derived statistics and the component table.
void WriteDerived(H5Writer& w, const Accumulators& acc, const Derived& d);
// Metrics of a finished harvest: n_tokens, n_components, density_mean, density_median,
// dead_frac (never fired), examples_mean (reservoir n_items per component).
std::vector<std::pair<std::string, double>> HarvestMetrics(const Accumulators& acc,
                                                           const Derived& d);

// A map shard's published file as the reduce sees it.
struct MapInput {
  std::string path;
  std::string shard_id;
  int64_t shard_index = -1;  // from the shard's params; -1 when unknown
};

// Merges the map files of one harvest in shard-index order. First checks every file and
// throws std::runtime_error listing every problem, each naming its map shard (index, id,
// path): missing or unreadable file, not a harvest map file, wrong shard_count, duplicate or
// missing index, a different config or options, batches that overlap or leave gaps. A file
// that turns out corrupt while merging also fails naming its shard.
Accumulators ReduceMapFiles(const std::vector<MapInput>& maps, int64_t shard_count,
                            const std::string& config, int64_t block_bytes = 64 << 20);

// Reads one harvest file's accumulators back (tests, tools).
Accumulators ReadAccumulators(const std::string& path);

// Sums every rank's accumulators over the gang (AllReduce for the dense arrays, Gather for
// batches and reservoirs); on return rank 0 holds the merge, other ranks unspecified contents.
// Every rank must call it with the same Options.
void GangReduce(Accumulators& acc, Collective& gang, int64_t block_bytes = 64 << 20);

}  // namespace seedgrid::harvest

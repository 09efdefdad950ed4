// The harvest's accumulators, their per-batch update and their exact merge. No LibTorch: the
// runner hands in host float32 arrays, so this compiles fast and is tested without a model.
//
// Exactness across splits (the contract of `shards: n` and `ranks: k`): everything a batch
// adds depends only on that batch, counts are int64 and sums float64, and a reservoir is the
// top k of its candidates under one total order (key, then row, then position) whose keys are
// a pure function of (seed, component, row, position). The merge of two accumulators is
// therefore the accumulator of the union of their batches — integers bit for bit, float sums
// up to the order of float64 additions, reservoirs identical.
//
// Reservoir sampling is Efraimidis–Spirakis: a candidate of weight w gets key log(u)/w with
// u ~ U(0,1) (a monotone transform of u^(1/w)); the k largest keys are a weighted sample
// without replacement, and the top k of a union is the top k of the parts' top k's. Before a
// batch's candidates reach the reservoir, each component keeps at most `per_batch` of them
// (its largest keys in that batch), as SPD's sample_at_most_n_per_group does.
//
// Threading: none inside; one BatchUpdater per thread.
#pragma once

#include <cstdint>
#include <limits>
#include <string>
#include <vector>

#include "core/types.h"

namespace seedgrid::harvest {

// What one harvest accumulates; every shard of a harvest has the same Options (the reduce
// checks). Serialised as the files' `harvest_options` attribute.
struct Options {
  int64_t components = 0;             // C
  int64_t vocab = 0;                  // V
  int64_t seq_len = 0;                // T, tokens per row
  double threshold = 0.0;             // fires when activation > threshold
  bool pre = false;                   // a pre-activation is accumulated too (act_sum/pre)
  bool cooc = true;                   // C×C co-occurrence
  bool input_tokens = true;           // in_cooc [C, V], in_marg [V]
  bool output_tokens = true;          // out_cooc [C, V], out_marg [V]
  int64_t k = 16;                     // reservoir examples per component
  int64_t context = 4;                // ± tokens around the firing position
  int64_t per_batch = 5;              // at most this many candidates per component per batch
  bool weight_by_activation = false;  // ES weight: activation (> threshold >= 0) or 1
  uint64_t seed = 0;                  // reservoir keys
  // Where components come from (for the component table; not used by the arithmetic).
  std::string point = "mlp_post";
  std::vector<int64_t> layers;  // component c belongs to layers[c / width]
  int64_t width = 0;            // components per layer
  int64_t batch_rows = 0;       // rows per global batch
  int64_t n_batches = 0;        // global batches of the whole harvest

  int64_t window() const { return 2 * context + 1; }
  Json ToJson() const;
  static Options FromJson(const Json& j);  // throws std::runtime_error on a missing key
  std::vector<std::string> Problems() const;
};

// A component's example candidate, ordered by Ranks(): larger key first, then smaller row,
// then smaller position (a total order, so every split picks the same examples).
struct ExampleRank {
  double key = -std::numeric_limits<double>::infinity();
  int64_t row = -1;
  int32_t pos = -1;
};
inline bool RanksBefore(const ExampleRank& a, const ExampleRank& b) {
  if (a.key != b.key) return a.key > b.key;
  if (a.row != b.row) return a.row < b.row;
  return a.pos < b.pos;
}
// The Efraimidis–Spirakis key of (component, row, position): log(u)/weight, u a hash of
// (seed, component, row, pos) mapped to (0, 1).
double ExampleKey(uint64_t seed, int64_t component, int64_t row, int64_t pos, double weight);

// k examples per component with their context windows. Slots [0, n_items(c)) of component c
// are filled, in heap order; Canonical() gives them in rank order.
class Reservoir {
 public:
  // The arrays of a reservoir, [C, k] and [C, k, W]. In canonical form each component's
  // examples come first in rank order, then empty slots: key −inf, row −1, pos −1, tokens −1
  // (also for window positions outside the row), acts 0.
  struct Arrays {
    std::vector<double> key;
    std::vector<int64_t> row;
    std::vector<int32_t> pos;
    std::vector<int32_t> tokens;
    std::vector<float> acts;
    std::vector<int64_t> n_items, n_seen;  // [C]
  };

  Reservoir() = default;
  Reservoir(int64_t components, int64_t k, int64_t window);
  // From arrays (canonical or not); throws std::runtime_error when sizes or n_items are wrong.
  Reservoir(Arrays arrays, int64_t components, int64_t k, int64_t window);

  int64_t components() const { return c_; }
  int64_t k() const { return k_; }
  int64_t window() const { return w_; }
  const Arrays& arrays() const { return a_; }
  Arrays Canonical() const;

  // The key of component c's lowest example when full, else −inf.
  double LowestKey(int64_t c) const;
  // Would `r` enter component c now (not full, or ranks before its lowest example)?
  bool Accepts(int64_t c, const ExampleRank& r) const;
  // Inserts, evicting the lowest example when full (no-op when !Accepts). `tokens`, `acts`:
  // [window] each.
  void Offer(int64_t c, const ExampleRank& r, const int32_t* tokens, const float* acts);
  void AddSeen(int64_t c, int64_t n) { a_.n_seen[static_cast<size_t>(c)] += n; }
  // Top k of the union per component; n_seen added. Shapes must match.
  void Merge(const Reservoir& other);
  // The same for components [c_begin, c_begin + n) given as arrays of n components ([n, k],
  // [n, k, W], [n]): merges a file or a gathered buffer block by block.
  void MergeBlock(int64_t c_begin, const Arrays& block);

 private:
  ExampleRank RankAt(int64_t c, int64_t slot) const;
  void SiftDown(int64_t c, int64_t i);
  void SiftUp(int64_t c, int64_t i);
  void BuildHeaps();

  int64_t c_ = 0, k_ = 0, w_ = 0;
  Arrays a_;
  std::vector<int32_t> heap_;  // [C, k]: per component a min-heap (lowest rank on top) of slots
};

// Everything one harvest (or part of it) has seen. Plain data: the files and the collective
// move these arrays as they are. Empty vectors for statistics the Options switch off.
struct Accumulators {
  Options options;
  int64_t n_tokens = 0;
  int64_t n_rows = 0;
  std::vector<int64_t> batches;       // global batch indices folded in
  std::vector<int64_t> firing_count;  // [C]
  std::vector<double> act_sum_post;   // [C] Σ activation over every token
  std::vector<double> act_sum_pre;    // [C] (options.pre)
  // [C, C] tokens on which both fire (diagonal: firing_count). In memory only the upper
  // triangle (i <= j; zero below), which halves the work; files hold the symmetric matrix.
  std::vector<int64_t> cooc;
  std::vector<int64_t> in_cooc;  // [C, V] firing tokens by input token
  std::vector<int64_t> in_marg;  // [V] all tokens by input token
  std::vector<double> out_cooc;  // [C, V] Σ next-token probabilities where c fires
  std::vector<double> out_marg;  // [V] Σ next-token probabilities over every token
  Reservoir reservoir;

  explicit Accumulators(const Options& o);  // allocates every enabled array, zeroed
  // Adds `other` (same Options, else std::runtime_error naming the difference).
  void Merge(const Accumulators& other);
};

// Activations of a run of components side by side: token n's `width` values start at
// data + n·stride. The runner passes each layer's captured tensor in place (for a gated MLP's
// pre-activation, a column slice of the fused gate|up output), without copying.
struct Panel {
  const float* data = nullptr;
  int64_t width = 0;
  int64_t stride = 0;
};

// One batch, host memory. N = rows · options.seq_len tokens.
struct BatchView {
  int64_t index = 0;  // global batch index
  int64_t rows = 0;
  const int32_t* tokens = nullptr;   // [rows, T]
  const int64_t* row_ids = nullptr;  // [rows] global row index of each row
  std::vector<Panel> post;           // activations at the component point; Σ width = C
  std::vector<Panel> pre;            // pre-activations, same widths (options.pre)
  const float* probs = nullptr;      // [N, V] next-token probabilities (options.output_tokens)
};

// Folds batches into accumulators; keeps scratch buffers between batches.
class BatchUpdater {
 public:
  // `simd`: use the AVX-512 co-occurrence kernel where the CPU has it (tests turn it off to
  // check the portable kernel against it).
  explicit BatchUpdater(bool simd = true) : simd_(simd) {}
  void Apply(const BatchView& batch, Accumulators& acc);

 private:
  std::vector<uint64_t> bits_;  // [C, words]: component c fires on token n
  bool simd_;
  std::vector<uint64_t> transposed_;  // [words, C'] (the AVX-512 co-occurrence kernel)
  std::vector<int64_t> fired_;        // tokens on which one component fires
  std::vector<std::pair<ExampleRank, int64_t>> candidates_;  // (rank, token) of one component
  std::vector<int32_t> window_tokens_;
  std::vector<float> window_acts_;
};

// What the reduce (or an unsharded run) derives. PMI(c, v) = log(co(c, v) · n_tokens /
// (firing_count(c) · marg(v))), over tokens with co > 0, top_k largest first (ties: smaller
// token id); missing entries have idx −1 and val NaN.
struct Derived {
  std::vector<double> firing_density;       // [C] firing_count / n_tokens
  std::vector<double> mean_post, mean_pre;  // [C] act_sum / n_tokens (per token, as SPD)
  int64_t top_k = 0;
  std::vector<int32_t> in_pmi_idx, out_pmi_idx;  // [C, top_k] (empty without the stats)
  std::vector<double> in_pmi_val, out_pmi_val;
};
Derived Derive(const Accumulators& acc, int64_t top_k);

// Batches [begin, end) of `n_batches` global batches for map shard `shard` of `shards` and
// gang rank `rank` of `ranks`: contiguous blocks that tile [0, n_batches).
std::pair<int64_t, int64_t> SliceBatches(int64_t n_batches, int64_t shard, int64_t shards,
                                         int64_t rank, int64_t ranks);

}  // namespace seedgrid::harvest

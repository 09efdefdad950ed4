// harvest: the accumulators against naive counts, the exact merge (4 map shards + reduce equal
// one run: integers bit for bit, float sums within 1e-12, reservoirs and PMI top-K identical),
// the reduce's refusal of a missing, corrupt or foreign map file, gang mode equal to file mode,
// and the same invariants end to end through RunHarvest on a freshly pretrained tiny model.
#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <filesystem>
#include <fstream>
#include <map>
#include <memory>
#include <random>
#include <thread>

#include <fmt/format.h>
#include <unistd.h>

#include "core/spec.h"
#include "core/store.h"
#include "experiments/harvest/accumulator.h"
#include "experiments/harvest/files.h"
#include "experiments/harvest/harvest.h"
#include "experiments/pretrain/pretrain.h"
#include "tests/experiments/harvest_fixtures.h"
#include "tests/support/fake_collective.h"
#include "tests/support/file_context.h"

namespace seedgrid::harvest {
namespace {

namespace fs = std::filesystem;
using ::testing::HasSubstr;

// ---- Fixtures --------------------------------------------------------------------------------

fs::path TempDir() {
  const auto* info = ::testing::UnitTest::GetInstance()->current_test_info();
  fs::path dir = fs::temp_directory_path() / fmt::format("harvest_test_{}_{}_{}", ::getpid(),
                                                         info->test_suite_name(), info->name());
  fs::remove_all(dir);
  fs::create_directories(dir);
  return dir;
}

Options SmallOptions() {
  Options o;
  o.layers = {0, 1};
  o.width = 12;
  o.components = 24;
  o.vocab = 11;
  o.seq_len = 7;
  o.threshold = 0.5;
  o.pre = true;
  o.k = 3;
  o.context = 2;
  o.per_batch = 2;
  o.seed = 7;
  o.batch_rows = 3;
  o.n_batches = 13;  // 38 rows: the last batch has 2
  return o;
}
constexpr int64_t kRows = 38;

// A deterministic batch: the same index gives the same data in every shard.
struct FakeBatch {
  int64_t index = 0, rows = 0;
  std::vector<int32_t> tokens;
  std::vector<int64_t> row_ids;
  std::vector<float> post, pre, probs;
  // Two panels of 12 components (as two layers would be), rows of stride C = 24.
  BatchView View() const {
    return {index,
            rows,
            tokens.data(),
            row_ids.data(),
            {{post.data(), 12, 24}, {post.data() + 12, 12, 24}},
            {{pre.data(), 12, 24}, {pre.data() + 12, 12, 24}},
            probs.data()};
  }
};

FakeBatch MakeBatch(const Options& o, int64_t index) {
  FakeBatch b;
  b.index = index;
  const int64_t r0 = index * o.batch_rows;
  b.rows = std::min(o.batch_rows, kRows - r0);
  const int64_t n = b.rows * o.seq_len, C = o.components, V = o.vocab;
  std::mt19937_64 rng(1000 + static_cast<uint64_t>(index));
  std::normal_distribution<float> normal;
  std::uniform_int_distribution<int32_t> token(0, static_cast<int32_t>(V - 1));
  for (int64_t i = 0; i < n; ++i) b.tokens.push_back(token(rng));
  for (int64_t r = 0; r < b.rows; ++r) b.row_ids.push_back(r0 + r);
  for (int64_t i = 0; i < n * C; ++i)
    b.post.push_back(normal(rng) + 0.4f * static_cast<float>(i % C % 5) - 0.8f);
  for (int64_t i = 0; i < n * C; ++i) b.pre.push_back(normal(rng));
  for (int64_t i = 0; i < n; ++i) {
    float sum = 0;
    for (int64_t v = 0; v < V; ++v) sum += b.probs.emplace_back(std::exp(normal(rng)));
    for (int64_t v = 0; v < V; ++v) b.probs[static_cast<size_t>(i * V + v)] /= sum;
  }
  return b;
}

Accumulators Harvest(const Options& o, int64_t b0, int64_t b1, bool simd = true) {
  Accumulators acc(o);
  BatchUpdater up(simd);
  for (int64_t b = b0; b < b1; ++b) {
    const FakeBatch batch = MakeBatch(o, b);
    up.Apply(batch.View(), acc);
  }
  return acc;
}

// "Within 1e-12 relative", with magnitudes below 1 treated as 1 (sums of mixed-sign terms can
// cancel to near zero, where a relative bound means nothing).
void ExpectClose(const std::vector<double>& a, const std::vector<double>& b, const char* what) {
  ASSERT_EQ(a.size(), b.size()) << what;
  size_t bad = 0;
  for (size_t i = 0; i < a.size(); ++i) {
    if (std::isnan(a[i]) && std::isnan(b[i])) continue;
    const double scale = std::max({1.0, std::abs(a[i]), std::abs(b[i])});
    if (!(std::abs(a[i] - b[i]) <= 1e-12 * scale) && bad++ < 3)
      ADD_FAILURE() << what << "[" << i << "]: " << a[i] << " vs " << b[i];
  }
}

void ExpectSameReservoir(const Reservoir& a, const Reservoir& b) {
  const auto x = a.Canonical(), y = b.Canonical();
  EXPECT_EQ(x.n_items, y.n_items);
  EXPECT_EQ(x.n_seen, y.n_seen);
  EXPECT_EQ(x.row, y.row);
  EXPECT_EQ(x.pos, y.pos);
  EXPECT_EQ(x.key, y.key);
  EXPECT_EQ(x.tokens, y.tokens);
  EXPECT_EQ(x.acts, y.acts);
}

// Integers and reservoirs bit for bit; float sums within 1e-12 (or bit for bit when `exact`).
void ExpectSameAccumulators(const Accumulators& a, const Accumulators& b, bool exact = false) {
  EXPECT_EQ(a.options.ToJson(), b.options.ToJson());
  EXPECT_EQ(a.n_tokens, b.n_tokens);
  EXPECT_EQ(a.n_rows, b.n_rows);
  auto ba = a.batches, bb = b.batches;
  std::sort(ba.begin(), ba.end());
  std::sort(bb.begin(), bb.end());
  EXPECT_EQ(ba, bb);
  EXPECT_EQ(a.firing_count, b.firing_count);
  EXPECT_EQ(a.cooc, b.cooc);
  EXPECT_EQ(a.in_cooc, b.in_cooc);
  EXPECT_EQ(a.in_marg, b.in_marg);
  if (exact) {
    EXPECT_EQ(a.act_sum_post, b.act_sum_post);
    EXPECT_EQ(a.act_sum_pre, b.act_sum_pre);
    EXPECT_EQ(a.out_cooc, b.out_cooc);
    EXPECT_EQ(a.out_marg, b.out_marg);
  } else {
    ExpectClose(a.act_sum_post, b.act_sum_post, "act_sum_post");
    ExpectClose(a.act_sum_pre, b.act_sum_pre, "act_sum_pre");
    ExpectClose(a.out_cooc, b.out_cooc, "out_cooc");
    ExpectClose(a.out_marg, b.out_marg, "out_marg");
  }
  ExpectSameReservoir(a.reservoir, b.reservoir);
}

void ExpectSameDerived(const Derived& a, const Derived& b) {
  ExpectClose(a.firing_density, b.firing_density, "firing_density");
  ExpectClose(a.mean_post, b.mean_post, "mean_post");
  EXPECT_EQ(a.in_pmi_idx, b.in_pmi_idx);
  EXPECT_EQ(a.in_pmi_val, b.in_pmi_val);  // from integer counts: identical
  EXPECT_EQ(a.out_pmi_idx, b.out_pmi_idx);
  ExpectClose(a.out_pmi_val, b.out_pmi_val, "out_pmi_val");
}

// The accumulators of 4 map shards, merged in shard order.
Accumulators FourShards(const Options& o, std::vector<Accumulators>* parts = nullptr) {
  Accumulators merged(o);
  for (int64_t s = 0; s < 4; ++s) {
    const auto [b0, b1] = SliceBatches(o.n_batches, s, 4, 0, 1);
    Accumulators part = Harvest(o, b0, b1);
    merged.Merge(part);
    if (parts) parts->push_back(std::move(part));
  }
  return merged;
}

// ---- Accumulators ----------------------------------------------------------------------------

class HarvestNaive : public ::testing::TestWithParam<std::tuple<int64_t, int64_t, int64_t, bool>> {
};

// Against a recount by definition, for (k, per_batch, batch_rows, activation weights): (6, 1,
// ·) makes the per-batch cap bind; batch_rows 10 makes batches of 70 tokens (more than one
// 64-token bitset word).
TEST_P(HarvestNaive, CountsMatchARecount) {
  Options o = SmallOptions();
  std::tie(o.k, o.per_batch, o.batch_rows, o.weight_by_activation) = GetParam();
  o.n_batches = (kRows + o.batch_rows - 1) / o.batch_rows;
  const Accumulators acc = Harvest(o, 0, o.n_batches);
  const int64_t C = o.components, V = o.vocab, T = o.seq_len;
  std::vector<int64_t> fire(C, 0), cooc(C * C, 0), in_cooc(C * V, 0), in_marg(V, 0), seen(C, 0);
  std::vector<double> out_cooc(C * V, 0.0);
  // Per component: every batch's top-per_batch candidates, then the global top k.
  std::vector<std::vector<ExampleRank>> offered(C);
  for (int64_t b = 0; b < o.n_batches; ++b) {
    const FakeBatch fb = MakeBatch(o, b);
    const int64_t n = fb.rows * T;
    for (int64_t i = 0; i < n; ++i) ++in_marg[fb.tokens[i]];
    for (int64_t c = 0; c < C; ++c) {
      std::vector<ExampleRank> here;
      for (int64_t i = 0; i < n; ++i) {
        if (!(fb.post[i * C + c] > 0.5f)) continue;
        ++fire[c];
        ++in_cooc[c * V + fb.tokens[i]];
        for (int64_t v = 0; v < V; ++v) out_cooc[c * V + v] += fb.probs[i * V + v];
        for (int64_t d = c; d < C; ++d) cooc[c * C + d] += fb.post[i * C + d] > 0.5f;
        const int64_t row = fb.row_ids[i / T], pos = i % T;
        const double weight = o.weight_by_activation ? fb.post[i * C + c] : 1.0;
        here.push_back({ExampleKey(o.seed, c, row, pos, weight), row, static_cast<int32_t>(pos)});
      }
      std::sort(here.begin(), here.end(), RanksBefore);
      here.resize(std::min<size_t>(here.size(), o.per_batch));
      seen[c] += static_cast<int64_t>(here.size());
      offered[c].insert(offered[c].end(), here.begin(), here.end());
    }
  }
  EXPECT_EQ(acc.firing_count, fire);
  EXPECT_EQ(acc.cooc, cooc);
  EXPECT_EQ(acc.in_cooc, in_cooc);
  EXPECT_EQ(acc.in_marg, in_marg);
  ExpectClose(acc.out_cooc, out_cooc, "out_cooc");
  EXPECT_EQ(acc.n_tokens, kRows * T);
  EXPECT_EQ(acc.n_rows, kRows);
  const auto res = acc.reservoir.Canonical();
  EXPECT_EQ(res.n_seen, seen);
  int64_t some_full = 0;
  for (int64_t c = 0; c < C; ++c) {
    auto& all = offered[c];
    std::sort(all.begin(), all.end(), RanksBefore);
    const int64_t n = std::min<int64_t>(o.k, static_cast<int64_t>(all.size()));
    ASSERT_EQ(res.n_items[c], n) << "component " << c;
    some_full += n == o.k;
    for (int64_t s = 0; s < n; ++s) {
      EXPECT_EQ(res.row[c * o.k + s], all[s].row);
      EXPECT_EQ(res.pos[c * o.k + s], all[s].pos);
    }
    // The window is centred on the firing position and holds the component's activation there.
    if (n > 0) {
      const int64_t row = res.row[c * o.k], pos = res.pos[c * o.k];
      const FakeBatch fb = MakeBatch(o, row / o.batch_rows);
      const int64_t i = (row - fb.row_ids[0]) * T + pos;
      EXPECT_EQ(res.tokens[(c * o.k) * o.window() + o.context], fb.tokens[i]);
      EXPECT_EQ(res.acts[(c * o.k) * o.window() + o.context], fb.post[i * C + c]);
      EXPECT_GT(res.acts[(c * o.k) * o.window() + o.context], 0.5f);
    }
  }
  EXPECT_GT(some_full, 0);  // the test exercises eviction
  // The portable kernels agree bit for bit with the ones this CPU picked.
  ExpectSameAccumulators(Harvest(o, 0, o.n_batches, /*simd=*/false), acc, /*exact=*/true);
}
INSTANTIATE_TEST_SUITE_P(
    KAndCap, HarvestNaive,
    ::testing::Values(std::tuple<int64_t, int64_t, int64_t, bool>{3, 2, 3, false},
                      std::tuple<int64_t, int64_t, int64_t, bool>{6, 1, 3, false},
                      std::tuple<int64_t, int64_t, int64_t, bool>{3, 2, 10, false},
                      std::tuple<int64_t, int64_t, int64_t, bool>{6, 1, 3, true}));

class HarvestMerge : public ::testing::TestWithParam<bool> {};

TEST_P(HarvestMerge, FourShardMergeEqualsOneRun) {
  Options o = SmallOptions();
  o.weight_by_activation = GetParam();
  const Accumulators one = Harvest(o, 0, o.n_batches);
  std::vector<Accumulators> parts;
  const Accumulators merged = FourShards(o, &parts);
  ExpectSameAccumulators(merged, one);
  int64_t seen = 0, seen_parts = 0, tokens = 0;
  for (int64_t c = 0; c < o.components; ++c) seen += one.reservoir.arrays().n_seen[c];
  for (const auto& p : parts) {
    tokens += p.n_tokens;
    for (int64_t c = 0; c < o.components; ++c) seen_parts += p.reservoir.arrays().n_seen[c];
  }
  EXPECT_EQ(seen_parts, seen);  // n_seen adds up
  EXPECT_EQ(tokens, one.n_tokens);
  ExpectSameDerived(Derive(merged, 4), Derive(one, 4));
}
INSTANTIATE_TEST_SUITE_P(Weighting, HarvestMerge, ::testing::Values(false, true),
                         [](const auto& info) { return info.param ? "activation" : "uniform"; });

TEST(HarvestAccumulators, PmiIsTheFormulaTopKLargestFirst) {
  const Options o = SmallOptions();
  const Accumulators acc = Harvest(o, 0, o.n_batches);
  const Derived d = Derive(acc, 3);
  const int64_t V = o.vocab;
  for (int64_t c = 0; c < o.components; ++c) {
    std::vector<std::pair<double, int32_t>> want;
    for (int64_t v = 0; v < V; ++v) {
      const double co = static_cast<double>(acc.in_cooc[c * V + v]);
      if (co > 0)
        want.emplace_back(std::log(co * static_cast<double>(acc.n_tokens) /
                                   (static_cast<double>(acc.firing_count[c]) *
                                    static_cast<double>(acc.in_marg[v]))),
                          static_cast<int32_t>(v));
    }
    std::sort(want.begin(), want.end(), [](auto& a, auto& b) {
      return a.first != b.first ? a.first > b.first : a.second < b.second;
    });
    for (size_t i = 0; i < 3; ++i) {
      if (i < want.size()) {
        EXPECT_EQ(d.in_pmi_idx[c * 3 + i], want[i].second);
        EXPECT_DOUBLE_EQ(d.in_pmi_val[c * 3 + i], want[i].first);
      } else {
        EXPECT_EQ(d.in_pmi_idx[c * 3 + i], -1);
        EXPECT_TRUE(std::isnan(d.in_pmi_val[c * 3 + i]));
      }
    }
  }
  EXPECT_DOUBLE_EQ(d.firing_density[5],
                   static_cast<double>(acc.firing_count[5]) / static_cast<double>(acc.n_tokens));
}

TEST(HarvestAccumulators, MergeRefusesDifferentOptions) {
  Options a = SmallOptions(), b = SmallOptions();
  b.threshold = 0.25;
  Accumulators x(a);
  EXPECT_THROW(x.Merge(Accumulators(b)), std::runtime_error);
}

TEST(HarvestSlices, ShardsAndRanksTileTheBatches) {
  for (int64_t nb : {0, 1, 7, 13, 100}) {
    std::vector<int> owner(static_cast<size_t>(nb), 0);
    for (int64_t s = 0; s < 3; ++s)
      for (int64_t r = 0; r < 2; ++r) {
        const auto [b0, b1] = SliceBatches(nb, s, 3, r, 2);
        for (int64_t b = b0; b < b1; ++b) ++owner[static_cast<size_t>(b)];
      }
    EXPECT_EQ(std::count(owner.begin(), owner.end(), 1), nb) << nb;
  }
  EXPECT_THROW(SliceBatches(10, 3, 3, 0, 1), std::invalid_argument);
}

// ---- Reservoir sampling ----------------------------------------------------------------------

// Efraimidis–Spirakis with k = 1: item i is chosen with probability w_i / Σw.
TEST(HarvestReservoir, KeysSampleInProportionToWeight) {
  const std::vector<double> weights = {1, 2, 3, 4};
  std::vector<int> wins(4, 0), uniform_wins(4, 0);
  constexpr int kTrials = 40000;
  for (int t = 0; t < kTrials; ++t) {
    Reservoir weighted(1, 1, 1), uniform(1, 1, 1);
    const int32_t tok = 0;
    const float act = 0;
    for (int i = 0; i < 4; ++i) {
      weighted.Offer(0, {ExampleKey(static_cast<uint64_t>(t), 0, i, 0, weights[i]), i, 0}, &tok,
                     &act);
      uniform.Offer(0, {ExampleKey(static_cast<uint64_t>(t), 0, i, 0, 1.0), i, 0}, &tok, &act);
    }
    ++wins[static_cast<size_t>(weighted.arrays().row[0])];
    ++uniform_wins[static_cast<size_t>(uniform.arrays().row[0])];
  }
  for (int i = 0; i < 4; ++i) {
    EXPECT_NEAR(wins[i] / double(kTrials), weights[i] / 10.0, 0.01) << "item " << i;
    EXPECT_NEAR(uniform_wins[i] / double(kTrials), 0.25, 0.01) << "item " << i;
  }
}

TEST(HarvestReservoir, MergeIsTopKOfTheUnion) {
  Reservoir a(2, 3, 1), b(2, 3, 1), all(2, 3, 1);
  const int32_t tok = 1;
  const float act = 1;
  for (int i = 0; i < 10; ++i) {
    const ExampleRank r{ExampleKey(3, 1, i, 0, 1.0), i, 0};
    (i % 2 ? a : b).Offer(1, r, &tok, &act);
    all.Offer(1, r, &tok, &act);
  }
  a.AddSeen(1, 5);
  b.AddSeen(1, 5);
  all.AddSeen(1, 10);
  a.Merge(b);
  ExpectSameReservoir(a, all);
  EXPECT_EQ(a.arrays().n_items[0], 0);
  EXPECT_THROW(a.Merge(Reservoir(2, 4, 1)), std::runtime_error);
}

// ---- Files and the reduce --------------------------------------------------------------------

const std::string kConfig = R"({"threshold":0.5})";

std::vector<MapInput> WriteMaps(const fs::path& dir, const Options& o) {
  std::vector<MapInput> maps;
  for (int64_t s = 0; s < 4; ++s) {
    const auto [b0, b1] = SliceBatches(o.n_batches, s, 4, 0, 1);
    const std::string path = (dir / fmt::format("map{}.h5", s)).string();
    H5Writer w(path);
    WriteAccumulators(w, Harvest(o, b0, b1), {"map", s, 4, kConfig});
    w.Close();
    maps.push_back({path, fmt::format("id{}", s), s});
  }
  return maps;
}

std::string ReduceError(const std::vector<MapInput>& maps, const std::string& config = kConfig) {
  try {
    ReduceMapFiles(maps, 4, config);
  } catch (const std::runtime_error& e) {
    return e.what();
  }
  return "";
}

TEST(HarvestFiles, ReduceOfFourMapFilesEqualsOneRun) {
  const fs::path dir = TempDir();
  const Options o = SmallOptions();
  auto maps = WriteMaps(dir, o);
  std::reverse(maps.begin(), maps.end());  // the reduce orders by shard index itself
  const Accumulators one = Harvest(o, 0, o.n_batches);
  // Tiny blocks: every [C, V] array and reservoir is read in many pieces.
  const Accumulators reduced = ReduceMapFiles(maps, 4, kConfig, 200);
  ExpectSameAccumulators(reduced, one);
  // ... and bit for bit what merging in memory gives (same order of float additions).
  ExpectSameAccumulators(reduced, FourShards(o), /*exact=*/true);
  ExpectSameDerived(Derive(reduced, 4), Derive(one, 4));

  // A file reads back as it was written.
  const std::string single = (dir / "single.h5").string();
  {
    H5Writer w(single);
    WriteAccumulators(w, one, {"single", 0, 1, kConfig});
    WriteDerived(w, one, Derive(one, 4));
    w.Close();
  }
  ExpectSameAccumulators(ReadAccumulators(single), one, /*exact=*/true);
  H5Reader r(single);
  EXPECT_EQ(r.Read<double>("firing_density"), Derive(one, 4).firing_density);
  EXPECT_EQ(r.DatasetShape("reservoir/tokens"), (Shape{o.components, o.k, o.window()}));
  const auto cooc = r.Read<int64_t>("cooc");  // symmetric in the file
  for (int64_t i = 0; i < o.components; ++i)
    for (int64_t j = 0; j < o.components; ++j)
      ASSERT_EQ(cooc[i * o.components + j],
                one.cooc[std::min(i, j) * o.components + std::max(i, j)]);
  EXPECT_EQ(r.DatasetShape("components/layer"), (Shape{o.components}));
  fs::remove_all(dir);
}

TEST(HarvestFiles, MissingMapShardFailsNamingIt) {
  const fs::path dir = TempDir();
  const auto maps = WriteMaps(dir, SmallOptions());
  fs::remove(maps[2].path);
  const std::string error = ReduceError(maps);
  EXPECT_THAT(error,
              HasSubstr("map shard 2 of 4 (id id2, " + maps[2].path + "): the file is missing"));
  EXPECT_THAT(error, HasSubstr("1 problem"));
  fs::remove_all(dir);
}

TEST(HarvestFiles, CorruptMapShardFailsNamingIt) {
  const fs::path dir = TempDir();
  const Options o = SmallOptions();
  auto maps = WriteMaps(dir, o);
  // Not HDF5 at all.
  { std::ofstream(maps[1].path, std::ios::trunc) << "garbage"; }
  EXPECT_THAT(ReduceError(maps), HasSubstr("map shard 1 of 4 (id id1, " + maps[1].path + ")"));
  // Valid attributes, but an array is missing: found while merging.
  {
    H5Writer w(maps[1].path);
    WriteAccumulators(w, Harvest(o, 3, 6), {"map", 1, 4, kConfig});
    w.Close();
  }
  const std::string partial = (dir / "partial.h5").string();
  {
    H5Writer w(partial);
    w.Attr("/", "harvest_layout", kLayoutVersion);
    w.Attr("/", "harvest_role", std::string("map"));
    w.Attr("/", "harvest_shard_index", int64_t{3});
    w.Attr("/", "harvest_shard_count", int64_t{4});
    w.Attr("/", "harvest_config", kConfig);
    w.Attr("/", "harvest_options", o.ToJson().dump());
    const auto [b0, b1] = SliceBatches(o.n_batches, 3, 4, 0, 1);
    std::vector<int64_t> batches;
    for (int64_t b = b0; b < b1; ++b) batches.push_back(b);
    w.Write("batches", batches);
    w.Close();
  }
  maps[3].path = partial;
  const std::string error = ReduceError(maps);
  EXPECT_THAT(error, HasSubstr("map shard 3 of 4 (id id3, " + partial + ") is corrupt"));
  EXPECT_THAT(error, HasSubstr("n_tokens"));
  fs::remove_all(dir);
}

TEST(HarvestFiles, ReduceReportsEveryProblemAtOnce) {
  const fs::path dir = TempDir();
  const Options o = SmallOptions();
  auto maps = WriteMaps(dir, o);
  // Shard 1's file replaced by a copy of shard 0's (duplicate index, batches overlap, gap).
  fs::copy_file(maps[0].path, maps[1].path, fs::copy_options::overwrite_existing);
  maps[1].shard_index = -1;
  std::string error = ReduceError(maps);
  EXPECT_THAT(error, HasSubstr("shard index 0 appears 2 times"));
  EXPECT_THAT(error, HasSubstr("no input file"));
  // A different config, and one file too few.
  maps = WriteMaps(dir, o);
  maps.pop_back();
  error = ReduceError(maps, R"({"threshold":0.25})");
  EXPECT_THAT(error, HasSubstr("expected 4 map shard files, got 3"));
  EXPECT_THAT(error, HasSubstr("map shard 0 of 4 (id id0, " + maps[0].path +
                               "): its config differs from the reduce's at /threshold"));
  EXPECT_THAT(error, HasSubstr("map shard 3 of 4: no input file"));
  fs::remove_all(dir);
}

// ---- Gang mode -------------------------------------------------------------------------------

TEST(HarvestGang, GangReduceEqualsFileReduce) {
  const fs::path dir = TempDir();
  const Options o = SmallOptions();
  const Accumulators from_files = ReduceMapFiles(WriteMaps(dir, o), 4, kConfig);
  testing::FakeGang gang(4);
  std::vector<std::unique_ptr<Accumulators>> accs(4);
  std::vector<std::thread> threads;
  for (int r = 0; r < 4; ++r) {
    threads.emplace_back([&, r] {
      auto member = gang.Member(r);
      // Rank r of a gang running the whole harvest as one shard takes map shard r's batches.
      const auto [b0, b1] = SliceBatches(o.n_batches, 0, 1, r, 4);
      accs[r] = std::make_unique<Accumulators>(Harvest(o, b0, b1));
      GangReduce(*accs[r], *member, /*block_bytes=*/300);  // several reservoir blocks
    });
  }
  for (auto& t : threads) t.join();
  ExpectSameAccumulators(*accs[0], from_files, /*exact=*/true);
  fs::remove_all(dir);
}

// ---- Config ----------------------------------------------------------------------------------

TEST(HarvestConfig, DefaultsAreValidAndBadValuesAreAllReported) {
  const KindConfig k = HarvestKindConfig();
  EXPECT_TRUE(k.has_reduce);
  EXPECT_TRUE(k.supports_gang);
  EXPECT_THAT(k.validate(k.defaults), ::testing::IsEmpty());
  Json p = k.defaults;
  p["data"]["source"] = "file";
  p["components"]["point"] = "attn_pattern";
  p["components"]["layers"] = Json::array({1, 1});
  p["threshold"] = -1.0;
  p["reservoir"]["weighting"] = "activation";
  p["reservoir"]["k"] = 0;
  const auto problems = k.validate(p);
  EXPECT_THAT(problems, ::testing::UnorderedElementsAre(
                            HasSubstr("data.path"), HasSubstr("components.point"),
                            HasSubstr("components.layers: 1 given twice"),
                            HasSubstr("reservoir.weighting"), HasSubstr("reservoir.k")));
  Json q = k.defaults;
  q["shard_index"] = 2;
  q["shard_count"] = 4;
  q["role"] = "reduce";
  EXPECT_EQ(ConfigText(q), ConfigText(k.defaults));
}

TEST(HarvestConfig, DemoSpecExpandsToMapsAndAReduce) {
  KindRegistry kinds;
  kinds.Add(PretrainKindConfig());
  kinds.Add(HarvestKindConfig());
  const Plan plan = ExpandSpec(
      LoadSpec(std::string(SEEDGRID_SOURCE_DIR) + "/configs/harvest.yaml", {}, kinds), kinds);
  std::map<std::string, int> roles;
  for (const auto& s : plan.shards)
    if (s.key.kind() == "harvest") ++roles[std::string(ToString(s.key.role()))];
  EXPECT_EQ(roles["map"], 2);
  EXPECT_EQ(roles["reduce"], 1);
  EXPECT_EQ(roles["single"], 0);
}

// ---- End to end through the runner (LibTorch) ------------------------------------------------

using FileContext = testing::FileShardContext;

InputArtifact PretrainTinyModel(const fs::path& dir) {
  Json params = PretrainKindConfig().defaults;
  params["model"]["d_mlp"] = 32;
  params["train"]["steps"] = 30;
  params["train"]["batch"] = 16;
  params["eval"]["rows"] = 16;
  return testing::PretrainFixture(dir, params);
}

Json TinyHarvestParams() {
  Json p = HarvestKindConfig().defaults;
  p["data"]["rows"] = 90;
  p["data"]["batch"] = 8;  // 12 batches, the last one short
  p["reservoir"]["k"] = 4;
  p["reservoir"]["context"] = 2;
  p["reservoir"]["per_batch"] = 2;
  p["pmi"]["top_k"] = 5;
  return p;
}

using testing::HarvestTask;

void ExpectSameFiles(const std::string& a, const std::string& b, bool exact) {
  ExpectSameAccumulators(ReadAccumulators(a), ReadAccumulators(b), exact);
  H5Reader x(a), y(b);
  for (const char* ds : {"pmi/in_idx", "pmi/out_idx", "components/layer", "components/unit",
                         "components/top_in_token", "components/n_examples"})
    EXPECT_EQ(x.Read<int64_t>(ds), y.Read<int64_t>(ds)) << ds;
  EXPECT_EQ(x.Read<double>("pmi/in_val"), y.Read<double>("pmi/in_val"));
  for (const char* ds : {"firing_density", "mean_act/post", "mean_act/pre", "pmi/out_val"})
    ExpectClose(x.Read<double>(ds), y.Read<double>(ds), ds);
}

TEST(HarvestRunner, FourMapShardsPlusReduceEqualOneShardAndGang) {
  const fs::path dir = TempDir();
  const InputArtifact base = PretrainTinyModel(dir);

  FileContext single(HarvestTask("single0000000000", TinyHarvestParams(), "single", {base}),
                     dir / "single.h5", dir / "single");
  RunHarvest(single);
  single.Close();
  EXPECT_EQ(single.metrics.at("n_tokens"), 90 * 24);
  EXPECT_EQ(single.metrics.at("n_components"), 2 * 32);
  EXPECT_GT(single.metrics.at("density_mean"), 0.0);

  std::vector<InputArtifact> maps;
  for (int s = 0; s < 4; ++s) {
    Json p = TinyHarvestParams();
    p["shard_index"] = s;
    p["shard_count"] = 4;
    const std::string id = fmt::format("map{:013d}", s);
    FileContext ctx(HarvestTask(id, p, "map", {base}), dir / (id + ".h5"), dir / id);
    RunHarvest(ctx);
    ctx.Close();
    InputArtifact in;
    in.key = ShardKey({.id = ShardId{id}, .kind = "harvest"}, p, Json::object());
    in.path = (dir / (id + ".h5")).string();
    maps.push_back(in);
  }
  Json rp = TinyHarvestParams();
  rp["role"] = "reduce";
  rp["shard_count"] = 4;
  FileContext reduce(HarvestTask("reduce0000000000", rp, "reduce", maps), dir / "reduce.h5",
                     dir / "reduce");
  RunHarvest(reduce);
  reduce.Close();
  ExpectSameFiles((dir / "reduce.h5").string(), (dir / "single.h5").string(), false);
  EXPECT_EQ(reduce.metrics.at("n_tokens"), single.metrics.at("n_tokens"));
  EXPECT_EQ(reduce.metrics.at("dead_frac"), single.metrics.at("dead_frac"));

  // ranks: 2 — one shard on a gang of two threads, reduced through the collective.
  testing::FakeGang gang(2);
  std::vector<std::thread> threads;
  std::vector<std::string> errors(2);
  for (int r = 0; r < 2; ++r) {
    threads.emplace_back([&, r] {
      auto member = gang.Member(r);
      FileContext ctx(HarvestTask("gang000000000000", TinyHarvestParams(), "single", {base}),
                      dir / fmt::format("gang{}.h5", r), dir / "gang", 1, member.get());
      try {
        RunHarvest(ctx);
        ctx.Close();
      } catch (const std::exception& e) {
        errors[r] = e.what();
      }
    });
  }
  for (auto& t : threads) t.join();
  EXPECT_EQ(errors, (std::vector<std::string>{"", ""}));
  EXPECT_FALSE(fs::exists(dir / "gang1.h5"));  // only rank 0 writes
  ExpectSameFiles((dir / "gang0.h5").string(), (dir / "single.h5").string(), false);

  // A map shard lost after the fact: the reduce fails naming it.
  fs::remove(maps[1].path);
  FileContext again(HarvestTask("reduce0000000000", rp, "reduce", maps), dir / "again.h5",
                    dir / "again");
  try {
    RunHarvest(again);
    ADD_FAILURE() << "the reduce ran without map shard 1";
  } catch (const std::runtime_error& e) {
    EXPECT_THAT(e.what(), HasSubstr("map shard 1 of 4 (id map0000000000001, " + maps[1].path +
                                    "): the file is missing"));
  }
  fs::remove_all(dir);
}

}  // namespace
}  // namespace seedgrid::harvest

#include "experiments/harvest/files.h"

#include <algorithm>
#include <filesystem>
#include <functional>
#include <map>
#include <memory>
#include <set>
#include <stdexcept>

#include <fmt/format.h>
#include <fmt/ranges.h>

#include "experiments/harvest/layout.h"

namespace seedgrid::harvest {
namespace {

namespace fs = std::filesystem;

size_t Z(int64_t v) { return static_cast<size_t>(v); }

int64_t RowsPerBlock(int64_t row_bytes, int64_t block_bytes) {
  return std::max<int64_t>(1, block_bytes / std::max<int64_t>(1, row_bytes));
}

void CheckShape(const H5Reader& r, const std::string& name, const Shape& want) {
  if (!r.Has(name)) throw std::runtime_error(fmt::format("dataset '{}' is missing", name));
  const Shape got = r.DatasetShape(name);
  if (got != want)
    throw std::runtime_error(fmt::format("dataset '{}' has shape [{}], expected [{}]", name,
                                         fmt::join(got, ", "), fmt::join(want, ", ")));
}

// into[i] += dataset[i], reading `rows` × `cols` in blocks of rows.
template <typename T>
void AddRows(const H5Reader& r, const std::string& name, int64_t rows, int64_t cols,
             std::vector<T>& into, int64_t block_bytes) {
  CheckShape(r, name, cols == 1 ? Shape{rows} : Shape{rows, cols});
  const int64_t per =
      std::min(rows, RowsPerBlock(cols * static_cast<int64_t>(sizeof(T)), block_bytes));
  std::vector<T> buf(Z(per * cols));
  for (int64_t r0 = 0; r0 < rows; r0 += per) {
    const int64_t n = std::min(per, rows - r0);
    r.ReadRows(name, r0, n, buf.data());
    T* dst = into.data() + r0 * cols;
    for (int64_t i = 0; i < n * cols; ++i) dst[i] += buf[Z(i)];
  }
}

int64_t ReadScalar(const H5Reader& r, const std::string& name) {
  const auto v = r.Read<int64_t>(name);
  if (v.size() != 1) throw std::runtime_error(fmt::format("dataset '{}' is not a scalar", name));
  return v[0];
}

// Adds one harvest file's accumulators into `acc` (same Options, checked by the caller).
void MergeFile(const H5Reader& r, Accumulators& acc, int64_t block_bytes) {
  const Options& o = acc.options;
  const int64_t C = o.components, V = o.vocab, K = o.k, W = o.window();
  acc.n_tokens += ReadScalar(r, "n_tokens");
  acc.n_rows += ReadScalar(r, "n_rows");
  const auto batches = r.Read<int64_t>("batches");
  acc.batches.insert(acc.batches.end(), batches.begin(), batches.end());
  AddRows(r, "firing_count", C, 1, acc.firing_count, block_bytes);
  AddRows(r, "act_sum/post", C, 1, acc.act_sum_post, block_bytes);
  if (o.pre) AddRows(r, "act_sum/pre", C, 1, acc.act_sum_pre, block_bytes);
  if (o.cooc) {  // the file's symmetric matrix into the upper triangle
    CheckShape(r, "cooc", {C, C});
    const int64_t per = std::min(C, RowsPerBlock(C * 8, block_bytes));
    std::vector<int64_t> buf(Z(per * C));
    for (int64_t r0 = 0; r0 < C; r0 += per) {
      const int64_t n = std::min(per, C - r0);
      r.ReadRows("cooc", r0, n, buf.data());
      for (int64_t i = r0; i < r0 + n; ++i)
        for (int64_t j = i; j < C; ++j) acc.cooc[Z(i * C + j)] += buf[Z((i - r0) * C + j)];
    }
  }
  if (o.input_tokens) {
    AddRows(r, "in_cooc", C, V, acc.in_cooc, block_bytes);
    AddRows(r, "in_marg", V, 1, acc.in_marg, block_bytes);
  }
  if (o.output_tokens) {
    AddRows(r, "out_cooc", C, V, acc.out_cooc, block_bytes);
    AddRows(r, "out_marg", V, 1, acc.out_marg, block_bytes);
  }
  CheckShape(r, "reservoir/key", {C, K});
  CheckShape(r, "reservoir/row", {C, K});
  CheckShape(r, "reservoir/pos", {C, K});
  CheckShape(r, "reservoir/tokens", {C, K, W});
  CheckShape(r, "reservoir/acts", {C, K, W});
  CheckShape(r, "reservoir/n_items", {C});
  CheckShape(r, "reservoir/n_seen", {C});
  const int64_t per = std::min(C, RowsPerBlock(K * (W * 8 + 20) + 16, block_bytes));
  Reservoir::Arrays b;
  for (int64_t c0 = 0; c0 < C; c0 += per) {
    const int64_t n = std::min(per, C - c0);
    b.key.resize(Z(n * K));
    b.row.resize(Z(n * K));
    b.pos.resize(Z(n * K));
    b.tokens.resize(Z(n * K * W));
    b.acts.resize(Z(n * K * W));
    b.n_items.resize(Z(n));
    b.n_seen.resize(Z(n));
    r.ReadRows("reservoir/key", c0, n, b.key.data());
    r.ReadRows("reservoir/row", c0, n, b.row.data());
    r.ReadRows("reservoir/pos", c0, n, b.pos.data());
    r.ReadRows("reservoir/tokens", c0, n, b.tokens.data());
    r.ReadRows("reservoir/acts", c0, n, b.acts.data());
    r.ReadRows("reservoir/n_items", c0, n, b.n_items.data());
    r.ReadRows("reservoir/n_seen", c0, n, b.n_seen.data());
    acc.reservoir.MergeBlock(c0, b);
  }
}

Options ReadOptions(const H5Reader& r) {
  const auto text = r.AttrString("/", "harvest_options");
  if (!text) throw std::runtime_error("no harvest_options attribute");
  const Json j = Json::parse(*text, nullptr, false);
  if (j.is_discarded()) throw std::runtime_error("harvest_options is not JSON");
  Options o = Options::FromJson(j);
  if (auto p = o.Problems(); !p.empty())
    throw std::runtime_error(fmt::format("harvest_options: {}", fmt::join(p, "; ")));
  return o;
}

// The top-level keys where two config JSON texts differ.
std::string ConfigDifference(const std::string& a, const std::string& b) {
  const Json ja = Json::parse(a, nullptr, false), jb = Json::parse(b, nullptr, false);
  if (ja.is_discarded() || jb.is_discarded()) return "(not JSON)";
  std::set<std::string> paths;
  for (const auto& op : Json::diff(ja, jb)) paths.insert(op.at("path").get<std::string>());
  return fmt::format("{}", fmt::join(paths, ", "));
}

template <typename T>
void AllReduceSum(Collective& g, std::vector<T>& v, DType t) {
  if (!v.empty()) g.AllReduce(v.data(), v.size(), t, ReduceOp::kSum);
}

}  // namespace

void WriteAccumulators(H5Writer& w, const Accumulators& acc, const FileMeta& meta) {
  const Options& o = acc.options;
  const int64_t C = o.components, V = o.vocab, K = o.k, W = o.window();
  w.Attr("/", "harvest_layout", kLayoutVersion);
  w.Attr("/", "harvest_role", meta.role);
  w.Attr("/", "harvest_shard_index", meta.shard_index);
  w.Attr("/", "harvest_shard_count", meta.shard_count);
  w.Attr("/", "harvest_config", meta.config);
  w.Attr("/", "harvest_options", o.ToJson().dump());
  w.Write(harvest_layout::kNTokens, &acc.n_tokens, Shape{});
  w.Write(harvest_layout::kNRows, &acc.n_rows, Shape{});
  std::vector<int64_t> batches = acc.batches;
  std::sort(batches.begin(), batches.end());
  w.Write("batches", batches);
  w.Write(harvest_layout::kFiringCount, acc.firing_count);
  w.Write(harvest_layout::kActSumPost, acc.act_sum_post);
  if (o.pre) w.Write("act_sum/pre", acc.act_sum_pre);
  if (o.cooc) {
    std::vector<int64_t> full(Z(C * C));
    for (int64_t i = 0; i < C; ++i)
      for (int64_t j = i; j < C; ++j)
        full[Z(i * C + j)] = full[Z(j * C + i)] = acc.cooc[Z(i * C + j)];
    w.Write("cooc", full.data(), Shape{C, C});
  }
  if (o.input_tokens) {
    w.Write("in_cooc", acc.in_cooc.data(), Shape{C, V});
    w.Write("in_marg", acc.in_marg);
  }
  if (o.output_tokens) {
    w.Write("out_cooc", acc.out_cooc.data(), Shape{C, V});
    w.Write("out_marg", acc.out_marg);
  }
  const Reservoir::Arrays res = acc.reservoir.Canonical();
  w.Write(harvest_layout::kReservoirKey, res.key.data(), Shape{C, K});
  w.Write("reservoir/row", res.row.data(), Shape{C, K});
  w.Write("reservoir/pos", res.pos.data(), Shape{C, K});
  w.Write("reservoir/tokens", res.tokens.data(), Shape{C, K, W});
  w.Write("reservoir/acts", res.acts.data(), Shape{C, K, W});
  w.Write("reservoir/n_items", res.n_items);
  w.Write("reservoir/n_seen", res.n_seen);
}

void WriteDerived(H5Writer& w, const Accumulators& acc, const Derived& d) {
  const Options& o = acc.options;
  const int64_t C = o.components, K = d.top_k;
  w.Write(harvest_layout::kFiringDensity, d.firing_density);
  w.Write("mean_act/post", d.mean_post);
  if (o.pre) w.Write("mean_act/pre", d.mean_pre);
  if (o.input_tokens) {
    w.Write("pmi/in_idx", d.in_pmi_idx.data(), Shape{C, K});
    w.Write("pmi/in_val", d.in_pmi_val.data(), Shape{C, K});
  }
  if (o.output_tokens) {
    w.Write("pmi/out_idx", d.out_pmi_idx.data(), Shape{C, K});
    w.Write("pmi/out_val", d.out_pmi_val.data(), Shape{C, K});
  }
  // The component table, one column per dataset.
  std::vector<int64_t> layer(Z(C)), unit(Z(C));
  for (int64_t c = 0; c < C; ++c) {
    layer[Z(c)] = o.layers[Z(c / o.width)];
    unit[Z(c)] = c % o.width;
  }
  std::vector<std::string> columns = {"layer",          "unit",          "firing_count",
                                      "firing_density", "mean_act_post", "n_examples"};
  w.Write(harvest_layout::kComponentsLayer, layer);
  w.Write("components/unit", unit);
  w.Write("components/firing_count", acc.firing_count);
  w.Write("components/firing_density", d.firing_density);
  w.Write("components/mean_act_post", d.mean_post);
  if (o.pre) {
    w.Write("components/mean_act_pre", d.mean_pre);
    columns.push_back("mean_act_pre");
  }
  w.Write("components/n_examples", acc.reservoir.arrays().n_items);
  const auto top = [&](const std::vector<int32_t>& idx, const std::vector<double>& val,
                       const std::string& name) {
    std::vector<int32_t> ti(Z(C));
    std::vector<double> tv(Z(C));
    for (int64_t c = 0; c < C; ++c) {
      ti[Z(c)] = idx[Z(c * K)];
      tv[Z(c)] = val[Z(c * K)];
    }
    w.Write("components/top_" + name + "_token", ti);
    w.Write("components/top_" + name + "_pmi", tv);
    columns.push_back("top_" + name + "_token");
    columns.push_back("top_" + name + "_pmi");
  };
  if (o.input_tokens) top(d.in_pmi_idx, d.in_pmi_val, "in");
  if (o.output_tokens) top(d.out_pmi_idx, d.out_pmi_val, "out");
  w.Attr("components", "columns", Json(columns).dump());
  w.Attr("components", "point", o.point);
}

std::vector<std::pair<std::string, double>> HarvestMetrics(const Accumulators& acc,
                                                           const Derived& d) {
  const size_t C = d.firing_density.size();
  std::vector<double> sorted = d.firing_density;
  std::sort(sorted.begin(), sorted.end());
  double sum = 0, examples = 0;
  size_t dead = 0;
  for (size_t c = 0; c < C; ++c) {
    sum += d.firing_density[c];
    dead += acc.firing_count[c] == 0;
    examples += static_cast<double>(acc.reservoir.arrays().n_items[c]);
  }
  const double n = static_cast<double>(C);
  const double median =
      C == 0 ? 0.0 : (C % 2 ? sorted[C / 2] : 0.5 * (sorted[C / 2 - 1] + sorted[C / 2]));
  return {{"n_tokens", static_cast<double>(acc.n_tokens)},
          {"n_components", n},
          {"density_mean", C ? sum / n : 0.0},
          {"density_median", median},
          {"dead_frac", C ? static_cast<double>(dead) / n : 0.0},
          {"examples_mean", C ? examples / n : 0.0}};
}

namespace {

// One map shard's file as the reduce reads it.
struct MapFile {
  const MapInput* input = nullptr;
  std::unique_ptr<H5Reader> reader;
  int64_t index = -1;
  Options options;
  std::vector<int64_t> batches;
};

using MapName = std::function<std::string(const MapInput&, int64_t)>;

// Opens `m.input`'s file and checks what it says of itself against the reduce (throws).
void OpenMapFile(MapFile& m, int64_t shard_count, const std::string& config) {
  const MapInput& in = *m.input;
  m.reader = std::make_unique<H5Reader>(in.path);
  const H5Reader& r = *m.reader;
  const auto layout = r.AttrInt("/", "harvest_layout");
  if (!layout) throw std::runtime_error("not a harvest file (no harvest_layout attribute)");
  if (*layout != kLayoutVersion)
    throw std::runtime_error(
        fmt::format("harvest layout {} (this build reads {})", *layout, kLayoutVersion));
  const auto role = r.AttrString("/", "harvest_role").value_or("");
  if (role != "map") throw std::runtime_error(fmt::format("role is '{}', not map", role));
  m.index = r.AttrInt("/", "harvest_shard_index").value_or(-1);
  const int64_t count = r.AttrInt("/", "harvest_shard_count").value_or(-1);
  if (count != shard_count)
    throw std::runtime_error(
        fmt::format("written as one of {} map shards, not {}", count, shard_count));
  if (m.index < 0 || m.index >= shard_count)
    throw std::runtime_error(
        fmt::format("shard index {} is outside [0, {})", m.index, shard_count));
  if (in.shard_index >= 0 && in.shard_index != m.index)
    throw std::runtime_error(fmt::format("the file says shard index {}, the shard's params {}",
                                         m.index, in.shard_index));
  const std::string theirs = r.AttrString("/", "harvest_config").value_or("");
  if (theirs != config)
    throw std::runtime_error(fmt::format("its config differs from the reduce's at {}",
                                         ConfigDifference(theirs, config)));
  m.options = ReadOptions(r);
  m.batches = r.Read<int64_t>("batches");
}

// Every shard index present once.
void CheckMapIndices(const std::vector<MapFile>& ok, const std::vector<MapInput>& maps,
                     int64_t shard_count, const MapName& name, std::vector<std::string>& problems) {
  std::map<int64_t, std::vector<const MapFile*>> by_index;
  for (const MapFile& m : ok) by_index[m.index].push_back(&m);
  for (const auto& [index, list] : by_index) {
    if (list.size() < 2) continue;
    std::vector<std::string> who;
    for (const MapFile* m : list) who.push_back(name(*m->input, index));
    problems.push_back(fmt::format("shard index {} appears {} times: {}", index, list.size(),
                                   fmt::join(who, "; ")));
  }
  for (int64_t i = 0; i < shard_count; ++i) {
    if (by_index.count(i)) continue;
    bool named = false;
    for (const MapInput& in : maps) named |= in.shard_index == i;
    if (!named)
      problems.push_back(fmt::format("map shard {} of {}: no input file", i, shard_count));
  }
}

// The maps agree on their options and their batches tile [0, n_batches).
void CheckMapBatches(const std::vector<MapFile>& ok, const MapName& name,
                     std::vector<std::string>& problems) {
  const Options& first = ok.front().options;
  const std::string want = first.ToJson().dump();
  for (const MapFile& m : ok)
    if (m.options.ToJson().dump() != want)
      problems.push_back(fmt::format(
          "{}: its harvest options differ from {}'s ({} vs {})", name(*m.input, m.index),
          name(*ok.front().input, ok.front().index), m.options.ToJson().dump(), want));
  // The maps' batches must tile [0, n_batches).
  std::vector<const MapFile*> owner(Z(std::max<int64_t>(0, first.n_batches)), nullptr);
  for (const MapFile& m : ok) {
    for (int64_t b : m.batches) {
      if (b < 0 || b >= first.n_batches) {
        problems.push_back(fmt::format("{}: batch {} is outside [0, {})", name(*m.input, m.index),
                                       b, first.n_batches));
        break;
      }
      if (owner[Z(b)]) {
        problems.push_back(fmt::format("{}: batch {} was also harvested by {}",
                                       name(*m.input, m.index), b,
                                       name(*owner[Z(b)]->input, owner[Z(b)]->index)));
        break;
      }
      owner[Z(b)] = &m;
    }
  }
  if (problems.empty()) {
    std::vector<int64_t> gaps;
    for (size_t b = 0; b < owner.size(); ++b)
      if (!owner[b]) gaps.push_back(static_cast<int64_t>(b));
    if (!gaps.empty())
      problems.push_back(
          fmt::format("{} batches are in no map file (first: {})", gaps.size(), gaps.front()));
  }
}

}  // namespace

Accumulators ReduceMapFiles(const std::vector<MapInput>& maps, int64_t shard_count,
                            const std::string& config, int64_t block_bytes) {
  const MapName name = [&](const MapInput& in, int64_t index) {
    return fmt::format("map shard {} of {} (id {}, {})",
                       index >= 0 ? std::to_string(index) : std::string("?"), shard_count,
                       in.shard_id.empty() ? "?" : in.shard_id, in.path);
  };
  std::vector<std::string> problems;
  if (static_cast<int64_t>(maps.size()) != shard_count)
    problems.push_back(
        fmt::format("expected {} map shard files, got {}", shard_count, maps.size()));
  std::vector<MapFile> ok;
  for (const MapInput& in : maps) {
    std::error_code ec;
    if (!fs::exists(in.path, ec)) {
      problems.push_back(fmt::format("{}: the file is missing", name(in, in.shard_index)));
      continue;
    }
    MapFile m;
    m.input = &in;
    try {
      OpenMapFile(m, shard_count, config);
    } catch (const std::exception& e) {
      problems.push_back(
          fmt::format("{}: {}", name(in, m.index >= 0 ? m.index : in.shard_index), e.what()));
      continue;
    }
    ok.push_back(std::move(m));
  }
  std::sort(ok.begin(), ok.end(),
            [](const MapFile& a, const MapFile& b) { return a.index < b.index; });
  CheckMapIndices(ok, maps, shard_count, name, problems);
  if (!ok.empty()) CheckMapBatches(ok, name, problems);
  if (!problems.empty())
    throw std::runtime_error(fmt::format("harvest reduce: {} problem{} with the map shards:\n  {}",
                                         problems.size(), problems.size() == 1 ? "" : "s",
                                         fmt::join(problems, "\n  ")));

  Accumulators acc(ok.front().options);
  for (const MapFile& m : ok) {
    try {
      MergeFile(*m.reader, acc, block_bytes);
    } catch (const std::exception& e) {
      throw std::runtime_error(
          fmt::format("harvest reduce: {} is corrupt: {}", name(*m.input, m.index), e.what()));
    }
  }
  return acc;
}

Accumulators ReadAccumulators(const std::string& path) {
  H5Reader r(path);
  Accumulators acc(ReadOptions(r));
  try {
    MergeFile(r, acc, 64 << 20);
  } catch (const std::exception& e) {
    throw std::runtime_error(fmt::format("{}: {}", path, e.what()));
  }
  return acc;
}

void GangReduce(Accumulators& acc, Collective& gang, int64_t block_bytes) {
  const int size = gang.size();
  if (size <= 1) return;
  const bool root = gang.rank() == 0;
  int64_t scalars[2] = {acc.n_tokens, acc.n_rows};
  gang.AllReduce(scalars, 2, DType::kInt64, ReduceOp::kSum);
  acc.n_tokens = scalars[0];
  acc.n_rows = scalars[1];
  AllReduceSum(gang, acc.firing_count, DType::kInt64);
  AllReduceSum(gang, acc.act_sum_post, DType::kFloat64);
  AllReduceSum(gang, acc.act_sum_pre, DType::kFloat64);
  AllReduceSum(gang, acc.cooc, DType::kInt64);
  AllReduceSum(gang, acc.in_cooc, DType::kInt64);
  AllReduceSum(gang, acc.in_marg, DType::kInt64);
  AllReduceSum(gang, acc.out_cooc, DType::kFloat64);
  AllReduceSum(gang, acc.out_marg, DType::kFloat64);

  // Batch lists differ in length: pad to the longest with −1.
  int64_t longest = static_cast<int64_t>(acc.batches.size());
  gang.AllReduce(&longest, 1, DType::kInt64, ReduceOp::kMax);
  std::vector<int64_t> mine = acc.batches;
  mine.resize(Z(longest), -1);
  std::vector<int64_t> all(root ? Z(longest) * Z(size) : 0);
  gang.Gather(mine.data(), all.data(), Z(longest), DType::kInt64, 0);
  if (root) {
    acc.batches.clear();
    for (int64_t b : all)
      if (b >= 0) acc.batches.push_back(b);
  }

  // Reservoirs, a block of components at a time: rank 0 merges every other rank's examples.
  const Options& o = acc.options;
  const int64_t C = o.components, K = o.k, W = o.window();
  const int64_t per = std::min(C, RowsPerBlock(size * (K * (W * 8 + 20) + 16), block_bytes));
  const Reservoir::Arrays& own = acc.reservoir.arrays();
  Reservoir::Arrays got, one;
  for (int64_t c0 = 0; c0 < C; c0 += per) {
    const int64_t n = std::min(per, C - c0);
    const size_t nk = Z(n * K), nkw = nk * Z(W), g = root ? Z(size) : 0;
    got.key.resize(g * nk);
    got.row.resize(g * nk);
    got.pos.resize(g * nk);
    got.tokens.resize(g * nkw);
    got.acts.resize(g * nkw);
    got.n_items.resize(g * Z(n));
    got.n_seen.resize(g * Z(n));
    gang.Gather(own.key.data() + c0 * K, got.key.data(), nk, DType::kFloat64, 0);
    gang.Gather(own.row.data() + c0 * K, got.row.data(), nk, DType::kInt64, 0);
    gang.Gather(own.pos.data() + c0 * K, got.pos.data(), nk, DType::kInt32, 0);
    gang.Gather(own.tokens.data() + c0 * K * W, got.tokens.data(), nkw, DType::kInt32, 0);
    gang.Gather(own.acts.data() + c0 * K * W, got.acts.data(), nkw, DType::kFloat32, 0);
    gang.Gather(own.n_items.data() + c0, got.n_items.data(), Z(n), DType::kInt64, 0);
    gang.Gather(own.n_seen.data() + c0, got.n_seen.data(), Z(n), DType::kInt64, 0);
    if (!root) continue;
    for (int r = 1; r < size; ++r) {
      const auto slice = [&](const auto& v, size_t len) {
        using V = std::decay_t<decltype(v)>;
        return V(v.begin() + static_cast<std::ptrdiff_t>(Z(r) * len),
                 v.begin() + static_cast<std::ptrdiff_t>(Z(r + 1) * len));
      };
      one.key = slice(got.key, nk);
      one.row = slice(got.row, nk);
      one.pos = slice(got.pos, nk);
      one.tokens = slice(got.tokens, nkw);
      one.acts = slice(got.acts, nkw);
      one.n_items = slice(got.n_items, Z(n));
      one.n_seen = slice(got.n_seen, Z(n));
      acc.reservoir.MergeBlock(c0, one);
    }
  }
}

}  // namespace seedgrid::harvest

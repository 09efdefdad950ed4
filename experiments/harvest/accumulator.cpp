#include "experiments/harvest/accumulator.h"

#include <algorithm>
#if defined(__x86_64__) && defined(__GNUC__)
#include <immintrin.h>
#endif
#include <bit>
#include <cmath>
#include <stdexcept>

#include <fmt/format.h>
#include <fmt/ranges.h>

namespace seedgrid::harvest {
namespace {

constexpr double kNegInf = -std::numeric_limits<double>::infinity();

uint64_t Mix(uint64_t x) {  // SplitMix64's finaliser
  x += 0x9e3779b97f4a7c15ull;
  x = (x ^ (x >> 30)) * 0xbf58476d1ce4e5b9ull;
  x = (x ^ (x >> 27)) * 0x94d049bb133111ebull;
  return x ^ (x >> 31);
}

template <typename T, typename U>
void AddInto(std::vector<T>& into, const std::vector<U>& from) {
  for (size_t i = 0; i < into.size(); ++i) into[i] += from[i];
}

size_t Z(int64_t v) { return static_cast<size_t>(v); }

// cooc[a, b] += tokens on which both fire, for every pair a <= b of `active` (ascending ids):
// the upper triangle only. Tiles keep both bitset blocks in cache.
#if defined(__x86_64__) && defined(__GNUC__)
__attribute__((target_clones("popcnt", "default")))
#endif
void AddCooc(const uint64_t* bits, int64_t words, const std::vector<int64_t>& active, int64_t C,
             int64_t* cooc) {
  constexpr size_t kTile = 64;
  const size_t n = active.size();
  for (size_t i0 = 0; i0 < n; i0 += kTile) {
    const size_t i1 = std::min(n, i0 + kTile);
    for (size_t j0 = i0; j0 < n; j0 += kTile) {
      const size_t j1 = std::min(n, j0 + kTile);
      for (size_t i = i0; i < i1; ++i) {
        const uint64_t* bi = bits + active[i] * words;
        int64_t* row = cooc + active[i] * C;
        for (size_t j = std::max(i, j0); j < j1; ++j) {
          const uint64_t* bj = bits + active[j] * words;
          int64_t v = 0;
          for (int64_t w = 0; w < words; ++w) v += __builtin_popcountll(bi[w] & bj[w]);
          row[active[j]] += v;
        }
      }
    }
  }
}

#if defined(__x86_64__) && defined(__GNUC__)
#define SEEDGRID_HARVEST_AVX512 1
bool HasAvx512Popcount() {
  static const bool yes =
      __builtin_cpu_supports("avx512f") && __builtin_cpu_supports("avx512vpopcntdq");
  return yes;
}

// AddCooc with AVX-512 VPOPCNTQ, 8 pairs at a time, over a transposed copy of the bitsets:
// bt[w·mp + j] = word w of active[j] (mp = active.size() rounded up to 8, zero padded).
__attribute__((target("avx512f,avx512vpopcntdq"))) void AddCoocAvx512(
    const uint64_t* bits, int64_t words, const std::vector<int64_t>& active, int64_t C,
    int64_t* cooc, std::vector<uint64_t>& bt) {
  const int64_t m = static_cast<int64_t>(active.size()), mp = (m + 7) / 8 * 8;
  bt.assign(Z(words * mp), 0);
  for (int64_t j = 0; j < m; ++j)
    for (int64_t w = 0; w < words; ++w) bt[Z(w * mp + j)] = bits[active[Z(j)] * words + w];
  alignas(64) int64_t v[8];
  for (int64_t i = 0; i < m; ++i) {
    const uint64_t* bi = bits + active[Z(i)] * words;
    int64_t* row = cooc + active[Z(i)] * C;
    for (int64_t j0 = i & ~int64_t{7}; j0 < m; j0 += 8) {
      __m512i sum = _mm512_setzero_si512();
      for (int64_t w = 0; w < words; ++w) {
        const __m512i x = _mm512_and_si512(_mm512_set1_epi64(static_cast<long long>(bi[w])),
                                           _mm512_loadu_si512(bt.data() + w * mp + j0));
        sum = _mm512_add_epi64(sum, _mm512_popcnt_epi64(x));
      }
      _mm512_store_si512(v, sum);
      for (int64_t l = std::max<int64_t>(0, i - j0); l < 8 && j0 + l < m; ++l)
        row[active[Z(j0 + l)]] += v[l];
    }
  }
}
#endif

// The first pass over a panel of C components: sum[c] += x[n·stride + c] for every token n in
// order and, when `bits` is given, bit n % 64 of bits[c·words + n / 64] set iff that value is
// > thr (bits zeroed first).
void FirePass(const float* x, int64_t N, int64_t C, int64_t stride, float thr, int64_t words,
              double* sum, uint64_t* bits) {
  for (int64_t n = 0; n < N; ++n) {
    const float* p = x + n * stride;
    for (int64_t c = 0; c < C; ++c) sum[c] += static_cast<double>(p[c]);
    if (!bits) continue;
    uint64_t* word = bits + (n >> 6);
    const int shift = static_cast<int>(n & 63);
    for (int64_t c = 0; c < C; ++c) word[c * words] |= static_cast<uint64_t>(p[c] > thr) << shift;
  }
}

#ifdef SEEDGRID_HARVEST_AVX512
bool HasAvx512Bw() {
  static const bool yes = __builtin_cpu_supports("avx512f") && __builtin_cpu_supports("avx512bw");
  return yes;
}

// GCC 12 warns about the undefined upper halves inside its own AVX-512 intrinsics.
#pragma GCC diagnostic push
#pragma GCC diagnostic ignored "-Wmaybe-uninitialized"
// FirePass with AVX-512: 16 components × 64 tokens at a time; the 64 16-bit compare masks are
// transposed into 16 64-bit words with VPTESTMW. The sums add in the same order as FirePass,
// so both give the same bits.
__attribute__((target("avx512f,avx512bw"))) void FirePassAvx512(const float* x, int64_t N,
                                                                int64_t C, int64_t stride,
                                                                float thr, int64_t words,
                                                                double* sum, uint64_t* bits) {
  const __m512 t = _mm512_set1_ps(thr);
  alignas(64) uint16_t m[64];
  for (int64_t n0 = 0, block = 0; n0 < N; n0 += 64, ++block) {
    const int64_t nb = std::min<int64_t>(64, N - n0);
    for (int64_t c0 = 0; c0 < C; c0 += 16) {
      const int64_t cn = std::min<int64_t>(16, C - c0);
      const auto lanes = static_cast<__mmask16>(cn == 16 ? 0xffffu : (1u << cn) - 1);
      const auto lo = static_cast<__mmask8>(lanes & 0xff), hi = static_cast<__mmask8>(lanes >> 8);
      __m512d s0 = _mm512_maskz_loadu_pd(lo, sum + c0),
              s1 = _mm512_maskz_loadu_pd(hi, sum + c0 + 8);
      for (int64_t j = 0; j < nb; ++j) {
        const __m512 v = _mm512_maskz_loadu_ps(lanes, x + (n0 + j) * stride + c0);
        m[j] = _mm512_mask_cmp_ps_mask(lanes, v, t, _CMP_GT_OQ);
        s0 = _mm512_add_pd(s0, _mm512_cvtps_pd(_mm512_castps512_ps256(v)));
        s1 = _mm512_add_pd(
            s1, _mm512_cvtps_pd(_mm256_castpd_ps(_mm512_extractf64x4_pd(_mm512_castps_pd(v), 1))));
      }
      _mm512_mask_storeu_pd(sum + c0, lo, s0);
      _mm512_mask_storeu_pd(sum + c0 + 8, hi, s1);
      if (!bits) continue;
      for (int64_t j = nb; j < 64; ++j) m[j] = 0;
      const __m512i m0 = _mm512_load_si512(m), m1 = _mm512_load_si512(m + 32);
      for (int64_t k = 0; k < cn; ++k) {
        const __m512i bit = _mm512_set1_epi16(static_cast<short>(1u << k));
        const uint64_t low = _mm512_test_epi16_mask(m0, bit),
                       high = _mm512_test_epi16_mask(m1, bit);
        bits[(c0 + k) * words + block] = low | high << 32;
      }
    }
  }
}
#pragma GCC diagnostic pop
#endif

}  // namespace

// ---- Options ---------------------------------------------------------------------------------

Json Options::ToJson() const {
  return {{"components", components},
          {"vocab", vocab},
          {"seq_len", seq_len},
          {"threshold", threshold},
          {"pre", pre},
          {"cooc", cooc},
          {"input_tokens", input_tokens},
          {"output_tokens", output_tokens},
          {"k", k},
          {"context", context},
          {"per_batch", per_batch},
          {"weight_by_activation", weight_by_activation},
          {"seed", seed},
          {"point", point},
          {"layers", layers},
          {"width", width},
          {"batch_rows", batch_rows},
          {"n_batches", n_batches}};
}

Options Options::FromJson(const Json& j) {
  Options o;
  try {
    o.components = j.at("components").get<int64_t>();
    o.vocab = j.at("vocab").get<int64_t>();
    o.seq_len = j.at("seq_len").get<int64_t>();
    o.threshold = j.at("threshold").get<double>();
    o.pre = j.at("pre").get<bool>();
    o.cooc = j.at("cooc").get<bool>();
    o.input_tokens = j.at("input_tokens").get<bool>();
    o.output_tokens = j.at("output_tokens").get<bool>();
    o.k = j.at("k").get<int64_t>();
    o.context = j.at("context").get<int64_t>();
    o.per_batch = j.at("per_batch").get<int64_t>();
    o.weight_by_activation = j.at("weight_by_activation").get<bool>();
    o.seed = j.at("seed").get<uint64_t>();
    o.point = j.at("point").get<std::string>();
    o.layers = j.at("layers").get<std::vector<int64_t>>();
    o.width = j.at("width").get<int64_t>();
    o.batch_rows = j.at("batch_rows").get<int64_t>();
    o.n_batches = j.at("n_batches").get<int64_t>();
  } catch (const Json::exception& e) {
    throw std::runtime_error(fmt::format("harvest options: {}", e.what()));
  }
  return o;
}

std::vector<std::string> Options::Problems() const {
  std::vector<std::string> p;
  if (components < 1) p.push_back("components must be >= 1");
  if (vocab < 1) p.push_back("vocab must be >= 1");
  if (seq_len < 1) p.push_back("seq_len must be >= 1");
  if (k < 1) p.push_back("k must be >= 1");
  if (context < 0) p.push_back("context must be >= 0");
  if (per_batch < 1) p.push_back("per_batch must be >= 1");
  if (weight_by_activation && threshold < 0) p.push_back("activation weights need threshold >= 0");
  if (width < 1 || width * static_cast<int64_t>(layers.size()) != components)
    p.push_back(
        fmt::format("width {} × {} layers is not {} components", width, layers.size(), components));
  return p;
}

// ---- Keys ------------------------------------------------------------------------------------

namespace {

double ToUniform(uint64_t bits53) { return (static_cast<double>(bits53) + 0.5) * 0x1.0p-53; }

// A uniform-weight key is log(u) with u = ToUniform(bits53): a candidate whose bits53 is below
// this cannot rank before `key` (the 1e-9 margin covers the rounding of exp and log; RanksBefore
// decides the rest exactly). 0 for key = −inf.
uint64_t Bits53Floor(double key) {
  return static_cast<uint64_t>(std::max(0.0, std::exp(key) * (1.0 - 1e-9) * 0x1.0p53 - 1.0));
}

// u in (0, 1) from a hash chain over (seed, component, row, pos).
double ExampleUniform(uint64_t seed, int64_t component, int64_t row, int64_t pos) {
  uint64_t h = Mix(seed);
  h = Mix(h ^ static_cast<uint64_t>(component));
  h = Mix(h ^ static_cast<uint64_t>(row));
  h = Mix(h ^ static_cast<uint64_t>(pos));
  return ToUniform(h >> 11);
}

}  // namespace

double ExampleKey(uint64_t seed, int64_t component, int64_t row, int64_t pos, double weight) {
  return std::log(ExampleUniform(seed, component, row, pos)) / weight;
}

// ---- Reservoir -------------------------------------------------------------------------------

Reservoir::Reservoir(int64_t components, int64_t k, int64_t window)
    : c_(components), k_(k), w_(window) {
  a_.key.assign(Z(c_ * k_), kNegInf);
  a_.row.assign(Z(c_ * k_), -1);
  a_.pos.assign(Z(c_ * k_), -1);
  a_.tokens.assign(Z(c_ * k_ * w_), -1);
  a_.acts.assign(Z(c_ * k_ * w_), 0.0f);
  a_.n_items.assign(Z(c_), 0);
  a_.n_seen.assign(Z(c_), 0);
  heap_.assign(Z(c_ * k_), 0);
}

Reservoir::Reservoir(Arrays arrays, int64_t components, int64_t k, int64_t window)
    : c_(components), k_(k), w_(window), a_(std::move(arrays)) {
  const size_t ck = Z(c_ * k_), ckw = ck * Z(w_);
  if (a_.key.size() != ck || a_.row.size() != ck || a_.pos.size() != ck ||
      a_.tokens.size() != ckw || a_.acts.size() != ckw || a_.n_items.size() != Z(c_) ||
      a_.n_seen.size() != Z(c_))
    throw std::runtime_error(
        fmt::format("reservoir arrays do not have shape [C={}, k={}, window={}]", c_, k_, w_));
  for (int64_t c = 0; c < c_; ++c) {
    const int64_t n = a_.n_items[Z(c)];
    if (n < 0 || n > k_ || a_.n_seen[Z(c)] < n)
      throw std::runtime_error(
          fmt::format("reservoir: component {} has n_items {} (k {}) and n_seen {}", c, n, k_,
                      a_.n_seen[Z(c)]));
  }
  heap_.assign(ck, 0);
  BuildHeaps();
}

ExampleRank Reservoir::RankAt(int64_t c, int64_t slot) const {
  const size_t i = Z(c * k_ + slot);
  return {a_.key[i], a_.row[i], a_.pos[i]};
}

void Reservoir::BuildHeaps() {
  for (int64_t c = 0; c < c_; ++c) {
    int32_t* h = heap_.data() + c * k_;
    const int64_t n = a_.n_items[Z(c)];
    for (int64_t i = 0; i < n; ++i) h[i] = static_cast<int32_t>(i);
    for (int64_t i = n / 2; i-- > 0;) SiftDown(c, i);
  }
}

// Min-heap on rank: a parent ranks after (is lower than) its children.
void Reservoir::SiftUp(int64_t c, int64_t i) {
  int32_t* h = heap_.data() + c * k_;
  while (i > 0) {
    const int64_t parent = (i - 1) / 2;
    if (!RanksBefore(RankAt(c, h[parent]), RankAt(c, h[i]))) break;
    std::swap(h[parent], h[i]);
    i = parent;
  }
}

void Reservoir::SiftDown(int64_t c, int64_t i) {
  int32_t* h = heap_.data() + c * k_;
  const int64_t n = a_.n_items[Z(c)];
  for (;;) {
    int64_t low = i;
    for (int64_t child : {2 * i + 1, 2 * i + 2})
      if (child < n && RanksBefore(RankAt(c, h[low]), RankAt(c, h[child]))) low = child;
    if (low == i) return;
    std::swap(h[low], h[i]);
    i = low;
  }
}

double Reservoir::LowestKey(int64_t c) const {
  return a_.n_items[Z(c)] < k_ ? kNegInf : a_.key[Z(c * k_ + heap_[Z(c * k_)])];
}

bool Reservoir::Accepts(int64_t c, const ExampleRank& r) const {
  if (a_.n_items[Z(c)] < k_) return true;
  return RanksBefore(r, RankAt(c, heap_[Z(c * k_)]));
}

void Reservoir::Offer(int64_t c, const ExampleRank& r, const int32_t* tokens, const float* acts) {
  if (!Accepts(c, r)) return;
  int64_t& n = a_.n_items[Z(c)];
  int32_t* h = heap_.data() + c * k_;
  const bool full = n == k_;
  const int64_t slot = full ? h[0] : n;
  const size_t i = Z(c * k_ + slot);
  a_.key[i] = r.key;
  a_.row[i] = r.row;
  a_.pos[i] = r.pos;
  std::copy(tokens, tokens + w_, a_.tokens.begin() + static_cast<std::ptrdiff_t>(i * Z(w_)));
  std::copy(acts, acts + w_, a_.acts.begin() + static_cast<std::ptrdiff_t>(i * Z(w_)));
  if (full) {
    SiftDown(c, 0);
  } else {
    h[n] = static_cast<int32_t>(slot);
    ++n;
    SiftUp(c, n - 1);
  }
}

void Reservoir::Merge(const Reservoir& other) {
  if (other.c_ != c_ || other.k_ != k_ || other.w_ != w_)
    throw std::runtime_error(
        fmt::format("reservoir merge: shapes differ ([{}, {}, {}] vs [{}, {}, {}])", c_, k_, w_,
                    other.c_, other.k_, other.w_));
  MergeBlock(0, other.a_);
}

void Reservoir::MergeBlock(int64_t c_begin, const Arrays& o) {
  const int64_t m = static_cast<int64_t>(o.n_items.size());
  const size_t mk = Z(m * k_);
  if (c_begin < 0 || c_begin + m > c_ || o.n_seen.size() != Z(m) || o.key.size() != mk ||
      o.row.size() != mk || o.pos.size() != mk || o.tokens.size() != mk * Z(w_) ||
      o.acts.size() != mk * Z(w_))
    throw std::runtime_error(fmt::format(
        "reservoir merge: a block of {} components at {} does not have shape [n, k={}, window={}]",
        m, c_begin, k_, w_));
  for (int64_t j = 0; j < m; ++j) {
    const int64_t c = c_begin + j, n = o.n_items[Z(j)];
    if (n < 0 || n > k_ || o.n_seen[Z(j)] < n)
      throw std::runtime_error(
          fmt::format("reservoir merge: component {} has n_items {} (k {}), n_seen {}", c, n, k_,
                      o.n_seen[Z(j)]));
    a_.n_seen[Z(c)] += o.n_seen[Z(j)];
    for (int64_t s = 0; s < n; ++s) {
      const size_t i = Z(j * k_ + s);
      Offer(c, {o.key[i], o.row[i], o.pos[i]}, o.tokens.data() + i * Z(w_),
            o.acts.data() + i * Z(w_));
    }
  }
}

Reservoir::Arrays Reservoir::Canonical() const {
  Reservoir::Arrays out;
  Reservoir empty(c_, k_, w_);
  out = std::move(empty.a_);
  out.n_items = a_.n_items;
  out.n_seen = a_.n_seen;
  std::vector<int64_t> order;
  for (int64_t c = 0; c < c_; ++c) {
    const int64_t n = a_.n_items[Z(c)];
    order.resize(Z(n));
    for (int64_t s = 0; s < n; ++s) order[Z(s)] = s;
    std::sort(order.begin(), order.end(),
              [&](int64_t x, int64_t y) { return RanksBefore(RankAt(c, x), RankAt(c, y)); });
    for (int64_t s = 0; s < n; ++s) {
      const size_t from = Z(c * k_ + order[Z(s)]), to = Z(c * k_ + s);
      out.key[to] = a_.key[from];
      out.row[to] = a_.row[from];
      out.pos[to] = a_.pos[from];
      std::copy_n(a_.tokens.begin() + static_cast<std::ptrdiff_t>(from * Z(w_)), w_,
                  out.tokens.begin() + static_cast<std::ptrdiff_t>(to * Z(w_)));
      std::copy_n(a_.acts.begin() + static_cast<std::ptrdiff_t>(from * Z(w_)), w_,
                  out.acts.begin() + static_cast<std::ptrdiff_t>(to * Z(w_)));
    }
  }
  return out;
}

// ---- Accumulators ----------------------------------------------------------------------------

Accumulators::Accumulators(const Options& o) : options(o) {
  if (auto p = o.Problems(); !p.empty())
    throw std::runtime_error(fmt::format("harvest options: {}", fmt::join(p, "; ")));
  const size_t C = Z(o.components), V = Z(o.vocab);
  firing_count.assign(C, 0);
  act_sum_post.assign(C, 0.0);
  if (o.pre) act_sum_pre.assign(C, 0.0);
  if (o.cooc) cooc.assign(C * C, 0);
  if (o.input_tokens) {
    in_cooc.assign(C * V, 0);
    in_marg.assign(V, 0);
  }
  if (o.output_tokens) {
    out_cooc.assign(C * V, 0.0);
    out_marg.assign(V, 0.0);
  }
  reservoir = Reservoir(o.components, o.k, o.window());
}

void Accumulators::Merge(const Accumulators& other) {
  const std::string mine = options.ToJson().dump(), theirs = other.options.ToJson().dump();
  if (mine != theirs)
    throw std::runtime_error(
        fmt::format("harvest merge: options differ:\n  {}\n  {}", mine, theirs));
  n_tokens += other.n_tokens;
  n_rows += other.n_rows;
  batches.insert(batches.end(), other.batches.begin(), other.batches.end());
  AddInto(firing_count, other.firing_count);
  AddInto(act_sum_post, other.act_sum_post);
  AddInto(act_sum_pre, other.act_sum_pre);
  AddInto(cooc, other.cooc);
  AddInto(in_cooc, other.in_cooc);
  AddInto(in_marg, other.in_marg);
  AddInto(out_cooc, other.out_cooc);
  AddInto(out_marg, other.out_marg);
  reservoir.Merge(other.reservoir);
}

// ---- Batch update ----------------------------------------------------------------------------

namespace {

// The batch has every array its options need, its panels cover the C components, and every
// token is in the vocabulary (throws std::invalid_argument otherwise).
void CheckBatch(const BatchView& b, const Options& o) {
  const int64_t N = b.rows * o.seq_len;
  const auto panels_ok = [&](const std::vector<Panel>& panels) {
    int64_t width = 0;
    for (const Panel& p : panels) {
      if (!p.data || p.width < 1 || p.stride < p.width) return false;
      width += p.width;
    }
    return width == o.components;
  };
  if (b.rows < 0 || (N > 0 && (!b.tokens || !b.row_ids)) || !panels_ok(b.post) ||
      (o.pre && !panels_ok(b.pre)) || (o.output_tokens && N > 0 && !b.probs))
    throw std::invalid_argument(
        "harvest: the batch lacks an array its options need, or its panels do not cover C");
  for (int64_t n = 0; n < N; ++n)
    if (b.tokens[n] < 0 || b.tokens[n] >= o.vocab)
      throw std::invalid_argument(fmt::format("harvest: batch {} has token {} outside [0, {})",
                                              b.index, b.tokens[n], o.vocab));
}

// Component c's chosen examples of this batch go to the reservoir with their context windows
// (tokens and c's activations, -1 / 0 past a row's ends).
void OfferWindows(const BatchView& b, const float* act, int64_t stride, int64_t c,
                  const std::vector<std::pair<ExampleRank, int64_t>>& candidates,
                  std::vector<int32_t>& window_tokens, std::vector<float>& window_acts,
                  Accumulators& acc) {
  const Options& o = acc.options;
  const int64_t T = o.seq_len;
  for (const auto& [r, n] : candidates) {
    const int64_t row_start = n - r.pos;
    for (int64_t d = -o.context; d <= o.context; ++d) {
      const int64_t t = r.pos + d;
      const size_t at = Z(d + o.context);
      const bool inside = t >= 0 && t < T;
      window_tokens[at] = inside ? b.tokens[row_start + t] : -1;
      window_acts[at] = inside ? act[(row_start + t) * stride] : 0.0f;
    }
    acc.reservoir.Offer(c, r, window_tokens.data(), window_acts.data());
  }
}

}  // namespace

// One batch into the accumulators, in one pass over its activations. The per-component loop
// stays whole: its counts, co-occurrence rows and reservoir candidates share the firing
// bitset walk, the hot loop of a harvest (BENCHMARKS.md §4).
void BatchUpdater::Apply(const BatchView& b, Accumulators& acc) {
  const Options& o = acc.options;
  const int64_t C = o.components, T = o.seq_len, V = o.vocab, N = b.rows * T;
  const int64_t words = (N + 63) / 64, W = o.window();
  const float thr = static_cast<float>(o.threshold);
  CheckBatch(b, o);

  // Sums over every token, and the firing bitsets [C, words].
  bits_.assign(Z(C * words), 0);
  auto pass = FirePass;
#ifdef SEEDGRID_HARVEST_AVX512
  if (simd_ && HasAvx512Bw()) pass = FirePassAvx512;
#endif
  for (int64_t i = 0, off = 0; i < static_cast<int64_t>(b.post.size()); ++i) {
    const Panel& p = b.post[Z(i)];
    pass(p.data, N, p.width, p.stride, thr, words, acc.act_sum_post.data() + off,
         bits_.data() + off * words);
    if (o.pre) {
      const Panel& q = b.pre[Z(i)];
      pass(q.data, N, q.width, q.stride, thr, words, acc.act_sum_pre.data() + off, nullptr);
    }
    off += p.width;
  }
  if (o.input_tokens)
    for (int64_t n = 0; n < N; ++n) ++acc.in_marg[Z(b.tokens[n])];
  if (o.output_tokens) {
    double* marg = acc.out_marg.data();
    for (int64_t n = 0; n < N; ++n) {
      const float* pr = b.probs + n * V;
      for (int64_t v = 0; v < V; ++v) marg[v] += static_cast<double>(pr[v]);
    }
  }

  // Per component: its firing tokens.
  std::vector<int64_t>& active = fired_;  // reused below as the list of components that fired
  active.clear();
  window_tokens_.resize(Z(W));
  window_acts_.resize(Z(W));
  size_t panel = 0;
  int64_t panel_start = 0;  // first component of b.post[panel]
  for (int64_t c = 0; c < C; ++c) {
    while (c >= panel_start + b.post[panel].width) panel_start += b.post[panel++].width;
    // Component c's activation at token n: act[n · stride].
    const float* act = b.post[panel].data + (c - panel_start);
    const int64_t stride = b.post[panel].stride;
    const uint64_t* cb = bits_.data() + c * words;
    int64_t count = 0;
    for (int64_t w = 0; w < words; ++w) count += std::popcount(cb[w]);
    if (count == 0) continue;
    active.push_back(c);
    acc.firing_count[Z(c)] += count;
    acc.reservoir.AddSeen(c, std::min(count, o.per_batch));
    candidates_.clear();
    // Uniform weights: candidates that cannot beat the reservoir's lowest key (later: the
    // batch's per_batch-th best) are skipped before their log.
    uint64_t floor53 = o.weight_by_activation ? 0 : Bits53Floor(acc.reservoir.LowestKey(c));
    // ExampleUniform's hash chain, its (seed, c) and (·, row) links computed once.
    const uint64_t component_hash = Mix(Mix(o.seed) ^ static_cast<uint64_t>(c));
    int64_t row_index = 0, row_end = T;  // the batch row holding token n (no division)
    uint64_t row_hash = Mix(component_hash ^ static_cast<uint64_t>(b.row_ids[0]));
    int64_t* in_row = o.input_tokens ? acc.in_cooc.data() + c * V : nullptr;
    double* out_row = o.output_tokens ? acc.out_cooc.data() + c * V : nullptr;
    for (int64_t w = 0; w < words; ++w) {
      for (uint64_t x = cb[w]; x != 0; x &= x - 1) {
        const int64_t n = w * 64 + std::countr_zero(x);
        if (in_row) ++in_row[b.tokens[n]];
        if (out_row) {
          const float* pr = b.probs + n * V;
          for (int64_t v = 0; v < V; ++v) out_row[v] += static_cast<double>(pr[v]);
        }
        if (n >= row_end) {
          while (n >= row_end) ++row_index, row_end += T;
          row_hash = Mix(component_hash ^ static_cast<uint64_t>(b.row_ids[row_index]));
        }
        const int64_t row = b.row_ids[row_index], pos = n - (row_end - T);
        const uint64_t bits53 = Mix(row_hash ^ static_cast<uint64_t>(pos)) >> 11;
        if (bits53 < floor53) continue;  // cannot beat the lowest key kept so far
        const double u = ToUniform(bits53);
        const double weight = o.weight_by_activation ? static_cast<double>(act[n * stride]) : 1.0;
        const ExampleRank r{std::log(u) / weight, row, static_cast<int32_t>(pos)};
        if (!acc.reservoir.Accepts(c, r)) continue;
        // The batch's best per_batch so far, in rank order (insertion: per_batch is small).
        if (candidates_.size() == Z(o.per_batch)) {
          if (!RanksBefore(r, candidates_.back().first)) continue;
          candidates_.pop_back();
        }
        auto at = candidates_.end();
        while (at != candidates_.begin() && RanksBefore(r, std::prev(at)->first)) --at;
        candidates_.insert(at, {r, n});
        if (candidates_.size() == Z(o.per_batch) && !o.weight_by_activation)
          floor53 = std::max(floor53, Bits53Floor(candidates_.back().first.key));
      }
    }
    OfferWindows(b, act, stride, c, candidates_, window_tokens_, window_acts_, acc);
  }
  if (o.cooc) {
#ifdef SEEDGRID_HARVEST_AVX512
    if (simd_ && HasAvx512Popcount())
      AddCoocAvx512(bits_.data(), words, active, C, acc.cooc.data(), transposed_);
    else
#endif
      AddCooc(bits_.data(), words, active, C, acc.cooc.data());
  }

  acc.n_tokens += N;
  acc.n_rows += b.rows;
  acc.batches.push_back(b.index);
}

// ---- Derived ---------------------------------------------------------------------------------

namespace {

void TopPmi(const Accumulators& acc, int64_t top_k, bool input, std::vector<int32_t>& idx,
            std::vector<double>& val) {
  const Options& o = acc.options;
  const int64_t C = o.components, V = o.vocab;
  idx.assign(Z(C * top_k), -1);
  val.assign(Z(C * top_k), std::numeric_limits<double>::quiet_NaN());
  const double n_tokens = static_cast<double>(acc.n_tokens);
  std::vector<std::pair<double, int32_t>> row;
  for (int64_t c = 0; c < C; ++c) {
    const double count = static_cast<double>(acc.firing_count[Z(c)]);
    if (count == 0) continue;
    row.clear();
    for (int64_t v = 0; v < V; ++v) {
      const double co =
          input ? static_cast<double>(acc.in_cooc[Z(c * V + v)]) : acc.out_cooc[Z(c * V + v)];
      const double marg = input ? static_cast<double>(acc.in_marg[Z(v)]) : acc.out_marg[Z(v)];
      if (co > 0 && marg > 0)
        row.emplace_back(std::log(co * n_tokens / (count * marg)), static_cast<int32_t>(v));
    }
    const size_t keep = std::min(row.size(), Z(top_k));
    std::partial_sort(row.begin(), row.begin() + static_cast<std::ptrdiff_t>(keep), row.end(),
                      [](const auto& a, const auto& b) {
                        return a.first != b.first ? a.first > b.first : a.second < b.second;
                      });
    for (size_t i = 0; i < keep; ++i) {
      idx[Z(c * top_k) + i] = row[i].second;
      val[Z(c * top_k) + i] = row[i].first;
    }
  }
}

}  // namespace

Derived Derive(const Accumulators& acc, int64_t top_k) {
  const Options& o = acc.options;
  Derived d;
  d.top_k = top_k;
  const double n = static_cast<double>(acc.n_tokens);
  const auto per_token = [&](double x) { return acc.n_tokens > 0 ? x / n : 0.0; };
  for (int64_t c = 0; c < o.components; ++c) {
    d.firing_density.push_back(per_token(static_cast<double>(acc.firing_count[Z(c)])));
    d.mean_post.push_back(per_token(acc.act_sum_post[Z(c)]));
    if (o.pre) d.mean_pre.push_back(per_token(acc.act_sum_pre[Z(c)]));
  }
  if (o.input_tokens) TopPmi(acc, top_k, true, d.in_pmi_idx, d.in_pmi_val);
  if (o.output_tokens) TopPmi(acc, top_k, false, d.out_pmi_idx, d.out_pmi_val);
  return d;
}

std::pair<int64_t, int64_t> SliceBatches(int64_t n_batches, int64_t shard, int64_t shards,
                                         int64_t rank, int64_t ranks) {
  if (shards < 1 || shard < 0 || shard >= shards || ranks < 1 || rank < 0 || rank >= ranks)
    throw std::invalid_argument(fmt::format("harvest: shard {} of {}, rank {} of {} is not valid",
                                            shard, shards, rank, ranks));
  const int64_t s0 = n_batches * shard / shards, s1 = n_batches * (shard + 1) / shards;
  const int64_t len = s1 - s0;
  return {s0 + len * rank / ranks, s0 + len * (rank + 1) / ranks};
}

}  // namespace seedgrid::harvest

#include "text/bpe.h"

#include <fmt/format.h>

#include <algorithm>
#include <stdexcept>

#include "text/unicode.h"

namespace seedgrid::text {

namespace {

uint64_t PairKey(int32_t a, int32_t b) {
  return (static_cast<uint64_t>(static_cast<uint32_t>(a)) << 32) | static_cast<uint32_t>(b);
}

}  // namespace

Bpe::Bpe(Vocab vocab, const std::vector<std::pair<std::string, std::string>>& merges,
         Options options)
    : vocab_(std::move(vocab)), options_(std::move(options)) {
  merges_.reserve(merges.size() * 2);
  std::string joined;
  for (size_t rank = 0; rank < merges.size(); ++rank) {
    const auto& [a, b] = merges[rank];
    auto ia = vocab_.find(a), ib = vocab_.find(b);
    joined = a + b;
    auto ij = vocab_.find(joined);
    if (ia == vocab_.end() || ib == vocab_.end() || ij == vocab_.end()) {
      throw std::invalid_argument(fmt::format("merge {} ('{}' '{}'): {} is not in the vocab", rank,
                                              a, b,
                                              ia == vocab_.end()   ? "'" + a + "'"
                                              : ib == vocab_.end() ? "'" + b + "'"
                                                                   : "'" + joined + "'"));
    }
    // A repeated pair keeps its first (best) rank, as HF does.
    merges_.try_emplace(PairKey(ia->second, ib->second),
                        Merge{static_cast<int32_t>(rank), ij->second});
  }
  if (options_.unk_token) {
    auto it = vocab_.find(*options_.unk_token);
    if (it == vocab_.end()) {
      throw std::invalid_argument(
          fmt::format("unk_token '{}' is not in the vocab", *options_.unk_token));
    }
    unk_id_ = it->second;
  }
  for (int b = 0; b < 256; ++b) {
    auto it = vocab_.find(fmt::format("<0x{:02X}>", b));
    byte_ids_[b] = it == vocab_.end() ? -1 : it->second;
  }
}

std::optional<int32_t> Bpe::TokenToId(std::string_view token) const {
  auto it = vocab_.find(token);
  if (it == vocab_.end()) return std::nullopt;
  return it->second;
}

void Bpe::EncodeWord(std::string_view word, std::vector<int32_t>& out) const {
  if (word.empty()) return;
  if (options_.ignore_merges) {
    if (auto it = vocab_.find(word); it != vocab_.end()) {
      out.push_back(it->second);
      return;
    }
  }
  bool cacheable = word.size() <= kMaxCachedBytes;
  if (cacheable) {
    std::lock_guard lock(cache_mu_);
    if (auto it = cache_.find(word); it != cache_.end()) {
      out.insert(out.end(), it->second.begin(), it->second.end());
      return;
    }
  }
  size_t first = out.size();
  MergeWord(word, out);
  if (cacheable) {
    std::lock_guard lock(cache_mu_);
    if (cache_.size() >= kMaxCacheEntries) cache_.clear();
    cache_.emplace(std::string(word), std::vector<int32_t>(out.begin() + first, out.end()));
  }
}

void Bpe::InitialSymbols(std::string_view word, std::vector<int32_t>& ids) const {
  bool last_unk = false;
  for (size_t i = 0; i < word.size();) {
    size_t start = i;
    NextCodePoint(word, i);
    std::string_view ch = word.substr(start, i - start);
    if (auto it = vocab_.find(ch); it != vocab_.end()) {
      ids.push_back(it->second);
      last_unk = false;
      continue;
    }
    if (options_.byte_fallback && std::all_of(ch.begin(), ch.end(), [&](char c) {
          return byte_ids_[static_cast<unsigned char>(c)] >= 0;
        })) {
      for (char c : ch) ids.push_back(byte_ids_[static_cast<unsigned char>(c)]);
      last_unk = false;
      continue;
    }
    if (!unk_id_) {
      throw std::runtime_error(
          fmt::format("character '{}' is not in the vocab and the model has no unk_token", ch));
    }
    if (!(options_.fuse_unk && last_unk)) ids.push_back(*unk_id_);
    last_unk = true;
  }
}

void Bpe::MergeWord(std::string_view word, std::vector<int32_t>& out) const {
  std::vector<int32_t> ids;
  ids.reserve(word.size());
  InitialSymbols(word, ids);
  const int n = static_cast<int>(ids.size());
  if (n < 2) {
    out.insert(out.end(), ids.begin(), ids.end());
    return;
  }
  // Symbols as a linked list over positions; a merged symbol keeps its left position.
  std::vector<int32_t> next(n), prev(n);
  for (int i = 0; i < n; ++i) next[i] = i + 1 < n ? i + 1 : -1, prev[i] = i - 1;
  struct Entry {
    int32_t rank, pos, left, right, id;
  };
  auto later = [](const Entry& a, const Entry& b) {
    return a.rank != b.rank ? a.rank > b.rank : a.pos > b.pos;
  };
  std::vector<Entry> heap;
  auto push = [&](int pos) {
    int nx = next[pos];
    if (nx < 0) return;
    auto it = merges_.find(PairKey(ids[pos], ids[nx]));
    if (it == merges_.end()) return;
    heap.push_back({it->second.rank, pos, ids[pos], ids[nx], it->second.id});
    std::push_heap(heap.begin(), heap.end(), later);
  };
  for (int i = 0; i + 1 < n; ++i) push(i);
  while (!heap.empty()) {
    std::pop_heap(heap.begin(), heap.end(), later);
    Entry e = heap.back();
    heap.pop_back();
    int nx = next[e.pos];
    // Stale: the pair at this position changed since the entry was pushed.
    if (ids[e.pos] != e.left || nx < 0 || ids[nx] != e.right) continue;
    ids[e.pos] = e.id;
    ids[nx] = -1;
    next[e.pos] = next[nx];
    if (next[nx] >= 0) prev[next[nx]] = e.pos;
    if (prev[e.pos] >= 0) push(prev[e.pos]);
    push(e.pos);
  }
  for (int i = 0; i >= 0; i = next[i]) out.push_back(ids[i]);
}

}  // namespace seedgrid::text

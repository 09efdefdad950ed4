// The BPE model of a tokenizer.json ("model": {"type": "BPE"}): ranked merges applied to one
// pre-tokenized word at a time.
//
// A word starts as one symbol per code point (its vocab id; a code point outside the vocab
// becomes its <0xXX> byte tokens under byte_fallback, else the unk token, consecutive unks
// fused under fuse_unk). The merge of lowest rank among adjacent pairs is applied first, the
// leftmost of equal ranks first, through a min-heap whose stale entries are skipped: this is
// the order of HF tokenizers' word.merge_all and of transformers.js, so ids match both.
// ignore_merges (Llama-3) takes a word that is itself in the vocab as one token.
//
// Results are cached per word (words up to kMaxCachedBytes, the cache cleared when it holds
// kMaxCacheEntries); the cache has its own lock, so Encode is safe from several threads.
#pragma once

#include <array>
#include <cstdint>
#include <mutex>
#include <optional>
#include <string>
#include <string_view>
#include <unordered_map>
#include <vector>

namespace seedgrid::text {

// Hash for unordered_map<std::string, ...> lookups by string_view without a copy.
struct StringHash {
  using is_transparent = void;
  size_t operator()(std::string_view s) const { return std::hash<std::string_view>{}(s); }
};
using Vocab = std::unordered_map<std::string, int32_t, StringHash, std::equal_to<>>;

class Bpe {
 public:
  struct Options {
    std::optional<std::string> unk_token;
    bool byte_fallback = false;
    bool fuse_unk = false;
    bool ignore_merges = false;
  };
  static constexpr size_t kMaxCachedBytes = 256;
  static constexpr size_t kMaxCacheEntries = 1 << 18;

  // merges: pairs of vocab tokens in rank order. Throws std::invalid_argument for a merge whose
  // parts or result are not in the vocab, or an unk_token that is not.
  Bpe(Vocab vocab, const std::vector<std::pair<std::string, std::string>>& merges, Options options);

  // Appends the ids of one word to out. Throws std::runtime_error for a character that has no
  // id (not in the vocab, no byte fallback, no unk token).
  void EncodeWord(std::string_view word, std::vector<int32_t>& out) const;

  std::optional<int32_t> TokenToId(std::string_view token) const;
  const Vocab& vocab() const { return vocab_; }

 private:
  struct Merge {
    int32_t rank;
    int32_t id;
  };
  void MergeWord(std::string_view word, std::vector<int32_t>& out) const;
  void InitialSymbols(std::string_view word, std::vector<int32_t>& ids) const;

  Vocab vocab_;
  std::unordered_map<uint64_t, Merge> merges_;
  Options options_;
  std::optional<int32_t> unk_id_;
  std::array<int32_t, 256> byte_ids_{};  // <0xXX> ids, -1 where absent

  mutable std::mutex cache_mu_;
  mutable std::unordered_map<std::string, std::vector<int32_t>, StringHash, std::equal_to<>> cache_;
};

}  // namespace seedgrid::text

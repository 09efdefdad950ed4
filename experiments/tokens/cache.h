// The token cache (issue 17, docs/data.md "The token cache"): text tokenized once per
// (data files' digest, tokenizer, template, max_len, truncation) into the file of a `tokens`
// shard, which every shard reading that text needs. The planner adds the shard (core/spec.h:
// a shard whose params.data.source is "text" needs one); the same text named by several
// stages, configs or seeds is one shard, because its id hashes only what tokenization reads
// (TokenCacheParams). No LibTorch.
//
// Writing streams: rows are read one at a time (data::ForEachCell), encoded, and appended to
// chunked HDF5 datasets with an unlimited dimension, a bounded buffer at a time, so a writer's
// memory does not grow with the corpus. The datasets are written through a second handle on
// the shard's own file (HDF5 shares one open file between handles of one process), because the
// store's H5Writer writes whole arrays only; the caller's H5Writer adds the attributes and
// publishes the file as it does every shard's.
//
// Reading: the consumers (pretrain's text corpus, lora_steer's text splits, harvest's corpus,
// head ablation's corpus) call CorpusTokens / ReadTokenSplit on the needed tokens shard and check
// its data digest against their own data.digest, so ids are bit-identical to tokenizing the files
// themselves (tokens_test checks it).
#pragma once

#include <cstdint>
#include <functional>
#include <string>
#include <vector>

#include "core/shard_key.h"
#include "core/types.h"

namespace seedgrid::data {

// The params of the tokens shard a consumer's `data` params need: {"format": "corpus" | "steer",
// "data": the keys tokenization reads}, or null when `data` reads no text (source is not
// "text") or names no text file the cache knows (a corpus: `path`; steer: `train`/`eval`).
// Keys it leaves out (answers, synthetic sizes, the consumer's own options) do not split the
// cache.
Json TokenCacheParams(const Json& data);

// Rows appended to split `split` of the open shard file `file` (tokens/<split>/...), buffered
// and flushed to the chunked datasets every `flush_tokens` ids. Close() flushes and closes;
// the destructor closes without flushing and never throws.
class SplitWriter {
 public:
  SplitWriter(const std::string& file, const std::string& split, bool prompt_len, bool label,
              size_t flush_tokens = 1 << 20);
  ~SplitWriter();
  SplitWriter(const SplitWriter&) = delete;
  SplitWriter& operator=(const SplitWriter&) = delete;
  void Append(const std::vector<int32_t>& ids, int64_t line, int64_t prompt_len = 0,
              int64_t label = 0);
  void Close();
  int64_t rows() const { return rows_; }
  int64_t tokens() const { return tokens_; }

 private:
  struct Impl;
  void Flush();
  Impl* impl_ = nullptr;
  int64_t rows_ = 0, tokens_ = 0;
};

// One split read back whole (what a consumer trains or evaluates on).
struct TokenSplit {
  std::vector<int32_t> ids;
  std::vector<int64_t> offsets, line, prompt_len, label;  // prompt_len, label: when stored
  int64_t rows() const { return static_cast<int64_t>(line.size()); }
  std::vector<int32_t> Row(int64_t r) const;
};
// Throws StoreError naming the file when the split or one of its datasets is missing, or when
// the offsets do not match the ids.
TokenSplit ReadTokenSplit(const std::string& file, const std::string& split);

// What a tokens shard wrote, for its metrics.
struct CacheStats {
  int64_t rows = 0, tokens = 0, bytes = 0;
};
// Progress of a long tokenization: bytes read of the total.
using CacheProgress = std::function<void(int64_t bytes, int64_t total)>;

// Tokenizes the text that `params` (TokenCacheParams' form; `data_dir` resolves relative
// paths) names into `file`, an HDF5 file open in the caller's H5Writer, and returns what it
// wrote. The attributes of the group "tokens" are the caller's (TokenCacheAttributes).
CacheStats WriteTokenCache(const std::string& file, const Json& params, const std::string& data_dir,
                           const CacheProgress& progress);
// The attributes the group "tokens" gets (tokens_layout): format, data digest, tokenizer
// digest, template, data params.
std::vector<std::pair<std::string, std::string>> TokenCacheAttributes(const Json& params,
                                                                      const std::string& data_dir);

// The tokens shard among a shard's inputs made from `data` (a consumer's data params): the one
// whose data digest is data.digest. Throws std::runtime_error saying what the inputs hold.
const ShardInput& TokenCacheInput(const std::vector<ShardInput>& inputs, const Json& data);

// A text corpus's token stream from the cache: every row's ids (data::CorpusRowIds) in order,
// exactly TokenizeCorpus of the same file (what pretrain, harvest and head ablation call).
std::vector<int32_t> CorpusTokens(const std::vector<ShardInput>& inputs, const Json& data);

}  // namespace seedgrid::data

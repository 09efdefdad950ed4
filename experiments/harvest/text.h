// harvest over a text corpus (data.source: text; docs/harvest.md "Text corpora"): the corpus as
// token windows, and reservoir examples decoded back to text. No LibTorch.
//
// The corpus's ids come from the token cache (experiments/tokens/cache.h, docs/data.md "The token
// cache"): the tokens shard the planner adds to every shard with data.source text holds them,
// one stream exactly as pretrain reads it (data::CorpusTokens = data::TokenizeCorpus of the
// file: every row's `column` cell plus a newline, the tokenizer's specials added), and the
// harvest cuts it into consecutive windows of data.window tokens; the last partial window is
// dropped. Window i is row i of the harvest, so map/reduce shards split windows exactly as they
// split the rows of a token file, and every map reads the one cache instead of tokenizing.
//
// Decoded examples: each reservoir example's window tokens [pos − context, pos + context] (ids
// −1 outside the row skipped) decode to three strings: the text before the firing token, the
// firing token, the text after, with prefix + token + suffix the window's decoded text. A firing
// token that is part of a character (one byte of "é" in a byte-level vocab) widens to the tokens
// of the whole character (up to 3 each side); a decoder whose cuts never decode apart cleanly
// (Metaspace's leading space) gets each part decoded on its own. Decode output is UTF-8 (bytes
// of a character cut at the window's edge are U+FFFD, text::Utf8Lossy).
#pragma once

#include <cstdint>
#include <span>
#include <string>
#include <vector>

#include "core/shard_key.h"
#include "core/store.h"
#include "core/types.h"
#include "experiments/harvest/accumulator.h"

namespace seedgrid::text {
class Tokenizer;
}

namespace seedgrid::harvest {

// Is data.source text?
bool IsTextSource(const Json& params);
// data.path and data.tokenizer made absolute against `data_dir` (set at plan time).
std::string CorpusPath(const Json& params);
std::string CorpusTokenizerDir(const Json& params);

// The whole corpus as one token stream, read from the token cache among `inputs` (the shard's
// needed shards) whose data digest is data.digest. Throws std::runtime_error when none is.
std::vector<int32_t> HarvestCorpusTokens(const Json& params, const std::vector<ShardInput>& inputs);

// Throws std::runtime_error naming the tokenizer when an id is outside [0, vocab).
void CheckCorpusVocab(const std::vector<int32_t>& stream, int64_t vocab, const Json& params);

// One decoded example (see above).
struct DecodedExample {
  std::string prefix, token, suffix;
};
// `window`: 2·context + 1 ids centred on the firing token, −1 where the row has none.
DecodedExample DecodeExample(const text::Tokenizer& tok, std::span<const int32_t> window,
                             int64_t context);

// Writes reservoir/text_prefix, reservoir/text_token, reservoir/text_suffix (strings, C·K, row-
// major [C, K]; "" for empty slots) for the canonical reservoir, and the eval set reference:
// group eval with attrs data_digest, data_path, data_column, data_tokenizer, data_window and the
// dataset eval/windows (int64, every window index this file folded in, ascending).
// The window length is options.seq_len. `finished` (single and reduce files, the derived
// statistics written): also the root attribute seedgrid_examples that makes `seedgrid report`
// show the examples of the most often firing components (coordinator/report/examples.h).
void WriteTextExamples(H5Writer& w, const Accumulators& acc, const Json& params,
                       const text::Tokenizer& tok, bool finished);
// The window indices of `acc`'s batches (rows [b·batch_rows, ...) of each, the global last batch
// cut at the harvest's end), ascending.
std::vector<int64_t> HarvestedWindows(const Accumulators& acc);

}  // namespace seedgrid::harvest

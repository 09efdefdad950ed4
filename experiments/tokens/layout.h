// What a `tokens` shard file holds (docs/data.md, "The token cache"). One group per split under
// "tokens/": a corpus has the split "corpus"; a lora_steer text source "train_pos", "train_neg",
// "eval" and "neutral". Row r of a split is ids[offsets[r]:offsets[r+1]].
#pragma once

namespace seedgrid::tokens_layout {

inline constexpr char kGroup[] = "tokens";
// Per split, under tokens/<split>/:
inline constexpr char kIds[] = "ids";               // [n_tokens] int32, chunked, appended
inline constexpr char kOffsets[] = "offsets";       // [rows + 1] int64
inline constexpr char kLine[] = "line";             // [rows] int64: 1-based line in the file
inline constexpr char kPromptLen[] = "prompt_len";  // [rows] int64 (train_pos, train_neg)
inline constexpr char kLabel[] = "label";           // [rows] int64 ±1 (eval)
// Attributes of the group "tokens":
inline constexpr char kAttrFormat[] = "format";                     // corpus | steer
inline constexpr char kAttrDataDigest[] = "data_digest";            // the consumers' data.digest
inline constexpr char kAttrTokenizerDigest[] = "tokenizer_digest";  // SHA-256 of its files
inline constexpr char kAttrTemplate[] = "template";                 // JSON ("" for a corpus)
inline constexpr char kAttrParams[] = "data";                       // the data params, JSON
// Metrics:
inline constexpr char kRows[] = "rows";
inline constexpr char kTokens[] = "tokens";
inline constexpr char kBytes[] = "bytes";

inline constexpr char kCorpus[] = "corpus";
inline constexpr char kTrainPos[] = "train_pos";
inline constexpr char kTrainNeg[] = "train_neg";
inline constexpr char kEval[] = "eval";
inline constexpr char kNeutral[] = "neutral";

}  // namespace seedgrid::tokens_layout

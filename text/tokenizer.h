// A text tokenizer loaded from a Hugging Face tokenizer directory: tokenizer.json (+ the
// optional tokenizer_config.json), or GPT-2's original vocab.json/encoder.json + merges.txt/
// vocab.bpe pair, which loads as the equivalent byte-level tokenizer.json.
//
// Supported: the BPE model (byte-level as GPT-2, GPT-NeoX, Llama-3, Qwen2/3; SentencePiece-style
// with byte fallback as Llama-2, Mistral, Gemma), the normalizers, pre-tokenizers,
// post-processors and decoders in text/components.h, and added tokens. docs/tokenizers.md has the
// list and the limits.
//
// Encode, as HF tokenizers and transformers.js do it:
//   1. added tokens with normalized: false (special or not) are cut out of the raw text first,
//      leftmost-longest, their lstrip/rstrip flags eating the whitespace beside them;
//   2. each remaining section is normalized, cut again at the normalized: true added tokens,
//      and the rest pre-tokenized into words, each word BPE'd;
//   3. with add_special, the post-processor's tokens go around the whole (e.g. Llama's <s>).
// Decode maps ids to tokens (skip_special drops the special ones) and runs the decoder; it
// never applies clean_up_tokenization_spaces, so decode(encode(s)) gives back the normalized s.
//
// Thread safety: a loaded Tokenizer is immutable but for its BPE cache, which has its own lock.
#pragma once

#include <cstdint>
#include <filesystem>
#include <memory>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "text/components.h"

namespace seedgrid::text {

class Tokenizer {
 public:
  // Throws TokenizerError naming the file and the JSON path of what it cannot use.
  static Tokenizer FromDirectory(const std::filesystem::path& dir);
  // From the texts of tokenizer.json and tokenizer_config.json (empty: none).
  static Tokenizer FromJsonText(std::string_view tokenizer_json, std::string_view config_json = {},
                                const std::string& origin = "tokenizer.json");

  Tokenizer(Tokenizer&&) noexcept;
  Tokenizer& operator=(Tokenizer&&) noexcept;
  ~Tokenizer();

  // text must be valid UTF-8 (std::invalid_argument otherwise, with the byte offset).
  std::vector<int32_t> Encode(std::string_view text, bool add_special = true) const;
  // Throws std::out_of_range for an id outside the vocab.
  std::string Decode(std::span<const int32_t> ids, bool skip_special = false) const;

  std::optional<int32_t> TokenToId(std::string_view token) const;
  // The token string of an id (std::out_of_range outside the vocab).
  const std::string& IdToToken(int32_t id) const;
  size_t VocabSize() const;
  bool IsSpecial(int32_t id) const;

 private:
  struct Impl;
  explicit Tokenizer(std::unique_ptr<Impl> impl);
  std::unique_ptr<Impl> impl_;
};

}  // namespace seedgrid::text

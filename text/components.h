// The pieces of a tokenizer.json pipeline around the model, built from their JSON:
//   normalizer      string -> string           (NFC, NFKC, Replace, Prepend, Sequence, ...)
//   pre_tokenizer   section -> words           (Split with Oniguruma patterns, ByteLevel,
//                                               Metaspace, Digits, Whitespace, Sequence, ...)
//   post_processor  ids -> [prefix] ids [suffix] (TemplateProcessing, ByteLevel, Roberta/Bert)
//   decoder         tokens -> text pieces      (ByteLevel, ByteFallback, Fuse, Strip, ...)
// Semantics follow HF tokenizers (split behaviours included); where transformers.js differs on
// an option the files in use do not set, HF wins. An unknown type or option value is an error
// that names where it is in the file and what is supported.
#pragma once

#include <nlohmann/json_fwd.hpp>

#include <cstdint>
#include <functional>
#include <memory>
#include <optional>
#include <stdexcept>
#include <string>
#include <string_view>
#include <unordered_set>
#include <utility>
#include <vector>

#include "text/regex.h"

namespace seedgrid::text {

// A tokenizer file that cannot be used: what and where (a JSON path in the file).
class TokenizerError : public std::runtime_error {
 public:
  using std::runtime_error::runtime_error;
};

// HF's {"String": "..."} (a literal) or {"Regex": "..."} (Oniguruma).
class Pattern {
 public:
  Pattern(const nlohmann::json& j, const std::string& where);
  std::vector<std::pair<size_t, size_t>> FindAll(std::string_view s) const;
  std::string ReplaceAll(std::string_view s, std::string_view with) const;

 private:
  std::string literal_;
  std::unique_ptr<Regex> regex_;
};

class Normalizer {
 public:
  virtual ~Normalizer() = default;
  virtual std::string Apply(std::string s) const = 0;
};
// nullptr for a JSON null.
std::unique_ptr<Normalizer> MakeNormalizer(const nlohmann::json& j, const std::string& where);

class PreTokenizer {
 public:
  virtual ~PreTokenizer() = default;
  // Splits/rewrites the words of one section; section_index counts the sections of the input
  // after added-token extraction (0: the text starts with this section).
  virtual void Apply(std::vector<std::string>& words, size_t section_index) const = 0;
};
std::unique_ptr<PreTokenizer> MakePreTokenizer(const nlohmann::json& j, const std::string& where);

class Decoder {
 public:
  virtual ~Decoder() = default;
  virtual void Apply(std::vector<std::string>& tokens) const = 0;
};
// added: the contents of the added tokens, which a ByteLevel decoder passes through as text.
std::unique_ptr<Decoder> MakeDecoder(const nlohmann::json& j, const std::string& where,
                                     const std::unordered_set<std::string>* added);

// What the post-processor puts around a single sequence when special tokens are added.
struct SpecialFrame {
  std::vector<int32_t> prefix;
  std::vector<int32_t> suffix;
};
using TokenLookup = std::function<std::optional<int32_t>(const std::string&)>;
SpecialFrame MakePostProcessor(const nlohmann::json& j, const std::string& where,
                               const TokenLookup& lookup);

// HF's Split behaviours over the matches of a pattern (exposed for the unit tests).
enum class SplitBehavior { kRemoved, kIsolated, kMergedWithPrevious, kMergedWithNext, kContiguous };
std::vector<std::string> SplitBy(std::string_view s,
                                 const std::vector<std::pair<size_t, size_t>>& matches,
                                 SplitBehavior behavior, bool invert);

}  // namespace seedgrid::text

// A compiled Oniguruma pattern (the engine HF tokenizers uses, so Split patterns mean exactly
// what they mean there: Ruby syntax, \p{L}, (?i:...), lookahead). Immutable after
// construction; FindAll may be called from several threads at once.
#pragma once

#include <string>
#include <string_view>
#include <utility>
#include <vector>

namespace seedgrid::text {

class Regex {
 public:
  // Throws std::invalid_argument with Oniguruma's message when the pattern does not compile.
  explicit Regex(std::string_view pattern);
  ~Regex();
  Regex(const Regex&) = delete;
  Regex& operator=(const Regex&) = delete;

  // The [begin, end) byte spans of the non-overlapping, non-empty matches in s, left to right.
  std::vector<std::pair<size_t, size_t>> FindAll(std::string_view s) const;

  const std::string& pattern() const { return pattern_; }

 private:
  std::string pattern_;
  void* regex_ = nullptr;  // OnigRegex (kept out of this header)
};

}  // namespace seedgrid::text

// UTF-8 and Unicode helpers for the tokenizers: code point iteration, the lossy decoding that a
// byte-level or byte-fallback decoder needs (TextDecoder's rule: each maximal invalid subpart
// becomes one U+FFFD, so decode output is always valid UTF-8), normalization forms through
// utf8proc, and GPT-2's byte <-> printable-character map.
#pragma once

#include <array>
#include <cstdint>
#include <string>
#include <string_view>

namespace seedgrid::text {

// Bytes in the UTF-8 sequence that starts with lead byte `b` (1 for a stray byte).
inline int Utf8SeqLen(unsigned char b) {
  if (b < 0x80) return 1;
  if ((b & 0xE0) == 0xC0) return 2;
  if ((b & 0xF0) == 0xE0) return 3;
  if ((b & 0xF8) == 0xF0) return 4;
  return 1;
}

// The code point at s[i] (s must be valid UTF-8); advances i past it.
char32_t NextCodePoint(std::string_view s, size_t& i);
void AppendUtf8(std::string& out, char32_t cp);

// The first invalid byte offset of s, or npos when s is valid UTF-8.
size_t FindInvalidUtf8(std::string_view s);
// s with each maximal invalid subpart replaced by U+FFFD (WHATWG / TextDecoder semantics).
std::string Utf8Lossy(std::string_view s);

enum class NormForm { kNFC, kNFD, kNFKC, kNFKD };
std::string Normalize(std::string_view s, NormForm form);
// Full-string lowercase by code point (utf8proc's simple case mapping).
std::string Lowercase(std::string_view s);
// Removes nonspacing marks (category Mn), as HF's StripAccents after an NFD.
std::string StripMarks(std::string_view s);

// Whitespace as JavaScript's String.prototype.trim and HF's char::is_whitespace agree on it.
bool IsSpace(char32_t cp);
std::string_view TrimStart(std::string_view s);
std::string_view TrimEnd(std::string_view s);

// GPT-2's byte-level alphabet: byte -> the UTF-8 of its printable stand-in character.
const std::array<std::string, 256>& ByteToUnicode();
// The byte a stand-in character encodes, or -1 for a character outside the alphabet.
int UnicodeToByte(char32_t cp);

}  // namespace seedgrid::text

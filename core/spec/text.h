// Small string helpers of the spec parser (internal to core/spec/: not included outside core/).
// Kept together in this one file so that replacing them by a shared strings helper is one edit.
#pragma once

#include <string>
#include <string_view>
#include <vector>

namespace seedgrid::spec_detail {

inline constexpr const char* kDigits = "0123456789";

std::string Join(const std::vector<std::string>& v, std::string_view sep = ", ");
std::vector<std::string> Split(std::string_view s, char sep);
std::string_view Trim(std::string_view s);  // ASCII whitespace off both ends

// s is non-empty and every byte of it is in `set`.
bool AllOf(std::string_view s, const char* set);

// core/strings.h's, for the parser's code that sees spec_detail's Join and Trim first.
std::string Suggest(std::string_view word, const std::vector<std::string>& accepted);

}  // namespace seedgrid::spec_detail

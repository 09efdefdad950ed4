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

size_t EditDistance(std::string_view a, std::string_view b);
// "; did you mean 'x'?" for a near miss (edit distance under 3), else "".
std::string Suggest(std::string_view word, const std::vector<std::string>& accepted);

}  // namespace seedgrid::spec_detail

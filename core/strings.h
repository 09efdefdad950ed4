// Small string and environment helpers every folder needs, written once. Nothing here
// allocates more than its result; none of it throws except std::bad_alloc.
#pragma once

#include <string>
#include <string_view>
#include <vector>

namespace seedgrid {

// "a, b, c" (with sep ", "); empty for no parts.
std::string Join(const std::vector<std::string>& parts, std::string_view sep);

// `s` without leading and trailing ASCII white space (space, \t, \n, \v, \f, \r).
std::string_view Trim(std::string_view s);

// The environment variable `name`, or "" when it is unset (an empty value reads the same:
// every caller treats the two alike).
std::string Env(const char* name);

// The environment variable `name` as a decimal integer; `def` when it is unset, empty or not
// a whole number.
int EnvInt(const char* name, int def);

// Levenshtein distance (bytes).
size_t EditDistance(std::string_view a, std::string_view b);
// "; did you mean 'x'?" for the nearest of `accepted` within edit distance 2, else "": what the
// spec parser says of an unknown key and the command line of an unknown command or flag.
std::string Suggest(std::string_view word, const std::vector<std::string>& accepted);

}  // namespace seedgrid

// Units of a spec's resources: durations (timeout) and memory sizes (memory).
#include <algorithm>
#include <cctype>
#include <charconv>
#include <cmath>
#include <iterator>
#include <optional>
#include <stdexcept>

#include <fmt/format.h>

#include "core/spec.h"
#include "core/spec/text.h"

namespace seedgrid {

using spec_detail::Trim;

namespace {

// A leading non-negative decimal number ("1", "1.5", ".5"); advances s past it.
std::optional<double> TakeNumber(std::string_view& s) {
  if (s.empty() || !(std::isdigit(static_cast<unsigned char>(s[0])) || s[0] == '.')) {
    return std::nullopt;
  }
  size_t i = 0;
  while (i < s.size() && (std::isdigit(static_cast<unsigned char>(s[i])) || s[i] == '.')) ++i;
  double v = 0;
  auto r = std::from_chars(s.data(), s.data() + i, v, std::chars_format::fixed);
  if (r.ec != std::errc() || r.ptr != s.data() + i || !std::isfinite(v)) return std::nullopt;
  s.remove_prefix(i);
  return v;
}

}  // namespace

double ParseDuration(std::string_view text) {
  static const std::pair<std::string_view, double> kUnits[] = {
      {"d", 86400}, {"h", 3600}, {"m", 60}, {"s", 1}, {"ms", 0.001}};
  auto bad = [&] {
    return std::invalid_argument(fmt::format(
        "bad duration '{}': expected seconds or e.g. 90s, 10m, 1h30m, 2h, 500ms", text));
  };
  std::string_view s = Trim(text);
  if (s.empty()) throw bad();
  double total = 0;
  size_t last = 0;  // units must go from large to small, each once
  bool first = true;
  while (!s.empty()) {
    auto v = TakeNumber(s);
    if (!v) throw bad();
    size_t u = 0;
    while (u < s.size() && std::isalpha(static_cast<unsigned char>(s[u]))) ++u;
    std::string_view unit = s.substr(0, u);
    s.remove_prefix(u);
    if (unit.empty()) {
      if (!first || !s.empty()) throw bad();
      return *v;
    }
    size_t k = 0;
    while (k < std::size(kUnits) && kUnits[k].first != unit) ++k;
    if (k == std::size(kUnits) || (!first && k <= last)) throw bad();
    total += *v * kUnits[k].second;
    last = k;
    first = false;
  }
  return total;
}

int64_t ParseMemoryMb(std::string_view text) {
  auto bad = [&] {
    return std::invalid_argument(
        fmt::format("bad memory size '{}': expected MiB or e.g. 512M, 2G, 1.5G", text));
  };
  std::string_view s = Trim(text);
  auto v = TakeNumber(s);
  if (!v) throw bad();
  std::string unit(Trim(s));
  std::transform(unit.begin(), unit.end(), unit.begin(), ::tolower);
  if (unit.size() > 1 && (unit.ends_with("ib") || unit.ends_with("b"))) {
    unit.resize(unit.size() - (unit.ends_with("ib") ? 2 : 1));
  } else if (unit.size() == 2 && unit[1] == 'i') {
    unit.resize(1);
  }
  double factor;
  if (unit.empty() || unit == "m") {
    factor = 1;
  } else if (unit == "k") {
    factor = 1.0 / 1024;
  } else if (unit == "g") {
    factor = 1024;
  } else if (unit == "t") {
    factor = 1024.0 * 1024;
  } else {
    throw bad();
  }
  double mb = std::ceil(*v * factor);
  if (!(mb >= 0) || mb > 9e15) throw bad();
  return static_cast<int64_t>(mb);
}

}  // namespace seedgrid

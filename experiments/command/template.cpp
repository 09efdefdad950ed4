#include "experiments/command/template.h"

#include <algorithm>
#include <stdexcept>

#include <fmt/format.h>

#include "core/strings.h"

namespace seedgrid::command {
namespace {

bool NameChar(char c) {
  return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '_' ||
         c == '-' || c == '.';
}

// Walks `text`, calling literal(piece) and name(placeholder) in order.
template <class Literal, class Name>
void Scan(const std::string& text, Literal&& literal, Name&& name) {
  size_t i = 0;
  while (i < text.size()) {
    const char c = text[i];
    if (c == '}') {
      if (i + 1 < text.size() && text[i + 1] == '}') {
        literal("}");
        i += 2;
        continue;
      }
      throw std::invalid_argument(
          fmt::format("'}}' without '{{' at column {} (write '}}}}' for a literal brace)", i + 1));
    }
    if (c != '{') {
      size_t next = text.find_first_of("{}", i);
      if (next == std::string::npos) next = text.size();
      literal(text.substr(i, next - i));
      i = next;
      continue;
    }
    if (i + 1 < text.size() && text[i + 1] == '{') {
      literal("{");
      i += 2;
      continue;
    }
    const size_t close = text.find('}', i + 1);
    if (close == std::string::npos) {
      throw std::invalid_argument(
          fmt::format("unclosed '{{' at column {} (write '{{{{' for a literal brace)", i + 1));
    }
    const std::string n = text.substr(i + 1, close - i - 1);
    if (n.empty() || !std::all_of(n.begin(), n.end(), NameChar)) {
      throw std::invalid_argument(fmt::format(
          "'{{{}}}' at column {} is not a placeholder name (letters, digits, _ - .)", n, i + 1));
    }
    name(n);
    i = close + 1;
  }
}

std::vector<std::string> Split(const std::string& s, char sep) {
  std::vector<std::string> out;
  size_t start = 0;
  for (;;) {
    size_t at = s.find(sep, start);
    out.push_back(s.substr(start, at == std::string::npos ? std::string::npos : at - start));
    if (at == std::string::npos) return out;
    start = at + 1;
  }
}

const Json* Find(const Json& params, const std::string& dotted) {
  const Json* cur = &params;
  for (const auto& seg : Split(dotted, '.')) {
    if (!cur->is_object()) return nullptr;
    auto it = cur->find(seg);
    if (it == cur->end()) return nullptr;
    cur = &*it;
  }
  return cur;
}

}  // namespace

const std::vector<std::string>& RuntimeNames() {
  static const std::vector<std::string> names = {"seed",    "shard_id", "out",   "checkpoint",
                                                 "attempt", "sweep",    "stage", "params"};
  return names;
}

std::vector<std::string> PlaceholderNames(const std::string& text) {
  std::vector<std::string> names;
  Scan(
      text, [](const std::string&) {}, [&](const std::string& n) { names.push_back(n); });
  return names;
}

std::vector<std::string> CheckTemplate(const std::string& text, const Json& params,
                                       const std::vector<std::string>& axis_keys,
                                       const std::vector<std::string>& needs) {
  std::vector<std::string> problems;
  std::vector<std::string> names;
  try {
    names = PlaceholderNames(text);
  } catch (const std::invalid_argument& e) {
    return {e.what()};
  }
  for (const auto& n : names) {
    if (std::count(RuntimeNames().begin(), RuntimeNames().end(), n)) continue;
    if (Find(params, n)) continue;
    bool axis = false;
    for (const auto& k : axis_keys) axis = axis || n == k || n.rfind(k + ".", 0) == 0;
    if (axis) continue;
    if (n.rfind("needs.", 0) == 0) {
      auto parts = Split(n, '.');
      if (parts.size() == 3 && (parts[2] == "dir" || parts[2] == "h5")) {
        if (std::count(needs.begin(), needs.end(), parts[1])) continue;
        problems.push_back(
            fmt::format("placeholder '{{{}}}': the stage does not need '{}' (needs: {})", n,
                        parts[1], needs.empty() ? "none" : Join(needs, ", ")));
        continue;
      }
      problems.push_back(fmt::format(
          "placeholder '{{{}}}': write {{needs.<stage>.dir}} or {{needs.<stage>.h5}}", n));
      continue;
    }
    problems.push_back(
        fmt::format("unknown placeholder '{{{}}}' (a param's dotted key, an axis, {}, or "
                    "needs.<stage>.dir / needs.<stage>.h5; '{{{{' for a literal brace)",
                    n, Join(RuntimeNames(), ", ")));
  }
  return problems;
}

std::string ExpandTemplate(
    const std::string& text,
    const std::function<std::optional<std::string>(const std::string&)>& lookup) {
  std::string out;
  Scan(
      text, [&](const std::string& piece) { out += piece; },
      [&](const std::string& n) {
        auto v = lookup(n);
        if (!v) throw std::invalid_argument(fmt::format("unknown placeholder '{{{}}}'", n));
        out += *v;
      });
  return out;
}

std::optional<std::string> ParamText(const Json& params, const std::string& dotted) {
  const Json* v = Find(params, dotted);
  if (!v) return std::nullopt;
  if (v->is_string()) return v->get<std::string>();
  return v->dump(-1, ' ', false, Json::error_handler_t::replace);
}

}  // namespace seedgrid::command

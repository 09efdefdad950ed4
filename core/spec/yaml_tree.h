// The located YAML tree the spec parser works on, and scalar typing (internal to core/spec/).
//
// yaml-cpp's tree forgets where an override put a value and shares aliased nodes; this one is a
// copy that keeps key order, each node's line or override, and is built only after the alias and
// depth limits are checked (LoadTree). Scalars are typed by the YAML 1.2 core schema (Resolve):
// yaml-cpp's own conversions accept more than a spec should ("0x" floats, "yes").
#pragma once

#include <algorithm>
#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include <fmt/format.h>

#include "core/types.h"

namespace seedgrid::spec_detail {

struct Loc {
  int line = 0;           // 1-based line in the spec file
  int override_idx = -1;  // index into the overrides when the node came from one
};

struct Entry;
struct Node {
  enum class Type { kNull, kScalar, kSeq, kMap };
  Type type = Type::kNull;
  std::string text;  // scalar text
  std::string tag;   // yaml-cpp: "?" plain, "!" quoted, else an explicit tag
  std::vector<Node> seq;
  std::vector<Entry> map;
  Loc loc;

  bool Is(Type t) const { return type == t; }
  const Node* Get(std::string_view key) const;
  const Entry* GetEntry(std::string_view key) const;
  Entry* Find(std::string_view key);
};

struct Entry {
  std::string key;
  Loc key_loc;
  Node value;
};

// ---- UTF-8: every key and scalar must be valid (JSON, HDF5 attributes and SQLite get them) ----

// Offset of the first byte that does not start a valid UTF-8 sequence (overlong forms,
// surrogates and code points past U+10FFFF included), or npos.
size_t InvalidUtf8At(std::string_view s);
// s with every byte that is not valid UTF-8 written as \xNN: safe to print and to put in JSON.
std::string Utf8Escaped(std::string_view s);

// Every problem found, each with where it is; thrown at the end as one SpecError.
class Problems {
 public:
  Problems(std::string file, const std::vector<std::string>& overrides)
      : file_(std::move(file)), overrides_(overrides) {}

  void Add(const Loc& loc, std::string message) { items_.push_back({loc, std::move(message)}); }
  bool empty() const { return items_.empty(); }
  size_t size() const { return items_.size(); }

  std::string Where(const Loc& loc) const {
    if (loc.override_idx >= 0) {
      return fmt::format("override '{}'", Utf8Escaped(overrides_[loc.override_idx]));
    }
    return fmt::format("{}:{}", file_, loc.line);
  }

  [[noreturn]] void Throw() {
    std::stable_sort(items_.begin(), items_.end(), [](const auto& a, const auto& b) {
      return std::pair(a.first.override_idx, a.first.line) <
             std::pair(b.first.override_idx, b.first.line);
    });
    std::vector<std::string> out;
    for (const auto& [loc, message] : items_) {
      std::string s = Where(loc) + ": " + message;
      if (std::find(out.begin(), out.end(), s) == out.end()) out.push_back(std::move(s));
    }
    throw SpecError(std::move(out));
  }

 private:
  std::string file_;
  const std::vector<std::string>& overrides_;
  std::vector<std::pair<Loc, std::string>> items_;
};

// YAML text -> located tree, within the limits on aliases and nesting (yaml_tree.cpp). On a
// problem: adds it (at `where` when given, an override's location, else at the line yaml-cpp or
// the measure names) and returns nullopt.
std::optional<Node> LoadTree(const std::string& text, std::optional<Loc> where, Problems& p);
// Marks n and everything under it as coming from override `override_idx`.
void SetOrigin(Node& n, int override_idx);

// ---- Scalars: typed by the YAML 1.2 core schema ----

// A typed value, or nullopt after reporting why not (when p is given).
std::optional<Json> Resolve(const Node& n, Problems* p);
std::optional<Json> ToJson(const Node& n, Problems& p);
std::string_view TypeName(const Json& j);  // "integer", "list", ...
std::string Show(const Json& j);           // "integer 3", "string 'x'", "a list"
std::string Describe(const Node& n);       // Show of the typed value, for "expected X, got Y"

}  // namespace seedgrid::spec_detail

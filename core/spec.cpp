#include "core/spec.h"

#include <algorithm>
#include <cctype>
#include <cerrno>
#include <charconv>
#include <climits>
#include <cmath>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <functional>
#include <map>
#include <optional>
#include <set>
#include <sstream>
#include <unordered_map>
#include <unordered_set>

#include <fmt/format.h>
#include <yaml-cpp/depthguard.h>
#include <yaml-cpp/yaml.h>

#include "core/hash.h"

namespace seedgrid {
namespace {

// ---- A YAML tree that keeps key order, lines and origin (file or override) ----------------------

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

const Node* Node::Get(std::string_view key) const {
  for (const auto& e : map) {
    if (e.key == key) return &e.value;
  }
  return nullptr;
}

const Entry* Node::GetEntry(std::string_view key) const {
  for (const auto& e : map) {
    if (e.key == key) return &e;
  }
  return nullptr;
}

Entry* Node::Find(std::string_view key) {
  for (auto& e : map) {
    if (e.key == key) return &e;
  }
  return nullptr;
}

std::string Join(const std::vector<std::string>& v, std::string_view sep = ", ") {
  std::string s;
  for (size_t i = 0; i < v.size(); ++i) s += (i ? std::string(sep) : "") + v[i];
  return s;
}

// ---- UTF-8: every key and scalar must be valid (JSON, HDF5 attributes and SQLite get them) ----

// Offset of the first byte that does not start a valid UTF-8 sequence (overlong forms,
// surrogates and code points past U+10FFFF included), or npos.
size_t InvalidUtf8At(std::string_view s) {
  size_t i = 0;
  while (i < s.size()) {
    const auto b = static_cast<unsigned char>(s[i]);
    if (b < 0x80) {
      ++i;
      continue;
    }
    size_t len = 0;
    unsigned char lo = 0x80, hi = 0xBF;  // allowed range of the second byte
    if (b >= 0xC2 && b <= 0xDF) {
      len = 2;
    } else if (b >= 0xE0 && b <= 0xEF) {
      len = 3;
      if (b == 0xE0) lo = 0xA0;  // overlong
      if (b == 0xED) hi = 0x9F;  // surrogates
    } else if (b >= 0xF0 && b <= 0xF4) {
      len = 4;
      if (b == 0xF0) lo = 0x90;  // overlong
      if (b == 0xF4) hi = 0x8F;  // past U+10FFFF
    } else {
      return i;
    }
    if (i + len > s.size()) return i;
    for (size_t k = 1; k < len; ++k) {
      const auto c = static_cast<unsigned char>(s[i + k]);
      if (c < (k == 1 ? lo : 0x80) || c > (k == 1 ? hi : 0xBF)) return i;
    }
    i += len;
  }
  return std::string_view::npos;
}

// s with every byte that is not valid UTF-8 written as \xNN: safe to print and to put in JSON.
std::string Utf8Escaped(std::string_view s) {
  std::string out;
  for (size_t at; (at = InvalidUtf8At(s)) != std::string_view::npos; s.remove_prefix(at + 1)) {
    out += s.substr(0, at);
    out += fmt::format("\\x{:02X}", static_cast<unsigned char>(s[at]));
  }
  return out += s;
}

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

// ---- Limits: what a few lines of YAML may expand to ---------------------------------------------
//
// An alias (*a) names a node anchored earlier (&a). yaml-cpp shares an aliased node, but the
// located tree below is a copy, so a "billion laughs" spec (a: &a [x, x, ...], b: &b [*a, *a, ...],
// c: &c [*b, *b, ...] ...) would be expanded into it: gigabytes, then std::bad_alloc. Before
// anything is copied, YamlMeasure walks yaml-cpp's graph once per distinct node (aliased nodes
// are memoised by identity) and refuses a spec over these limits. Real specs are far below:
// a few hundred nodes, a dozen levels.
constexpr uint64_t kMaxSpecNodes = 1'000'000;  // nodes after aliases are expanded (keys count)
constexpr int kMaxSpecDepth = 64;  // nested maps and lists, the top-level map being level 1

struct TreeLimitHit {
  YAML::Mark mark;
  std::string message;
};

class YamlMeasure {
 public:
  // The first limit the tree breaks, or nullopt. Cost: one visit per distinct node.
  std::optional<TreeLimitHit> Check(const YAML::Node& root) {
    try {
      Visit(root, 1, root.Mark());
    } catch (const TreeLimitHit& hit) {
      return hit;
    }
    return std::nullopt;
  }

 private:
  struct Extent {
    uint64_t nodes = 1;  // the node and everything under it, aliases expanded
    int levels = 0;      // collections nested in the node, itself included (a scalar: 0)
  };
  struct Seen {
    YAML::Node node;
    Extent extent;
  };

  // y at nesting level `depth`, used at `use` (the enclosing collection: an alias's own position
  // is not kept, y.Mark() is its anchor's). Throws TreeLimitHit. Recursion stays within
  // kMaxSpecDepth frames, whatever the aliases.
  Extent Visit(const YAML::Node& y, int depth, const YAML::Mark& use) {
    if (!y.IsSequence() && !y.IsMap()) return {};
    if (const Seen* s = Find(y)) {
      if (depth + s->extent.levels - 1 > kMaxSpecDepth) throw TooDeep(use);
      return s->extent;
    }
    if (depth > kMaxSpecDepth) throw TooDeep(y.Mark());
    Extent e{1, 1};
    auto add = [&](const YAML::Node& child) {
      const Extent c = Visit(child, depth + 1, y.Mark());
      e.nodes += c.nodes;
      e.levels = std::max(e.levels, c.levels + 1);
      if (e.nodes > kMaxSpecNodes) throw TooBig(y.Mark());
    };
    if (y.IsSequence()) {
      for (const auto& child : y) add(child);
    } else {
      for (auto it = y.begin(); it != y.end(); ++it) {
        add(it->first);
        add(it->second);
      }
    }
    seen_[y.Mark().pos].push_back({y, e});
    return e;
  }

  const Seen* Find(const YAML::Node& y) const {
    auto it = seen_.find(y.Mark().pos);
    if (it == seen_.end()) return nullptr;
    for (const auto& s : it->second) {
      if (s.node.is(y)) return &s;
    }
    return nullptr;
  }

  static TreeLimitHit TooBig(const YAML::Mark& at) {
    return {at, fmt::format("this value expands to more than {} nodes once its YAML aliases "
                            "(*name) are resolved, the limit for a spec (an alias bomb?)",
                            kMaxSpecNodes)};
  }
  static TreeLimitHit TooDeep(const YAML::Mark& at) {
    return {at, fmt::format("nesting deeper than {} levels (YAML aliases included), the limit for "
                            "a spec",
                            kMaxSpecDepth)};
  }

  // Keyed by the node's position in the text: an alias resolves to its anchor's node, same
  // position; Node::is settles the rare collision (two nodes that start at one position).
  std::unordered_map<int, std::vector<Seen>> seen_;
};

// Reports `text` when it is not UTF-8 and makes it printable, so that the checks that follow
// (which dump values as JSON) report their own problems instead of throwing.
void CheckUtf8(std::string& text, const Loc& loc, std::string_view what, Problems& p) {
  const size_t at = InvalidUtf8At(text);
  if (at == std::string_view::npos) return;
  const auto byte = static_cast<unsigned char>(text[at]);
  text = Utf8Escaped(text);
  p.Add(loc, fmt::format("{} '{}' is not valid UTF-8 (byte 0x{:02X} at offset {}); a spec must be "
                         "UTF-8 text",
                         what, text, byte, at));
}

// Copies yaml-cpp's tree into the located tree. Call only on a tree YamlMeasure accepted:
// aliases are expanded here. `fixed`: the location of every node (an override's), else its line.
Node FromYaml(const YAML::Node& y, const std::optional<Loc>& fixed, Problems& p) {
  Node n;
  n.loc = fixed ? *fixed : Loc{y.Mark().line + 1};
  switch (y.Type()) {
    case YAML::NodeType::Scalar:
      n.type = Node::Type::kScalar;
      n.text = y.Scalar();
      n.tag = y.Tag();
      CheckUtf8(n.text, n.loc, "the string", p);
      break;
    case YAML::NodeType::Sequence:
      n.type = Node::Type::kSeq;
      for (const auto& e : y) n.seq.push_back(FromYaml(e, fixed, p));
      break;
    case YAML::NodeType::Map: {
      n.type = Node::Type::kMap;
      std::unordered_set<std::string> keys;  // Node::Get is linear: a 10^5-key map would be O(n^2)
      for (auto it = y.begin(); it != y.end(); ++it) {
        const Loc key_loc = fixed ? *fixed : Loc{it->first.Mark().line + 1};
        if (!it->first.IsScalar()) {
          p.Add(key_loc, "map keys must be plain strings");
          continue;
        }
        std::string key = it->first.Scalar();
        CheckUtf8(key, key_loc, "the key", p);
        if (!keys.insert(key).second) {
          p.Add(key_loc, fmt::format("duplicate key '{}'", key));
          continue;
        }
        n.map.push_back({std::move(key), key_loc, FromYaml(it->second, fixed, p)});
      }
      break;
    }
    default:
      break;
  }
  return n;
}

// YAML text -> located tree, within the limits above. On a problem: adds it (at `where` when
// given, an override's location, else at the line yaml-cpp or the measure names) and returns
// nullopt.
std::optional<Node> LoadTree(const std::string& text, std::optional<Loc> where, Problems& p) {
  auto at = [&](const YAML::Mark& m) { return where ? *where : Loc{m.is_null() ? 1 : m.line + 1}; };
  YAML::Node y;
  try {
    y = YAML::Load(text);
  } catch (const YAML::DeepRecursion& e) {
    // yaml-cpp's own recursion guard (a few hundred levels) trips before our measure sees the
    // tree; its count is of parser frames, not of levels, so it is not quoted.
    p.Add(at(e.mark), fmt::format("nesting deeper than {} levels, the limit for a spec (the YAML "
                                  "parser gave up here)",
                                  kMaxSpecDepth));
    return std::nullopt;
  } catch (const YAML::Exception& e) {
    p.Add(at(e.mark), (where ? "the value is not valid YAML: " : "YAML syntax error: ") + e.msg);
    return std::nullopt;
  }
  if (auto hit = YamlMeasure().Check(y)) {
    p.Add(at(hit->mark), hit->message);
    return std::nullopt;
  }
  return FromYaml(y, where, p);
}

void SetOrigin(Node& n, int override_idx) {
  n.loc = Loc{0, override_idx};
  for (auto& e : n.seq) SetOrigin(e, override_idx);
  for (auto& e : n.map) {
    e.key_loc = n.loc;
    SetOrigin(e.value, override_idx);
  }
}

// ---- Scalars: typed by the YAML 1.2 core schema ------------------------------------------------

bool AllOf(std::string_view s, const char* set) {
  return !s.empty() && s.find_first_not_of(set) == std::string_view::npos;
}

bool IsCoreFloat(std::string_view s) {  // [-+]?(\.[0-9]+|[0-9]+(\.[0-9]*)?)([eE][-+]?[0-9]+)?
  size_t i = 0;
  auto digits = [&] {
    size_t b = i;
    while (i < s.size() && s[i] >= '0' && s[i] <= '9') ++i;
    return i - b;
  };
  if (i < s.size() && (s[i] == '+' || s[i] == '-')) ++i;
  if (i < s.size() && s[i] == '.') {
    ++i;
    if (!digits()) return false;
  } else {
    if (!digits()) return false;
    if (i < s.size() && s[i] == '.') {
      ++i;
      digits();
    }
  }
  if (i < s.size() && (s[i] == 'e' || s[i] == 'E')) {
    ++i;
    if (i < s.size() && (s[i] == '+' || s[i] == '-')) ++i;
    if (!digits()) return false;
  }
  return i == s.size();
}

constexpr const char* kDigits = "0123456789";

// A typed value, or nullopt after reporting why not (when p is given).
std::optional<Json> Resolve(const Node& n, Problems* p) {
  if (n.Is(Node::Type::kNull)) return Json(nullptr);
  const std::string& s = n.text;
  if (n.tag == "!" || n.tag == "tag:yaml.org,2002:str") return Json(s);
  if (n.tag != "?" && n.tag.rfind("tag:yaml.org,2002:", 0) != 0) {
    if (p) p->Add(n.loc, fmt::format("unsupported YAML tag '{}'", n.tag));
    return std::nullopt;
  }
  if (s.empty() || s == "~" || s == "null" || s == "Null" || s == "NULL") return Json(nullptr);
  if (s == "true" || s == "True" || s == "TRUE") return Json(true);
  if (s == "false" || s == "False" || s == "FALSE") return Json(false);
  std::string_view v = s;
  bool neg = false;
  int base = 0;
  if (v.size() > 2 && v[0] == '0' && (v[1] == 'x' || v[1] == 'o')) {
    base = v[1] == 'x' ? 16 : 8;
    v.remove_prefix(2);
    if (!AllOf(v, base == 16 ? "0123456789abcdefABCDEF" : "01234567")) base = 0;
  } else {
    if (!v.empty() && (v[0] == '-' || v[0] == '+')) {
      neg = v[0] == '-';
      v.remove_prefix(1);
    }
    if (AllOf(v, kDigits)) base = 10;
  }
  if (base) {
    uint64_t u = 0;
    auto r = std::from_chars(v.data(), v.data() + v.size(), u, base);
    const uint64_t limit = neg ? uint64_t{1} << 63 : (uint64_t{1} << 63) - 1;
    if (r.ec != std::errc() || u > limit) {
      if (p) p->Add(n.loc, fmt::format("integer {} does not fit in 64 bits", s));
      return std::nullopt;
    }
    return Json(neg ? static_cast<int64_t>(0 - u) : static_cast<int64_t>(u));
  }
  if (IsCoreFloat(s)) {
    std::string_view f = s;
    if (f[0] == '+') f.remove_prefix(1);
    double d = 0;
    auto r = std::from_chars(f.data(), f.data() + f.size(), d);
    if (r.ec != std::errc() || !std::isfinite(d)) {
      if (p) p->Add(n.loc, fmt::format("number {} is out of range", s));
      return std::nullopt;
    }
    return Json(d);
  }
  std::string lower = s;
  std::transform(lower.begin(), lower.end(), lower.begin(), ::tolower);
  if (lower == ".nan" || lower == ".inf" || lower == "+.inf" || lower == "-.inf") {
    if (p) p->Add(n.loc, fmt::format("non-finite number {} is not supported", s));
    return std::nullopt;
  }
  return Json(s);
}

std::optional<Json> ToJson(const Node& n, Problems& p) {
  switch (n.type) {
    case Node::Type::kNull:
    case Node::Type::kScalar:
      return Resolve(n, &p);
    case Node::Type::kSeq: {
      Json out = Json::array();
      bool ok = true;
      for (const auto& e : n.seq) {
        auto v = ToJson(e, p);
        ok = ok && v.has_value();
        if (v) out.push_back(std::move(*v));
      }
      return ok ? std::optional<Json>(std::move(out)) : std::nullopt;
    }
    case Node::Type::kMap: {
      Json out = Json::object();
      bool ok = true;
      for (const auto& e : n.map) {
        auto v = ToJson(e.value, p);
        ok = ok && v.has_value();
        if (v) out[e.key] = std::move(*v);
      }
      return ok ? std::optional<Json>(std::move(out)) : std::nullopt;
    }
  }
  return std::nullopt;
}

std::string_view TypeName(const Json& j) {
  if (j.is_null()) return "null";
  if (j.is_boolean()) return "bool";
  if (j.is_number_integer()) return "integer";
  if (j.is_number_float()) return "float";
  if (j.is_string()) return "string";
  if (j.is_array()) return "list";
  return "map";
}

std::string Show(const Json& j) {
  if (j.is_array()) return "a list";
  if (j.is_object()) return "a map";
  if (j.is_null()) return "null";
  std::string v = j.dump(-1, ' ', false, Json::error_handler_t::replace);
  if (j.is_string()) v = "'" + j.get<std::string>() + "'";
  return fmt::format("{} {}", TypeName(j), v);
}

std::string Describe(const Node& n) {
  if (n.Is(Node::Type::kSeq)) return "a list";
  if (n.Is(Node::Type::kMap)) return "a map";
  auto v = Resolve(n, nullptr);
  return v ? Show(*v) : "'" + n.text + "'";
}

// ---- Small helpers -------------------------------------------------------------------------------

std::vector<std::string> Split(std::string_view s, char sep) {
  std::vector<std::string> out;
  size_t start = 0;
  while (true) {
    size_t at = s.find(sep, start);
    out.emplace_back(s.substr(start, at == std::string_view::npos ? at : at - start));
    if (at == std::string_view::npos) return out;
    start = at + 1;
  }
}

size_t EditDistance(std::string_view a, std::string_view b) {
  std::vector<size_t> row(b.size() + 1);
  for (size_t j = 0; j <= b.size(); ++j) row[j] = j;
  for (size_t i = 1; i <= a.size(); ++i) {
    size_t diag = row[0];
    row[0] = i;
    for (size_t j = 1; j <= b.size(); ++j) {
      size_t up = row[j];
      row[j] = std::min({row[j] + 1, row[j - 1] + 1, diag + (a[i - 1] != b[j - 1])});
      diag = up;
    }
  }
  return row[b.size()];
}

// "; did you mean 'x'?" for a near miss, else "".
std::string Suggest(std::string_view word, const std::vector<std::string>& accepted) {
  size_t best = 3;
  std::string pick;
  for (const auto& a : accepted) {
    size_t d = EditDistance(word, a);
    if (d < best) {
      best = d;
      pick = a;
    }
  }
  return pick.empty() ? "" : fmt::format("; did you mean '{}'?", pick);
}

std::vector<std::string> KeysOf(const Json& object) {
  std::vector<std::string> keys;
  for (const auto& [k, v] : object.items()) keys.push_back(k);
  return keys;
}

bool IsValidName(std::string_view s) {
  return AllOf(s, "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789_.-") &&
         s[0] != '.' && s[0] != '-';
}

void DeepMerge(Json& base, const Json& patch) {
  if (!base.is_object() || !patch.is_object()) {
    base = patch;
    return;
  }
  for (const auto& [k, v] : patch.items()) DeepMerge(base[k], v);
}

// params[dotted key] = value (a map merges into a map). False when the path crosses a non-map.
bool ApplyAxis(Json& params, const std::string& key, const Json& value) {
  Json* cur = &params;
  size_t start = 0;
  while (true) {
    size_t dot = key.find('.', start);
    std::string seg = key.substr(start, dot == std::string::npos ? dot : dot - start);
    if (cur->is_null()) *cur = Json::object();
    if (!cur->is_object()) return false;
    Json& next = (*cur)[seg];
    if (dot == std::string::npos) {
      DeepMerge(next, value);
      return true;
    }
    cur = &next;
    start = dot + 1;
  }
}

const std::vector<std::string> kTopKeys = {"name", "out", "stages", "report"};
const std::vector<std::string> kStageKeys = {"kind", "params", "seeds", "grid", "zip",
                                             "needs", "shards", "resources"};
const std::vector<std::string> kResourceKeys = {"timeout", "ranks",     "gpus",
                                                "memory",  "isolation", "max_attempts"};

// ---- Overrides: key=value into the YAML tree ---------------------------------------------------

void ApplyOverride(Node& root, const std::string& text, int idx, Problems& p) {
  const Loc loc{0, idx};
  size_t eq = text.find('=');
  if (eq == std::string::npos || eq == 0) {
    p.Add(loc, "expected key=value, e.g. params.train.steps=10 or stages.steer.seeds=[0,1]");
    return;
  }
  if (size_t bad = InvalidUtf8At(text); bad != std::string::npos) {
    p.Add(loc, fmt::format("the override is not valid UTF-8 (byte 0x{:02X} at offset {})",
                           static_cast<unsigned char>(text[bad]), bad));
    return;
  }
  std::vector<std::string> segs = Split(std::string_view(text).substr(0, eq), '.');
  if (std::any_of(segs.begin(), segs.end(), [](const auto& s) { return s.empty(); })) {
    p.Add(loc, fmt::format("bad path '{}': empty path element", text.substr(0, eq)));
    return;
  }
  auto parsed = LoadTree(text.substr(eq + 1), loc, p);
  if (!parsed) return;
  Node value = std::move(*parsed);
  SetOrigin(value, idx);

  auto joined = [&](size_t a, size_t b) {
    return Join(std::vector<std::string>(segs.begin() + a, segs.begin() + b), ".");
  };
  Node* cur = &root;
  bool stage_level = true;  // cur is the root or an element of `stages`
  bool in_stages = false;   // cur is the `stages` list
  bool axes_map = false;    // cur is a stage's grid or zip: the rest of the path is one key
  for (size_t i = 0; i < segs.size();) {
    const std::string here = i ? joined(0, i) : "the spec";
    if (cur->Is(Node::Type::kNull)) cur->type = Node::Type::kMap;
    if (cur->Is(Node::Type::kMap)) {
      // Keys may hold dots ("lora.rank" in a grid): the longest existing key wins.
      Entry* hit = nullptr;
      size_t j = segs.size();
      for (; j > i && !(hit = cur->Find(joined(i, j))); --j) {
      }
      if (!hit) {
        j = axes_map ? segs.size() : i + 1;
        cur->map.push_back({joined(i, j), loc, Node{}});
        hit = &cur->map.back();
        hit->value.loc = loc;
      }
      if (j == segs.size()) {
        hit->value = value;
        return;
      }
      in_stages = cur == &root && hit->key == "stages";
      axes_map = stage_level && (hit->key == "grid" || hit->key == "zip");
      stage_level = false;
      cur = &hit->value;
      i = j;
      continue;
    }
    if (cur->Is(Node::Type::kSeq)) {
      Node* hit = nullptr;
      size_t j = i + 1;
      if (AllOf(segs[i], kDigits)) {
        size_t k = std::stoull(segs[i].substr(0, 18));
        if (k >= cur->seq.size()) {
          p.Add(loc, fmt::format("bad path: index {} is past the end of '{}' ({} elements)", segs[i],
                                 here, cur->seq.size()));
          return;
        }
        hit = &cur->seq[k];
      } else {
        // Element names may hold dots: the longest matching name wins.
        auto named = [&](const std::string& want) -> Node* {
          for (auto& e : cur->seq) {
            const Node* name = e.Is(Node::Type::kMap) ? e.Get("name") : nullptr;
            if (name && name->Is(Node::Type::kScalar) && name->text == want) return &e;
          }
          return nullptr;
        };
        for (j = segs.size(); j > i && !(hit = named(joined(i, j))); --j) {
        }
        if (!hit) {
          std::vector<std::string> names;
          for (const auto& e : cur->seq) {
            const Node* name = e.Is(Node::Type::kMap) ? e.Get("name") : nullptr;
            if (name && name->Is(Node::Type::kScalar)) names.push_back(name->text);
          }
          p.Add(loc, fmt::format("bad path: '{}' has no element named '{}' (names: {})", here,
                                 segs[i], names.empty() ? "none" : Join(names)));
          return;
        }
      }
      if (j == segs.size()) {
        *hit = value;
        return;
      }
      stage_level = in_stages;
      in_stages = axes_map = false;
      cur = hit;
      i = j;
      continue;
    }
    p.Add(loc, fmt::format("bad path: '{}' is {}, it has no '{}'", here, Describe(*cur), segs[i]));
    return;
  }
}

// ---- The spec parser -----------------------------------------------------------------------------

struct StageAux {
  Loc loc;
  Loc name_loc;
  std::vector<Loc> need_locs;
};

class Parser {
 public:
  Parser(Problems& p, const KindRegistry& kinds, std::string_view file)
      : p_(p), kinds_(kinds), file_(file) {}

  void Run(const Node& root, SweepSpec& spec) {
    const Node* stages = root.Get("stages");
    const bool shorthand = stages == nullptr;
    for (const auto& e : root.map) {
      if (std::count(kTopKeys.begin(), kTopKeys.end(), e.key)) continue;
      if (std::count(kStageKeys.begin(), kStageKeys.end(), e.key)) {
        if (!shorthand) {
          p_.Add(e.key_loc, fmt::format("'{}' at the top level is the single-stage shorthand; with "
                                        "'stages', put it inside a stage",
                                        e.key));
        }
        continue;
      }
      std::vector<std::string> accepted = kTopKeys;
      accepted.insert(accepted.end(), kStageKeys.begin(), kStageKeys.end());
      UnknownKey(e, "top-level ", accepted);
    }

    if (const Node* n = root.Get("name")) {
      if (auto s = Text(*n, "name")) {
        if (IsValidName(*s)) {
          spec.name = *s;
        } else {
          p_.Add(n->loc, fmt::format("name '{}': use letters, digits, '_', '-' and '.' only", *s));
        }
      }
    } else {
      std::string stem = std::filesystem::path(file_).stem().string();
      spec.name = IsValidName(stem) ? stem : "sweep";
    }
    if (const Node* n = root.Get("out")) {
      if (auto s = Text(*n, "out")) spec.out = *s;
    }
    if (const Node* n = root.Get("report")) {
      if (n->Is(Node::Type::kMap)) {
        if (auto j = ToJson(*n, p_)) spec.report = std::move(*j);
      } else if (!n->Is(Node::Type::kNull)) {
        p_.Add(n->loc, "report: expected a map, got " + Describe(*n));
      }
    }

    std::vector<StageAux> aux;
    if (shorthand) {
      if (!root.Get("kind")) {
        p_.Add(root.loc, "no stages: give a 'stages' list, or a top-level 'kind' for a single-stage "
                         "sweep");
      } else {
        ParseStage(root, true, root.Get("name") ? spec.name : "main", spec, aux);
      }
    } else if (!stages->Is(Node::Type::kSeq) || stages->seq.empty()) {
      p_.Add(stages->loc, "stages: expected a non-empty list of stages, got " +
                              (stages->Is(Node::Type::kSeq) ? "an empty list" : Describe(*stages)));
    } else {
      for (const auto& s : stages->seq) {
        if (!s.Is(Node::Type::kMap)) {
          p_.Add(s.loc, "a stage must be a map (name, kind, params, ...), got " + Describe(s));
          continue;
        }
        ParseStage(s, false, "", spec, aux);
      }
    }
    CheckNeeds(spec, aux);
  }

 private:
  // `what`: "top-level " or "stage 'a': " or "stage 'a': resources: ".
  void UnknownKey(const Entry& e, std::string_view what, const std::vector<std::string>& accepted) {
    p_.Add(e.key_loc, fmt::format("{}unknown key '{}'{} (accepted: {})", what, e.key,
                                  Suggest(e.key, accepted), Join(accepted)));
  }

  std::optional<std::string> Text(const Node& n, std::string_view what) {
    if (n.Is(Node::Type::kScalar) && !n.text.empty()) return n.text;
    p_.Add(n.loc, fmt::format("{}: expected a string, got {}", what, Describe(n)));
    return std::nullopt;
  }

  std::optional<int64_t> Int(const Node& n, std::string_view what, int64_t lo, int64_t hi) {
    auto v = Resolve(n, &p_);
    if (!v) return std::nullopt;
    if (v->is_number_integer() && v->get<int64_t>() >= lo && v->get<int64_t>() <= hi) {
      return v->get<int64_t>();
    }
    p_.Add(n.loc, fmt::format("{}: expected an integer in [{}, {}], got {}", what, lo, hi,
                              Describe(n)));
    return std::nullopt;
  }

  // Checks a spec value against the kind's default at `path`. Returns the normalised value (for a
  // map: only the keys given, a patch to merge over the default), nullopt after a problem.
  std::optional<Json> CheckParam(const Json& def, const Node& n, const std::string& path) {
    if (def.is_null()) return ToJson(n, p_);
    if (def.is_object()) {
      if (!n.Is(Node::Type::kMap)) {
        p_.Add(n.loc, fmt::format("{}: expected a map, got {}", path, Describe(n)));
        return std::nullopt;
      }
      Json patch = Json::object();
      for (const auto& e : n.map) {
        auto it = def.find(e.key);
        if (it == def.end()) {
          auto keys = KeysOf(def);
          p_.Add(e.key_loc, fmt::format("{}.{}: unknown param{} (accepted: {})", path, e.key,
                                        Suggest(e.key, keys), keys.empty() ? "none" : Join(keys)));
          continue;
        }
        if (auto v = CheckParam(*it, e.value, path + "." + e.key)) patch[e.key] = std::move(*v);
      }
      return patch;
    }
    auto v = ToJson(n, p_);
    if (!v) return std::nullopt;
    if (def.is_number_float() && v->is_number()) return Json(v->get<double>());
    if (def.is_number_integer() ? v->is_number_integer() : def.type() == v->type()) return v;
    bool quote = def.is_string() && n.Is(Node::Type::kScalar);
    p_.Add(n.loc, fmt::format("{}: expected {}, got {}{}", path, TypeName(def), Show(*v),
                              quote ? " (quote it to pass a string)" : ""));
    return std::nullopt;
  }

  // The kind's default at a dotted axis key; nullptr after a problem.
  const Json* DefaultAt(const KindConfig& kind, const std::string& key, const Loc& loc,
                        std::string_view what) {
    const Json* cur = &kind.defaults;
    std::string under;
    for (const auto& seg : Split(key, '.')) {
      if (cur->is_null()) return cur;  // a free-form param: anything below it goes
      if (!cur->is_object()) {
        p_.Add(loc, fmt::format("{} '{}': param '{}' is {}, it has no '{}'", what, key, under,
                                TypeName(*cur), seg));
        return nullptr;
      }
      auto it = cur->find(seg);
      if (seg.empty() || it == cur->end()) {
        auto keys = KeysOf(*cur);
        p_.Add(loc, fmt::format("{} '{}': unknown param{} (accepted{}: {})", what, key,
                                Suggest(seg, keys), under.empty() ? "" : " under '" + under + "'",
                                keys.empty() ? "none" : Join(keys)));
        return nullptr;
      }
      under += (under.empty() ? "" : ".") + seg;
      cur = &*it;
    }
    return cur;
  }

  // grid or zip. `value_locs` gets each value's location (for validate problems).
  std::vector<Axis> ParseAxes(const Node* n, std::string_view what, const std::string& who,
                              const KindConfig* kind,
                              std::vector<std::vector<Loc>>& value_locs) {
    std::vector<Axis> axes;
    if (!n || n->Is(Node::Type::kNull)) return axes;
    if (!n->Is(Node::Type::kMap)) {
      p_.Add(n->loc, fmt::format("{}: {}: expected a map of param path -> list of values, got {}",
                                 who, what, Describe(*n)));
      return axes;
    }
    for (const auto& e : n->map) {
      const std::string label = fmt::format("{}: {}", who, what);
      if (!e.value.Is(Node::Type::kSeq)) {
        p_.Add(e.value.loc, fmt::format("{} '{}': expected a list of values, got {}", label, e.key,
                                        Describe(e.value)));
        continue;
      }
      if (e.value.seq.empty()) {
        p_.Add(e.value.loc, fmt::format("{} '{}': empty axis (give at least one value)", label,
                                        e.key));
        continue;
      }
      const Json* def = kind ? DefaultAt(*kind, e.key, e.key_loc, label) : nullptr;
      if (kind && !def) continue;
      Axis axis{e.key, {}, e.key_loc.line};
      std::vector<Loc> locs;
      std::set<std::string> distinct;
      bool ok = true;
      for (size_t i = 0; i < e.value.seq.size(); ++i) {
        const Node& v = e.value.seq[i];
        auto j = def ? CheckParam(*def, v, fmt::format("{} '{}'[{}]", label, e.key, i))
                     : ToJson(v, p_);
        if (!j) {
          ok = false;
          continue;
        }
        if (!distinct.insert(j->dump()).second) {
          p_.Add(v.loc, fmt::format("{} '{}': value {} appears twice", label, e.key, j->dump()));
          ok = false;
          continue;
        }
        axis.values.push_back(std::move(*j));
        locs.push_back(v.loc);
      }
      if (!ok) continue;
      axes.push_back(std::move(axis));
      value_locs.push_back(std::move(locs));
    }
    return axes;
  }

  void ParseSeeds(const Node& n, const std::string& who, StageSpec& st) {
    constexpr int64_t kMax = static_cast<int64_t>(kDefaultMaxShards);
    const std::string what = who + ": seeds";
    st.seeds_given = true;
    st.seeds.clear();
    if (n.Is(Node::Type::kScalar)) {
      if (auto c = Int(n, what + " (a count n means 0..n-1)", 1, kMax)) {
        for (int64_t s = 0; s < *c; ++s) st.seeds.push_back(s);
      }
    } else if (n.Is(Node::Type::kSeq)) {
      if (n.seq.empty()) p_.Add(n.loc, what + ": empty list (give at least one seed)");
      for (const auto& e : n.seq) {
        auto s = Int(e, what, 0, INT64_MAX);
        if (!s) continue;
        if (std::count(st.seeds.begin(), st.seeds.end(), *s)) {
          p_.Add(e.loc, fmt::format("{}: seed {} appears twice", what, *s));
        } else {
          st.seeds.push_back(*s);
        }
      }
    } else if (n.Is(Node::Type::kMap)) {
      for (const auto& e : n.map) {
        if (e.key != "from" && e.key != "to") UnknownKey(e, what + ": ", {"from", "to"});
      }
      const Node* from = n.Get("from");
      const Node* to = n.Get("to");
      if (!from || !to) {
        p_.Add(n.loc, what + ": a range needs both 'from' and 'to' (inclusive)");
        return;
      }
      auto a = Int(*from, what + ".from", 0, INT64_MAX);
      auto b = Int(*to, what + ".to", 0, INT64_MAX);
      if (!a || !b) return;
      if (*b < *a) {
        p_.Add(to->loc, fmt::format("{}: 'to' ({}) is below 'from' ({})", what, *b, *a));
      } else if (*b - *a >= kMax) {
        p_.Add(n.loc, fmt::format("{}: {}..{} is more than {} seeds", what, *a, *b, kMax));
      } else {
        for (int64_t s = *a; s <= *b; ++s) st.seeds.push_back(s);
      }
    } else {
      p_.Add(n.loc, what + ": expected a list of integers, a count n (seeds 0..n-1) or "
                           "{from: a, to: b}, got null");
    }
  }

  void ParseResources(const Node& n, const std::string& who, const KindConfig* kind,
                      Resources& r) {
    if (n.Is(Node::Type::kNull)) return;
    if (!n.Is(Node::Type::kMap)) {
      p_.Add(n.loc, fmt::format("{}: resources: expected a map, got {}", who, Describe(n)));
      return;
    }
    const std::string what = who + ": resources";
    for (const auto& e : n.map) {
      const Node& v = e.value;
      const std::string label = what + "." + e.key;
      if (e.key == "timeout" || e.key == "memory") {
        auto j = Resolve(v, &p_);
        if (!j) continue;
        const bool timeout = e.key == "timeout";
        try {
          if (j->is_number()) {
            if (j->get<double>() < 0) throw std::invalid_argument("negative");
            if (timeout) {
              r.timeout_s = j->get<double>();
            } else {
              r.memory_mb = ParseMemoryMb(j->dump());
            }
          } else if (j->is_string()) {
            if (timeout) {
              r.timeout_s = ParseDuration(j->get<std::string>());
            } else {
              r.memory_mb = ParseMemoryMb(j->get<std::string>());
            }
          } else {
            throw std::invalid_argument("type");
          }
        } catch (const std::invalid_argument&) {
          p_.Add(v.loc, fmt::format("{}: expected {}, got {}", label,
                                    timeout ? "seconds or a duration like 90s, 10m, 1h30m, 500ms"
                                            : "MiB or a size like 512M, 2G, 1.5G",
                                    Describe(v)));
        }
      } else if (e.key == "max_attempts") {
        if (auto i = Int(v, label, 1, 1000)) r.max_attempts = static_cast<int>(*i);
      } else if (e.key == "ranks") {
        auto i = Int(v, label, 1, 1 << 20);
        if (!i) continue;
        r.ranks = static_cast<int>(*i);
        if (r.ranks > 1 && kind && !kind->supports_gang) {
          std::vector<std::string> gang;
          for (const auto& name : kinds_.Names()) {
            if (kinds_.Find(name)->supports_gang) gang.push_back(name);
          }
          p_.Add(v.loc, fmt::format("{}: {} ranks, but kind '{}' does not run as a gang (gang "
                                    "kinds: {})",
                                    label, r.ranks, kind->name, gang.empty() ? "none" : Join(gang)));
        }
      } else if (e.key == "gpus") {
        if (auto i = Int(v, label, 0, 1024)) r.gpus = static_cast<int>(*i);
      } else if (e.key == "isolation") {
        auto s = Text(v, label);
        if (s == "executor" || s == "inline") {
          r.isolation = *s == "inline" ? Isolation::kInline : Isolation::kExecutor;
        } else if (s) {
          p_.Add(v.loc, fmt::format("{}: '{}' is not an isolation (accepted: executor, inline)",
                                    label, *s));
        }
      } else {
        UnknownKey(e, what + ": ", kResourceKeys);
      }
    }
  }

  void CollectLocs(const Node& n, const std::string& prefix, std::map<std::string, Loc>& out) {
    for (const auto& e : n.map) {
      std::string path = prefix.empty() ? e.key : prefix + "." + e.key;
      out[path] = e.key_loc;
      CollectLocs(e.value, path, out);
    }
  }

  void RunValidate(const KindConfig& kind, StageSpec& st, const std::string& who,
                   const Node* params, const Loc& stage_loc,
                   const std::vector<std::vector<Loc>>& grid_locs,
                   const std::vector<std::vector<Loc>>& zip_locs) {
    auto run = [&](const Json& params) -> std::vector<std::string> {
      try {
        return kind.validate(params);
      } catch (const std::exception& e) {
        return {fmt::format("validation of kind '{}' failed: {}", kind.name, e.what())};
      }
    };
    std::map<std::string, Loc> locs;
    if (params) CollectLocs(*params, "", locs);
    std::set<std::string> seen;
    auto report = [&](const std::vector<std::string>& problems, const Loc* at, std::string ctx) {
      for (const auto& problem : problems) {
        if (!seen.insert(problem).second) continue;
        // "dotted.key: message": point at the nearest key the spec wrote.
        size_t colon = problem.find(": ");
        std::string key = problem.substr(0, colon == std::string::npos ? 0 : colon);
        const bool keyed = !key.empty() && key.find(' ') == std::string::npos;
        Loc loc = at ? *at : params ? params->loc : stage_loc;
        while (!at && keyed) {
          if (auto it = locs.find(key); it != locs.end()) {
            loc = it->second;
            break;
          }
          size_t dot = key.rfind('.');
          if (dot == std::string::npos) break;
          key.resize(dot);
        }
        p_.Add(loc, fmt::format("{}: {}{}{}", who, ctx, keyed ? "params." : "", problem));
      }
    };
    report(run(st.params), nullptr, "");
    for (size_t a = 0; a < st.grid.size(); ++a) {
      for (size_t i = 0; i < st.grid[a].values.size(); ++i) {
        Json q = st.params;
        if (!ApplyAxis(q, st.grid[a].key, st.grid[a].values[i])) continue;
        report(run(q), &grid_locs[a][i],
               fmt::format("with grid {} = {}: ", st.grid[a].key, st.grid[a].values[i].dump()));
      }
    }
    if (st.zip.empty()) return;
    for (size_t i = 0; i < st.zip[0].values.size(); ++i) {
      Json q = st.params;
      bool ok = true;
      for (const auto& axis : st.zip) {
        ok = ok && i < axis.values.size() && ApplyAxis(q, axis.key, axis.values[i]);
      }
      if (ok) report(run(q), &zip_locs[0][i], fmt::format("with zip row {}: ", i));
    }
  }

  void ParseStage(const Node& m, bool shorthand, const std::string& shorthand_name,
                  SweepSpec& spec, std::vector<StageAux>& aux) {
    StageSpec st;
    StageAux ax;
    ax.loc = m.loc;
    ax.name_loc = m.loc;
    st.line = m.loc.line;
    std::string who;
    if (shorthand) {
      st.name = shorthand_name;
      who = fmt::format("stage '{}'", st.name.empty() ? "main" : st.name);
    } else {
      const Node* name = m.Get("name");
      if (!name) {
        p_.Add(m.loc, fmt::format("stage #{}: missing 'name'", spec.stages.size() + 1));
      } else if (auto s = Text(*name, "stage name")) {
        ax.name_loc = name->loc;
        if (IsValidName(*s)) {
          st.name = *s;
        } else {
          p_.Add(name->loc, fmt::format("stage name '{}': use letters, digits, '_', '-' and '.' "
                                        "only",
                                        *s));
        }
      }
      who = st.name.empty() ? fmt::format("stage #{}", spec.stages.size() + 1)
                            : fmt::format("stage '{}'", st.name);
      std::vector<std::string> accepted = {"name"};
      accepted.insert(accepted.end(), kStageKeys.begin(), kStageKeys.end());
      for (const auto& e : m.map) {
        if (!std::count(accepted.begin(), accepted.end(), e.key)) {
          UnknownKey(e, who + ": ", accepted);
        }
      }
    }

    const KindConfig* kind = nullptr;
    if (const Node* k = m.Get("kind")) {
      if (auto s = Text(*k, who + ": kind")) {
        st.kind = *s;
        kind = kinds_.Find(*s);
        if (!kind) {
          p_.Add(k->loc, fmt::format("{}: unknown kind '{}' (kinds: {})", who, *s,
                                     Join(kinds_.Names())));
        }
      }
    } else {
      p_.Add(m.loc, fmt::format("{}: missing 'kind' (kinds: {})", who, Join(kinds_.Names())));
    }

    const Node* params = m.Get("params");
    if (params && params->Is(Node::Type::kNull)) params = nullptr;
    if (params && !params->Is(Node::Type::kMap)) {
      p_.Add(params->loc, fmt::format("{}: params: expected a map, got {}", who, Describe(*params)));
      params = nullptr;
    }
    if (kind) {
      st.params = kind->defaults;
      if (params) {
        if (auto patch = CheckParam(kind->defaults, *params, who + ": params")) DeepMerge(st.params, *patch);
      }
    }

    if (const Node* s = m.Get("seeds")) ParseSeeds(*s, who, st);
    if (!st.seeds_given) st.seeds = {0};

    std::vector<std::vector<Loc>> grid_locs, zip_locs;
    st.grid = ParseAxes(m.Get("grid"), "grid", who, kind, grid_locs);
    st.zip = ParseAxes(m.Get("zip"), "zip", who, kind, zip_locs);
    if (st.zip.size() > 1) {
      bool same = std::all_of(st.zip.begin(), st.zip.end(), [&](const Axis& a) {
        return a.values.size() == st.zip[0].values.size();
      });
      if (!same) {
        std::vector<std::string> lengths;
        for (const auto& a : st.zip) lengths.push_back(fmt::format("{} has {}", a.key, a.values.size()));
        p_.Add(m.GetEntry("zip")->key_loc, fmt::format("{}: zip lists differ in length ({}); zip pairs them "
                                              "element by element",
                                              who, Join(lengths)));
      }
    }
    std::vector<const Axis*> all;
    for (const auto& a : st.grid) all.push_back(&a);
    for (const auto& a : st.zip) all.push_back(&a);
    for (size_t i = 0; i < all.size(); ++i) {
      for (size_t j = 0; j < i; ++j) {
        const std::string& x = all[j]->key;
        const std::string& y = all[i]->key;
        bool overlap = x == y || y.rfind(x + ".", 0) == 0 || x.rfind(y + ".", 0) == 0;
        if (overlap) {
          p_.Add(Loc{all[i]->line}, fmt::format("{}: axis '{}' overlaps axis '{}' (line {}): each "
                                                "param may be varied by one axis only",
                                                who, y, x, all[j]->line));
        }
      }
      Json probe = st.params;
      if (kind && !ApplyAxis(probe, all[i]->key, all[i]->values[0])) {
        p_.Add(Loc{all[i]->line}, fmt::format("{}: axis '{}' crosses a param that is not a map",
                                              who, all[i]->key));
      }
    }

    if (const Node* n = m.Get("needs")) {
      auto add = [&](const Node& e) {
        if (auto s = Text(e, who + ": needs")) {
          if (std::count(st.needs.begin(), st.needs.end(), *s)) {
            p_.Add(e.loc, fmt::format("{}: needs '{}' twice", who, *s));
          } else {
            st.needs.push_back(*s);
            ax.need_locs.push_back(e.loc);
          }
        }
      };
      if (n->Is(Node::Type::kSeq)) {
        for (const auto& e : n->seq) add(e);
      } else if (n->Is(Node::Type::kScalar)) {
        add(*n);
      } else if (!n->Is(Node::Type::kNull)) {
        p_.Add(n->loc, fmt::format("{}: needs: expected a stage name or a list of them, got {}",
                                   who, Describe(*n)));
      }
    }

    if (const Node* n = m.Get("shards")) {
      if (auto s = Int(*n, who + ": shards", 1, static_cast<int64_t>(kDefaultMaxShards))) {
        st.shards = static_cast<int>(*s);
      }
    }
    if (const Node* n = m.Get("resources")) ParseResources(*n, who, kind, st.resources);

    if (kind && kind->validate) RunValidate(*kind, st, who, params, m.loc, grid_locs, zip_locs);

    spec.stages.push_back(std::move(st));
    aux.push_back(std::move(ax));
  }

  void CheckNeeds(const SweepSpec& spec, const std::vector<StageAux>& aux) {
    std::map<std::string, size_t> index;
    std::vector<std::string> names;
    for (size_t i = 0; i < spec.stages.size(); ++i) {
      const std::string& name = spec.stages[i].name;
      if (name.empty()) continue;
      auto [it, fresh] = index.emplace(name, i);
      if (fresh) {
        names.push_back(name);
      } else {
        p_.Add(aux[i].name_loc, fmt::format("duplicate stage name '{}' (first at line {})", name,
                                            aux[it->second].name_loc.line));
      }
    }
    std::vector<std::vector<std::pair<size_t, Loc>>> edges(spec.stages.size());
    for (size_t i = 0; i < spec.stages.size(); ++i) {
      const StageSpec& st = spec.stages[i];
      for (size_t k = 0; k < st.needs.size() && !st.name.empty(); ++k) {
        const std::string& need = st.needs[k];
        auto it = index.find(need);
        if (need == st.name) {
          p_.Add(aux[i].need_locs[k], fmt::format("stage '{}' needs itself", st.name));
        } else if (it == index.end()) {
          p_.Add(aux[i].need_locs[k], fmt::format("stage '{}' needs '{}', which is not a stage "
                                                  "(stages: {})",
                                                  st.name, need, Join(names)));
        } else if (index.at(st.name) == i) {
          edges[i].push_back({it->second, aux[i].need_locs[k]});
        }
      }
    }
    // Depth-first search; every back edge closes a cycle.
    std::vector<int> color(spec.stages.size(), 0);
    std::vector<size_t> path;
    std::function<void(size_t)> visit = [&](size_t u) {
      color[u] = 1;
      path.push_back(u);
      for (const auto& [v, loc] : edges[u]) {
        if (color[v] == 1) {
          std::vector<std::string> cycle;
          auto from = std::find(path.begin(), path.end(), v);
          for (auto it = from; it != path.end(); ++it) cycle.push_back(spec.stages[*it].name);
          cycle.push_back(spec.stages[v].name);
          p_.Add(loc, fmt::format("stage '{}': needs form a cycle: {} (a -> b: a needs b)",
                                  spec.stages[u].name, Join(cycle, " -> ")));
        } else if (color[v] == 0) {
          visit(v);
        }
      }
      path.pop_back();
      color[u] = 2;
    };
    for (size_t i = 0; i < spec.stages.size(); ++i) {
      if (color[i] == 0) visit(i);
    }
  }

  Problems& p_;
  const KindRegistry& kinds_;
  std::string file_;
};

// ---- Expansion -----------------------------------------------------------------------------------

// Calls f(digits) for every combination of digits[i] in [0, radix[i]), the last digit fastest.
template <class F>
void ForEachCombination(const std::vector<size_t>& radix, F&& f) {
  for (size_t r : radix) {
    if (r == 0) return;
  }
  std::vector<size_t> d(radix.size(), 0);
  while (true) {
    f(d);
    size_t i = radix.size();
    while (true) {
      if (i == 0) return;
      --i;
      if (++d[i] < radix[i]) break;
      d[i] = 0;
    }
  }
}

uint64_t MulSat(uint64_t a, uint64_t b) {
  uint64_t r;
  return __builtin_mul_overflow(a, b, &r) ? UINT64_MAX : r;
}
uint64_t AddSat(uint64_t a, uint64_t b) {
  uint64_t r;
  return __builtin_add_overflow(a, b, &r) ? UINT64_MAX : r;
}

void Field(Sha256& h, std::string_view name, std::string_view value) {
  h.Update(name).Update(":").Update(std::to_string(value.size())).Update(":").Update(value);
  h.Update("\n");
}

std::string CanonicalJson(const Json& j) { return j.dump(-1, ' ', false, Json::error_handler_t::replace); }

ShardId ShardIdOf(std::string_view kind, std::string_view params_json, int64_t seed,
                  std::vector<ShardId> needs, std::string_view code_tag) {
  std::sort(needs.begin(), needs.end());
  Sha256 h;
  Field(h, "seedgrid-shard", "1");
  Field(h, "kind", kind);
  Field(h, "params", params_json);
  Field(h, "seed", std::to_string(seed));
  Field(h, "needs", std::to_string(needs.size()));
  for (const auto& n : needs) Field(h, "need", n.hex);
  Field(h, "code", code_tag);
  return ShardId{h.HexDigest().substr(0, 16)};
}

}  // namespace

// ---- Public API ----------------------------------------------------------------------------------

std::string SweepSpec::Hash() const {
  Sha256 h;
  Field(h, "spec", source_text);
  for (const auto& o : overrides) Field(h, "override", o);
  return h.HexDigest();
}

const StageSpec* SweepSpec::FindStage(std::string_view stage_name) const {
  for (const auto& s : stages) {
    if (s.name == stage_name) return &s;
  }
  return nullptr;
}

SweepSpec ParseSpec(std::string_view yaml_text, std::string_view file_name,
                    const std::vector<std::string>& overrides, const KindRegistry& kinds) {
  SweepSpec spec;
  spec.source_path = file_name;
  spec.source_text = yaml_text;
  spec.overrides = overrides;
  Problems p(spec.source_path, spec.overrides);
  auto parsed = LoadTree(spec.source_text, std::nullopt, p);
  if (!parsed) p.Throw();
  Node root = std::move(*parsed);
  if (root.Is(Node::Type::kNull)) {
    root.type = Node::Type::kMap;
    root.loc.line = 1;
  }
  if (!root.Is(Node::Type::kMap)) {
    p.Add(root.loc, "a spec is a map (name, out, stages, report), got " + Describe(root));
    p.Throw();
  }
  for (size_t i = 0; i < overrides.size(); ++i) {
    ApplyOverride(root, overrides[i], static_cast<int>(i), p);
  }
  Parser(p, kinds, file_name).Run(root, spec);
  if (!p.empty()) p.Throw();
  return spec;
}

SweepSpec LoadSpec(const std::string& path, const std::vector<std::string>& overrides,
                   const KindRegistry& kinds) {
  std::ifstream in(path, std::ios::binary);
  if (!in) throw SpecError({fmt::format("{}: cannot read the spec: {}", path, std::strerror(errno))});
  std::stringstream text;
  text << in.rdbuf();
  return ParseSpec(text.str(), path, overrides, kinds);
}

namespace {

// What ExpandSpec settles before it builds a shard: kinds, needs, stage order and counts.
struct Layout {
  std::vector<const KindConfig*> kind;
  std::vector<std::vector<size_t>> needs;
  std::vector<size_t> order;  // each stage after the stages it needs (spec order first)
  uint64_t total = 0;
};

Layout LayOut(const SweepSpec& spec, const KindRegistry& kinds, size_t max_shards) {
  const size_t n = spec.stages.size();
  auto where = [&](const StageSpec& s) { return fmt::format("{}:{}", spec.source_path, s.line); };
  std::vector<std::string> problems;
  Layout l;
  std::vector<const KindConfig*>& kind = l.kind;
  std::vector<std::vector<size_t>>& needs = l.needs;
  kind.resize(n);
  needs.resize(n);
  for (size_t i = 0; i < n; ++i) {
    const StageSpec& st = spec.stages[i];
    kind[i] = kinds.Find(st.kind);
    if (!kind[i]) problems.push_back(fmt::format("{}: unknown kind '{}'", where(st), st.kind));
    for (const auto& need : st.needs) {
      size_t j = 0;
      while (j < n && spec.stages[j].name != need) ++j;
      if (j == n || j == i) {
        problems.push_back(fmt::format("{}: stage '{}' needs '{}', which is not another stage",
                                       where(st), st.name, need));
      } else {
        needs[i].push_back(j);
      }
    }
  }
  if (!problems.empty()) throw SpecError(problems);
  std::vector<size_t>& order = l.order;
  std::vector<bool> placed(n, false);
  while (order.size() < n) {
    size_t i = 0;
    for (; i < n; ++i) {
      if (placed[i]) continue;
      if (std::all_of(needs[i].begin(), needs[i].end(), [&](size_t j) { return placed[j]; })) {
        break;
      }
    }
    if (i == n) {
      throw SpecError({fmt::format("{}: the stages' needs form a cycle", spec.source_path)});
    }
    placed[i] = true;
    order.push_back(i);
  }

  // Count before building anything, so that a 10^12-shard grid fails at once.
  auto own_seeds = [&](const StageSpec& st) -> std::vector<int64_t> {
    return st.seeds.empty() ? std::vector<int64_t>{0} : st.seeds;
  };
  auto inherits_seed = [&](size_t i) { return !spec.stages[i].seeds_given && !needs[i].empty(); };
  std::vector<uint64_t> outputs(n, 0), count(n, 0);
  uint64_t& total = l.total;
  for (size_t i : order) {
    const StageSpec& st = spec.stages[i];
    uint64_t c = inherits_seed(i) ? 1 : own_seeds(st).size();
    for (const auto& a : st.grid) c = MulSat(c, a.values.size());
    if (!st.zip.empty()) c = MulSat(c, st.zip[0].values.size());
    for (size_t j : needs[i]) c = MulSat(c, outputs[j]);
    const bool reduce = st.shards > 1 && kind[i]->has_reduce;
    outputs[i] = reduce ? c : MulSat(c, std::max(st.shards, 1));
    count[i] = MulSat(c, std::max(st.shards, 1) + (reduce ? 1 : 0));
    total = AddSat(total, count[i]);
  }
  if (total > max_shards) {
    std::vector<std::string> parts;
    size_t biggest = order[0];
    for (size_t i : order) {
      parts.push_back(fmt::format("{} {}", spec.stages[i].name,
                                  count[i] == UINT64_MAX ? "> 2^64" : std::to_string(count[i])));
      if (count[i] > count[biggest]) biggest = i;
    }
    throw SpecError({fmt::format(
        "{}: the sweep expands to {} shards ({}), more than max_shards = {}; reduce seeds, axes or "
        "shards",
        where(spec.stages[biggest]), total == UINT64_MAX ? "over 2^64" : std::to_string(total),
        Join(parts), max_shards)});
  }

  return l;
}

}  // namespace

uint64_t CountShards(const SweepSpec& spec, const KindRegistry& kinds, size_t max_shards) {
  return LayOut(spec, kinds, max_shards).total;
}

Plan ExpandSpec(const SweepSpec& spec, const KindRegistry& kinds, size_t max_shards) {
  const size_t n = spec.stages.size();
  auto where = [&](const StageSpec& s) { return fmt::format("{}:{}", spec.source_path, s.line); };
  std::vector<std::string> problems;
  const Layout l = LayOut(spec, kinds, max_shards);
  const auto& kind = l.kind;
  const auto& needs = l.needs;
  const auto& order = l.order;
  const uint64_t total = l.total;
  auto own_seeds = [&](const StageSpec& st) -> std::vector<int64_t> {
    return st.seeds.empty() ? std::vector<int64_t>{0} : st.seeds;
  };
  auto inherits_seed = [&](size_t i) { return !spec.stages[i].seeds_given && !needs[i].empty(); };

  Plan plan;
  plan.spec = spec;
  plan.shards.reserve(total);
  std::unordered_map<std::string, size_t> seen;
  seen.reserve(total);
  std::vector<std::vector<size_t>> outs(n);  // indices into plan.shards
  auto emit = [&](size_t i, Json params, int64_t seed, std::vector<ShardId> need_ids,
                  const Json& axes, ShardRole role) {
    const StageSpec& st = spec.stages[i];
    ShardPlan s;
    s.params_json = CanonicalJson(params);
    s.axes_json = CanonicalJson(axes);
    s.id = ShardIdOf(st.kind, s.params_json, seed, need_ids, CodeTag());
    s.stage_index = static_cast<int>(i);
    s.stage = st.name;
    s.kind = st.kind;
    s.params = std::move(params);
    s.seed = seed;
    s.needs = std::move(need_ids);
    s.axes = axes;
    s.role = role;
    s.resources = st.resources;
    auto [it, fresh] = seen.emplace(s.id.hex, plan.shards.size());
    if (!fresh && problems.size() < 20) {
      const ShardPlan& other = plan.shards[it->second];
      problems.push_back(fmt::format(
          "{}: stage '{}' repeats shard {} of stage '{}' (same kind, params, seed and needs)",
          where(st), st.name, s.id.hex, other.stage));
    }
    plan.shards.push_back(std::move(s));
    return plan.shards.size() - 1;
  };

  for (size_t i : order) {
    const StageSpec& st = spec.stages[i];
    const bool reduce = st.shards > 1 && kind[i]->has_reduce;
    std::vector<size_t> need_radix, grid_radix;
    for (size_t j : needs[i]) need_radix.push_back(outs[j].size());
    for (const auto& a : st.grid) grid_radix.push_back(a.values.size());
    const size_t zip_rows = st.zip.empty() ? 1 : st.zip[0].values.size();

    ForEachCombination(need_radix, [&](const std::vector<size_t>& pick) {
      std::vector<const ShardPlan*> from;
      std::vector<ShardId> need_ids;
      for (size_t k = 0; k < pick.size(); ++k) {
        from.push_back(&plan.shards[outs[needs[i][k]][pick[k]]]);
        need_ids.push_back(from.back()->id);
      }
      std::vector<int64_t> seeds = inherits_seed(i) ? std::vector<int64_t>{from[0]->seed}
                                                    : own_seeds(st);
      for (int64_t seed : seeds) {
        ForEachCombination(grid_radix, [&](const std::vector<size_t>& g) {
          for (size_t z = 0; z < zip_rows; ++z) {
            Json params = st.params;
            Json axes = Json::object();
            for (size_t a = 0; a < st.grid.size(); ++a) {
              ApplyAxis(params, st.grid[a].key, st.grid[a].values[g[a]]);
              axes[st.grid[a].key] = st.grid[a].values[g[a]];
            }
            for (const auto& a : st.zip) {
              ApplyAxis(params, a.key, a.values[z]);
              axes[a.key] = a.values[z];
            }
            for (const ShardPlan* o : from) {
              for (const auto& [k, v] : o->axes.items()) {
                if (!axes.contains(k)) {
                  axes[k] = v;
                } else if (axes[k] != v) {
                  axes[o->stage + ":" + k] = v;
                }
              }
            }
            if (st.shards <= 1) {
              outs[i].push_back(emit(i, params, seed, need_ids, axes, ShardRole::kSingle));
              continue;
            }
            std::vector<ShardId> map_ids;
            for (int s = 0; s < st.shards; ++s) {
              Json p = params;
              p["shard_index"] = s;
              p["shard_count"] = st.shards;
              size_t at = emit(i, std::move(p), seed, need_ids, axes,
                               reduce ? ShardRole::kMap : ShardRole::kSingle);
              map_ids.push_back(plan.shards[at].id);
              if (!reduce) outs[i].push_back(at);
            }
            if (reduce) {
              Json p = params;
              p["role"] = "reduce";
              p["shard_count"] = st.shards;
              outs[i].push_back(emit(i, std::move(p), seed, map_ids, axes, ShardRole::kReduce));
            }
          }
        });
      }
    });
  }
  if (!problems.empty()) throw SpecError(problems);
  return plan;
}

ShardId ComputeShardId(std::string_view kind, const Json& params, int64_t seed,
                       std::vector<ShardId> needs, std::string_view code_tag) {
  return ShardIdOf(kind, CanonicalJson(params), seed, std::move(needs), code_tag);
}


namespace {

std::string_view Trim(std::string_view s) {
  while (!s.empty() && std::isspace(static_cast<unsigned char>(s.front()))) s.remove_prefix(1);
  while (!s.empty() && std::isspace(static_cast<unsigned char>(s.back()))) s.remove_suffix(1);
  return s;
}

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

#include "core/spec/yaml_tree.h"

#include <cctype>
#include <charconv>
#include <cmath>
#include <unordered_map>
#include <unordered_set>

#include <yaml-cpp/depthguard.h>
#include <yaml-cpp/yaml.h>

#include "core/spec/text.h"

namespace seedgrid::spec_detail {

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

std::string Utf8Escaped(std::string_view s) {
  std::string out;
  for (size_t at; (at = InvalidUtf8At(s)) != std::string_view::npos; s.remove_prefix(at + 1)) {
    out += s.substr(0, at);
    out += fmt::format("\\x{:02X}", static_cast<unsigned char>(s[at]));
  }
  return out += s;
}

namespace {

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
    default: break;
  }
  return n;
}

}  // namespace

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

namespace {

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

}  // namespace

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
    case Node::Type::kScalar: return Resolve(n, &p);
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
  if (j.is_string())
    v = fmt::format("'{}'",
                    j.get<std::string>());  // not '+': GCC 12 warns -Wrestrict on it, falsely
  return fmt::format("{} {}", TypeName(j), v);
}

std::string Describe(const Node& n) {
  if (n.Is(Node::Type::kSeq)) return "a list";
  if (n.Is(Node::Type::kMap)) return "a map";
  auto v = Resolve(n, nullptr);
  return v ? Show(*v) : "'" + n.text + "'";
}

}  // namespace seedgrid::spec_detail

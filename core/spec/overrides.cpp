#include "core/spec/overrides.h"

#include <algorithm>

#include <fmt/format.h>

#include "core/spec/text.h"

namespace seedgrid::spec_detail {

// One walk down the path, a map or a list at each step. Kept whole (~100 lines): what a segment
// means depends on state carried across both cases (at a stage, in `stages`, in a grid whose
// keys hold dots), which split functions would have to pass back and forth.
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
          p.Add(loc, fmt::format("bad path: index {} is past the end of '{}' ({} elements)",
                                 segs[i], here, cur->seq.size()));
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

}  // namespace seedgrid::spec_detail

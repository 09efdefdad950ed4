// The config half of every experiment kind: defaults, validation and whether `shards: n`
// adds a reduce shard. No LibTorch: the coordinator links this to validate and expand a spec
// before any GPU time is spent. The runner half (core/runner.h) is registered separately.
//
// Registration is an explicit call (AllKinds() in experiments/all_kinds.cpp calls the
// experiments' Register*Configs of experiments/kinds_config.h), never a static initialiser.
#pragma once

#include <functional>
#include <map>
#include <string>
#include <string_view>
#include <vector>

#include "core/types.h"

namespace seedgrid {

struct KindConfig {
  std::string name;
  std::string summary;  // one line, for `seedgrid kinds`
  // Every accepted param with its default. Spec params are merged over these; a key that is
  // not here is an error ("unknown param"), and so is a value whose JSON type differs
  // (an integer is accepted where a float is expected). A default of null accepts any type.
  Json defaults = Json::object();
  // Extra checks on the merged params; each problem is "dotted.key: message".
  std::function<std::vector<std::string>(const Json& params)> validate;
  // `shards: n` on a stage of this kind makes n map shards plus one reduce shard that needs
  // them all. Without it, `shards: n` makes n independent replicas.
  bool has_reduce = false;
  // Shards of this kind may run on `ranks: k > 1` workers as one gang.
  bool supports_gang = false;
  // The datasets every published file of a shard of this kind holds, given its resolved params
  // and role ("single", "map", "reduce"). A launch checks them when it verifies a done shard's
  // file: a file without one is damaged (moved aside, recomputed). Unset: only the shard
  // attributes are checked.
  std::function<std::vector<std::string>(const Json& params, std::string_view role)> datasets;
  // Params the kind does not list are accepted, with any type (kind: command, whose params are
  // the user's own: `grid: {lr: [...]}` with `{lr}` in its argv).
  bool open_params = false;
  // Top-level params left out of the shard id: where things are on this machine, not what is
  // computed (kind: command's absolute `cwd`, so a moved checkout keeps its shard ids). They
  // still reach the runner and the registry.
  std::vector<std::string> unhashed_params;
  // Settles a stage's params with what only the spec knows, after validate and before
  // expansion: the directory of the spec file and the stage's needs and axes. May rewrite the
  // params (a command stage hashes its `code:` files into them, so an edited script changes
  // the shard ids). Problems as validate's, "dotted.key: message" (exit 2, file:line).
  struct StageContext {
    std::string spec_dir;                // absolute
    std::vector<std::string> needs;      // needed stage names
    std::vector<std::string> axis_keys;  // grid and zip keys (set per shard at expansion)
  };
  std::function<std::vector<std::string>(Json& params, const StageContext& stage)> resolve;
};

class KindRegistry {
 public:
  void Add(KindConfig kind);  // throws std::logic_error on a duplicate name
  const KindConfig* Find(const std::string& name) const;
  std::vector<std::string> Names() const;

 private:
  std::map<std::string, KindConfig> kinds_;
};

// Every kind this build knows: chaos and noop plus the experiments' config halves
// (defined in experiments/all_kinds.cpp).
const KindRegistry& AllKinds();

}  // namespace seedgrid

// A shard's identity and parameters as one immutable value, ShardKey, shared by every shape a
// shard takes on its way: the plan (ShardPlan), the registry's rows (ShardRow, ShardSpecRow),
// the dispatch message and its inputs (RunShard, ShardInput), the runner's view (ShardTaskView)
// and the file's root attributes (ShardFileHeader). Those shapes embed a ShardKey beside what
// is theirs alone (sweep, attempt, paths, state), so passing a shard from one to the next is
// passing its key, not copying seven fields by hand.
//
// Why immutable and shared: a launch builds a key per shard once (expansion) and then hands it
// to the registry insert, to every dispatch message and to each dependent's input list; the
// copies are reference-count bumps, and nothing can change a shard's identity after its id was
// computed from it. To derive a changed key (tests, reindex), copy fields(), edit, construct.
//
// Params and axes are held as their canonical JSON text (what the id hashes, the registry
// stores and the wire carries) and parsed on first use, once, thread-safely: a key that only
// travels (the coordinator, the worker forwarding to its executor) parses nothing.
#pragma once

#include <cstdint>
#include <memory>
#include <mutex>
#include <string>
#include <string_view>
#include <vector>

#include "core/types.h"

namespace seedgrid {

// What a shard is within its stage: the only shard (single), one of `shards: n` (map), or the
// reducer of the maps (reduce). Stored as lowercase text in the registry and in shard files,
// one byte on the wire.
enum class ShardRole : uint8_t { kSingle, kMap, kReduce };
std::string_view ToString(ShardRole r);
ShardRole ParseShardRole(std::string_view s);  // throws std::invalid_argument

class ShardKey {
 public:
  struct Fields {
    ShardId id;
    std::string stage;
    std::string kind;
    int64_t seed = 0;
    ShardRole role = ShardRole::kSingle;
    std::string params_json;  // canonical JSON text of the resolved params; "" is {}
    std::string axes_json;    // axis key -> value (report grouping); "" is {}
    std::vector<ShardId> needs;
  };

  ShardKey();  // the empty key (no id, {} params)
  // From text (registry, wire, file): params and axes parsed when first asked for.
  explicit ShardKey(Fields f);
  // From parsed JSON (the plan): an empty params_json/axes_json is dumped canonically from
  // `params`/`axes`; a given one must be their canonical dump (the caller has it already).
  ShardKey(Fields f, Json params, Json axes);

  const ShardId& id() const { return d_->f.id; }
  const std::string& stage() const { return d_->f.stage; }
  const std::string& kind() const { return d_->f.kind; }
  int64_t seed() const { return d_->f.seed; }
  ShardRole role() const { return d_->f.role; }
  const std::string& params_json() const { return d_->f.params_json; }
  const std::string& axes_json() const { return d_->f.axes_json; }
  const std::vector<ShardId>& needs() const { return d_->f.needs; }
  const Fields& fields() const { return d_->f; }
  // Parsed on first call (throws Json::parse_error on malformed text).
  const Json& params() const;
  const Json& axes() const;
  // The needs as a JSON list of ids (registry column, file attribute).
  std::string needs_json() const;

  // Equal by value (every field), not by identity.
  friend bool operator==(const ShardKey& a, const ShardKey& b);

 private:
  struct Data;
  std::shared_ptr<const Data> d_;
  struct Data {
    Fields f;
    mutable std::once_flag params_once, axes_once;
    mutable Json params, axes;
  };
};

// A needed shard's published output: its key and where its files are. The dispatch message
// carries one per need (InputRef) and the runner reads them (InputArtifact).
struct ShardInput {
  ShardKey key;
  std::string path;          // absolute path of the needed shard's .h5
  std::string artifact_dir;  // absolute path of its extra files (may not exist)
  bool operator==(const ShardInput&) const = default;
};

// "[\"<id>\",...]": the needs as the registry and the shard files store them.
std::string NeedsJson(const std::vector<ShardId>& needs);

}  // namespace seedgrid

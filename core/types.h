// Shared vocabulary of seedgrid: typed ids, the one shard-status enum, the JSON type used for
// parameters, and the exception types that carry user-facing errors.
#pragma once

#include <cstdint>
#include <stdexcept>
#include <string>
#include <string_view>
#include <vector>

#include <nlohmann/json.hpp>

namespace seedgrid {

// Params are plain JSON. nlohmann::json keeps object keys sorted (std::map), so dump() of a
// value is canonical and can be hashed.
using Json = nlohmann::json;

// A shard's content address: 16 lowercase hex digits (the first 64 bits of a SHA-256 over
// kind, canonical params, seed, needed shard ids and the code tag). See core/hash.h.
struct ShardId {
  std::string hex;
  bool operator==(const ShardId&) const = default;
  auto operator<=>(const ShardId&) const = default;
  const std::string& str() const { return hex; }
};

// An MPI rank that works (>= 1). Rank 0 is the coordinator.
struct WorkerId {
  int rank = -1;
  bool operator==(const WorkerId&) const = default;
  auto operator<=>(const WorkerId&) const = default;
};

// The life of a shard. Exactly these five values are stored in the registry (as lowercase text).
enum class ShardStatus : uint8_t { kPending, kRunning, kDone, kFailed, kPreempted };
std::string_view ToString(ShardStatus s);
ShardStatus ParseShardStatus(std::string_view s);  // throws std::invalid_argument

// How one attempt ended.
enum class Outcome : uint8_t { kOk, kError, kCrash, kTimeout, kMemory, kPreempted };
std::string_view ToString(Outcome o);
Outcome ParseOutcome(std::string_view s);

// Where a stage's single-rank shards run: in the executor child (default) or in the worker.
enum class Isolation : uint8_t { kExecutor, kInline };
std::string_view ToString(Isolation i);

// Process exit codes, a contract with scripts (README, issue #2).
namespace exit_code {
inline constexpr int kOk = 0;
inline constexpr int kInternal = 1;
inline constexpr int kUsage = 2;
inline constexpr int kShardsFailed = 3;
inline constexpr int kPreempted = 4;
}  // namespace exit_code

// A user error (bad flag, unknown sweep): printed as is, exit code 2.
class UsageError : public std::runtime_error {
 public:
  using std::runtime_error::runtime_error;
};

// An invalid spec: every problem, each "file:line: message". Exit code 2.
class SpecError : public std::runtime_error {
 public:
  explicit SpecError(std::vector<std::string> problems);
  const std::vector<std::string>& problems() const { return problems_; }

 private:
  std::vector<std::string> problems_;
};

// Build facts, for provenance.
std::string_view SeedgridVersion();
std::string_view GitCommit();
std::string_view CodeTag();

}  // namespace seedgrid

// An id's 16 hex digits are 64 bits of SHA-256 already: they are the hash (cheaper than hashing
// the text, which the coordinator's start-up does a few times per shard). Anything else (a
// malformed id read from a file) falls back to hashing the text.
template <>
struct std::hash<seedgrid::ShardId> {
  size_t operator()(const seedgrid::ShardId& id) const noexcept {
    if (id.hex.size() != 16) return std::hash<std::string>()(id.hex);
    uint64_t v = 0;
    for (char c : id.hex) {
      unsigned d;
      if (c >= '0' && c <= '9') {
        d = static_cast<unsigned>(c - '0');
      } else if (c >= 'a' && c <= 'f') {
        d = static_cast<unsigned>(c - 'a' + 10);
      } else {
        return std::hash<std::string>()(id.hex);
      }
      v = v << 4 | d;
    }
    return static_cast<size_t>(v);
  }
};

#include "core/types.h"

#include <fmt/format.h>

#ifndef SEEDGRID_VERSION
#define SEEDGRID_VERSION "0.0.0"
#endif
#ifndef SEEDGRID_GIT_COMMIT
#define SEEDGRID_GIT_COMMIT "unknown"
#endif
#ifndef SEEDGRID_CODE_TAG
#define SEEDGRID_CODE_TAG "seedgrid-1"
#endif

namespace seedgrid {

std::string_view ToString(ShardStatus s) {
  switch (s) {
    case ShardStatus::kPending: return "pending";
    case ShardStatus::kRunning: return "running";
    case ShardStatus::kDone: return "done";
    case ShardStatus::kFailed: return "failed";
    case ShardStatus::kPreempted: return "preempted";
  }
  return "unknown";
}

ShardStatus ParseShardStatus(std::string_view s) {
  for (auto v : {ShardStatus::kPending, ShardStatus::kRunning, ShardStatus::kDone,
                 ShardStatus::kFailed, ShardStatus::kPreempted}) {
    if (ToString(v) == s) return v;
  }
  throw std::invalid_argument(fmt::format("unknown shard status '{}'", s));
}

std::string_view ToString(Outcome o) {
  switch (o) {
    case Outcome::kOk: return "ok";
    case Outcome::kError: return "error";
    case Outcome::kCrash: return "crash";
    case Outcome::kTimeout: return "timeout";
    case Outcome::kMemory: return "memory";
    case Outcome::kPreempted: return "preempted";
  }
  return "unknown";
}

Outcome ParseOutcome(std::string_view s) {
  for (auto v : {Outcome::kOk, Outcome::kError, Outcome::kCrash, Outcome::kTimeout,
                 Outcome::kMemory, Outcome::kPreempted}) {
    if (ToString(v) == s) return v;
  }
  throw std::invalid_argument(fmt::format("unknown attempt outcome '{}'", s));
}

std::string_view ToString(Isolation i) { return i == Isolation::kInline ? "inline" : "executor"; }

static std::string JoinProblems(const std::vector<std::string>& problems) {
  std::string s =
      fmt::format("invalid spec ({} problem{}):", problems.size(), problems.size() == 1 ? "" : "s");
  for (const auto& p : problems) s += "\n  " + p;
  return s;
}

SpecError::SpecError(std::vector<std::string> problems)
    : std::runtime_error(JoinProblems(problems)), problems_(std::move(problems)) {}

std::string_view SeedgridVersion() { return SEEDGRID_VERSION; }
std::string_view GitCommit() { return SEEDGRID_GIT_COMMIT; }
std::string_view CodeTag() { return SEEDGRID_CODE_TAG; }

}  // namespace seedgrid

// Where a shard's attempt logs live (the store's layout, like ArtifactDirFor in
// core/protocol.h): written by the worker (worker/attempt_log.h), read by `seedgrid logs`,
// `status` and `show` (coordinator/commands.h).
//
//   <out>/<sweep>/<stage>/<id>.h5                      the shard's results
//   <out>/<sweep>/<stage>/<id>.logs/attempt-<n>.out    attempt n's stdout
//   <out>/<sweep>/<stage>/<id>.logs/attempt-<n>.err    attempt n's stderr
//   <out>/<sweep>/<stage>/<id>.logs/attempt-<n>.rank<k>.{out,err}   gang rank k > 0
#pragma once

#include <string>
#include <string_view>

#include <fmt/format.h>

namespace seedgrid {

// `<h5 path without .h5>.logs`.
inline std::string LogDirFor(std::string_view h5_path) {
  std::string_view base = h5_path;
  if (base.ends_with(".h5")) base.remove_suffix(3);
  return std::string(base) + ".logs";
}

// attempt-<n>.out / .err (gang rank k > 0: attempt-<n>.rank<k>.out / .err).
inline std::string AttemptLogName(int attempt, bool err, int gang_rank = 0) {
  const char* ext = err ? "err" : "out";
  if (gang_rank > 0) return fmt::format("attempt-{}.rank{}.{}", attempt, gang_rank, ext);
  return fmt::format("attempt-{}.{}", attempt, ext);
}

}  // namespace seedgrid

#include "coordinator/logs.h"

#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <set>
#include <thread>

#include <fmt/format.h>

#include "core/log_layout.h"
#include "core/store.h"

namespace seedgrid {
namespace {

namespace fs = std::filesystem;

// Copies `path` from byte `*offset` to stdout; *offset moves past what was printed. A file
// that shrank (a log cut back to its head, worker/attempt_log.h) is read on from its new end.
void PrintFrom(const std::string& path, uintmax_t* offset) {
  std::error_code ec;
  const uintmax_t size = fs::file_size(path, ec);
  if (ec) return;
  if (size < *offset) *offset = size;
  if (size == *offset) return;
  std::ifstream f(path, std::ios::binary);
  f.seekg(static_cast<std::streamoff>(*offset));
  char buf[65536];
  while (f) {
    f.read(buf, sizeof buf);
    const std::streamsize n = f.gcount();
    if (n <= 0) break;
    std::fwrite(buf, 1, static_cast<size_t>(n), stdout);
    *offset += static_cast<uintmax_t>(n);
  }
  std::fflush(stdout);
}

int LastAttemptRow(const Registry& reg, const ShardId& id) {
  int n = 0;
  for (const auto& a : reg.Attempts(id)) n = std::max(n, a.n);
  return n;
}

// The attempt a shard runs now or ran last: its rows, plus one while it runs (the running
// attempt has no row yet), or its files (rows rebuilt by reindex have none).
int LatestAttempt(const Registry& reg, const ShardRow& row, const std::string& dir) {
  int n = LastAttemptRow(reg, row.key.id()) + (row.status == ShardStatus::kRunning ? 1 : 0);
  const std::vector<int> logged = LoggedAttempts(dir);
  if (!logged.empty()) n = std::max(n, logged.back());
  return n;
}

// Whether attempt n is over: its row is written, or the shard is not running any more.
bool AttemptEnded(const Registry& reg, const ShardId& id, int n) {
  for (const auto& a : reg.Attempts(id)) {
    if (a.n == n) return true;
  }
  auto row = reg.FindShardByPrefix(id.hex);
  return !row || row->status != ShardStatus::kRunning;
}

}  // namespace

std::string ShardLogDir(const Registry& reg, const ShardRow& row) {
  auto sweep = reg.Sweep(row.sweep);
  if (!sweep) return "";
  return LogDirFor(ShardFilePath(sweep->out_dir, row.sweep, row.key.stage(), row.key.id()));
}

std::vector<int> LoggedAttempts(const std::string& dir) {
  std::set<int> found;
  std::error_code ec;
  for (const auto& e : fs::directory_iterator(dir, ec)) {
    const std::string name = e.path().filename().string();
    int n = 0;
    if (std::sscanf(name.c_str(), "attempt-%d.", &n) == 1 && n > 0) found.insert(n);
  }
  return {found.begin(), found.end()};
}

std::string AttemptLogToShow(const std::string& dir, int attempt) {
  if (dir.empty() || attempt <= 0) return "";
  for (bool err : {true, false}) {
    const std::string p = dir + "/" + AttemptLogName(attempt, err);
    if (fs::exists(p)) return p;
  }
  return "";
}

int CmdLogs(const std::string& registry_path, const LogsOptions& o) {
  Registry reg(registry_path, Registry::Mode::kReadOnly);
  auto row = reg.FindShardByPrefix(o.shard);
  if (!row) throw UsageError(fmt::format("no shard matches '{}' in {}", o.shard, registry_path));
  const std::string dir = ShardLogDir(reg, *row);
  const int latest = LatestAttempt(reg, *row, dir);
  if (latest == 0) {
    throw UsageError(fmt::format("shard {} ({}/{}) has not run yet: no logs in {}",
                                 row->key.id().hex, row->sweep, row->key.stage(), dir));
  }
  const int n = o.attempt > 0 ? o.attempt : latest;
  if (n > latest) {
    throw UsageError(fmt::format("shard {} has no attempt {} (its attempts: 1 to {})",
                                 row->key.id().hex, n, latest));
  }
  const std::string path = dir + "/" + AttemptLogName(n, o.err);
  const char* stream = o.err ? "stderr" : "stdout";
  const bool running = row->status == ShardStatus::kRunning && n == latest;
  if (!(o.follow && running) && !fs::exists(path)) {
    throw UsageError(
        fmt::format("no {} log for shard {} attempt {}: {} does not exist (the attempt "
                    "wrote nothing to {}, or ran before seedgrid kept logs)",
                    stream, row->key.id().hex, n, path, stream));
  }
  uintmax_t offset = 0;
  PrintFrom(path, &offset);
  if (!o.follow) return 0;
  const auto poll = std::chrono::duration<double>(o.poll_s);
  while (!AttemptEnded(reg, row->key.id(), n)) {
    std::this_thread::sleep_for(poll);
    PrintFrom(path, &offset);
  }
  // The worker closes the log (its tail after a cut) before the coordinator records the end.
  PrintFrom(path, &offset);
  return 0;
}

}  // namespace seedgrid

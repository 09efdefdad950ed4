// `seedgrid logs`: an attempt's stdout or stderr as the worker wrote it (core/log_layout.h,
// worker/attempt_log.h), and where `status` and `show` find a shard's logs.
#pragma once

#include <string>
#include <vector>

#include "core/registry.h"

namespace seedgrid {

struct LogsOptions {
  std::string shard;  // id or unique prefix
  int attempt = 0;    // 0: the latest
  bool err = false;   // stderr instead of stdout
  bool follow = false;
  double poll_s = 0.2;  // --follow: how often the file and the registry are read
};

// Prints the log; --follow keeps printing what is appended until the attempt ends (its row
// is in the registry or the shard no longer runs). UsageError when the shard, the attempt or
// the file does not exist, saying which.
int CmdLogs(const std::string& registry_path, const LogsOptions& options);

// A shard's log directory (<out>/<sweep>/<stage>/<id>.logs), from its sweep's out dir.
std::string ShardLogDir(const Registry& reg, const ShardRow& row);
// The attempt numbers that have a log file in `dir`, ascending.
std::vector<int> LoggedAttempts(const std::string& dir);
// What `status` and `show` point to for an attempt: its .err when it exists, else its .out,
// else "".
std::string AttemptLogToShow(const std::string& dir, int attempt);

}  // namespace seedgrid

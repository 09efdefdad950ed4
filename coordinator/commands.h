// The read-side and maintenance subcommands: status, ls, show, reindex, and the dry-run shard
// table. Each returns a process exit code and throws UsageError for bad input.
#pragma once

#include <string>
#include <string_view>

#include "core/spec.h"

namespace seedgrid {

// `seedgrid run --dry-run`: the shard table, with registry statuses when a registry exists.
int PrintDryRun(const Plan& plan, const std::string& registry_path);

int CmdStatus(const std::string& registry_path, const std::string& sweep, bool json);
int CmdLs(const std::string& registry_path, bool json);
int CmdShow(const std::string& registry_path, const std::string& shard_prefix, bool json);
// Rebuilds registry rows (sweeps, shards, metrics) from the shard files under out_dir.
int CmdReindex(const std::string& registry_path, const std::string& out_dir);
// `seedgrid kinds [KIND]`: each kind's params (type, default, meaning); --json, --markdown
// (docs/kinds.md), or --yaml: a starter spec of KIND.
int CmdKinds(const std::string& kind, bool json, bool yaml, bool markdown);

// The line of a (multi-line) error message that names its cause, trimmed: what `status` shows
// of a failed shard. Rule, first match wins:
//   1. the last line holding an errno text ("No space left on device", strerror's words): where
//      HDF5's error stack and Python's OSError put the cause;
//   2. in a Python traceback, its exception line (the last unindented line after
//      "Traceback (most recent call last):");
//   3. in an HDF5 error stack, its innermost frame (the last "#NNN: ..." line);
//   4. the last line saying "error" or "exception" (any case);
//   5. the first line: seedgrid's own messages put their summary there.
// Empty lines never count; "" for an empty message.
std::string ErrorCauseLine(std::string_view error);

// The registry a read-side command uses: --registry, else $SEEDGRID_REGISTRY, else
// runs/registry.sqlite.
std::string DefaultRegistryPath(const std::string& flag);

}  // namespace seedgrid

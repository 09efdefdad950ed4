// The read-side and maintenance subcommands: status, ls, show, reindex, and the dry-run shard
// table. Each returns a process exit code and throws UsageError for bad input.
#pragma once

#include <string>

#include "core/spec.h"

namespace seedgrid {

// `seedgrid run --dry-run`: the shard table, with registry statuses when a registry exists.
int PrintDryRun(const Plan& plan, const std::string& registry_path);

int CmdStatus(const std::string& registry_path, const std::string& sweep, bool json);
int CmdLs(const std::string& registry_path, bool json);
int CmdShow(const std::string& registry_path, const std::string& shard_prefix, bool json);
// Rebuilds registry rows (sweeps, shards, metrics) from the shard files under out_dir.
int CmdReindex(const std::string& registry_path, const std::string& out_dir);
int CmdKinds(bool json);

// The registry a read-side command uses: --registry, else $SEEDGRID_REGISTRY, else
// runs/registry.sqlite.
std::string DefaultRegistryPath(const std::string& flag);

}  // namespace seedgrid

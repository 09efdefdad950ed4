// Checks of published shard files: what a launch (and `seedgrid reindex`) does before it takes a
// file on disk as a shard's result (issue 13).
//
// The contract: a done shard's result is its published HDF5 file, and a file is taken as that
// result only if it
//   1. opens as HDF5 (a truncated, empty or garbage file does not: HDF5 compares the file's
//      length with the end address its superblock records),
//   2. says it is that shard (root attribute seedgrid_shard_id equals the id the file is named
//      after and the registry row's id: a copy of another shard's file is not),
//   3. carries the shard attributes and every dataset its kind promises (KindConfig::datasets).
// A file that fails is moved aside to `<name>.damaged-<UTC time>` (never deleted) and the
// shard is computed again.
//
// Cost. Opening every file costs tens of microseconds each (seconds at 10^5 shards), so a
// launch opens only the files it has not verified in their present state: when a shard
// becomes done the coordinator records the file's stamp (FileStamp: inode, size, mtime and
// ctime, hashed), and at the next launch a file whose stat gives the same stamp is the same,
// unmodified file. Any write, truncation, replacement or copy over it changes its ctime
// (which no user call can set back) and so its stamp, and sends it to the full check above.
#pragma once

#include <sys/stat.h>

#include <cstdint>
#include <optional>
#include <string>
#include <unordered_map>
#include <vector>

#include "core/types.h"

namespace seedgrid {

// A file's stamp from its stat: never 0 (0 means "no stamp recorded").
int64_t FileStamp(const struct stat& st);
// The stamp of the file at `path`; nullopt when it does not exist (or cannot be stat'ed).
std::optional<int64_t> FileStampOf(const std::string& path);

// Why the file at `path` is not shard `id`'s complete result, or nullopt when it is (the
// checks 1-3 above; `datasets` from the kind).
std::optional<std::string> CheckShardFile(const std::string& path, const ShardId& id,
                                          const std::vector<std::string>& datasets);

// Renames `path` to `<path>.damaged-<YYYYmmddTHHMMSSZ>` (a numeric suffix if that exists) and
// returns the new path. Throws std::system_error when the rename fails.
std::string MoveAside(const std::string& path);

// stat(2) of many files, grouped by directory: one open directory per run of paths in the same
// directory, then fstatat by name (the coordinator checks 10^5-10^6 files at start-up).
class DirStat {
 public:
  DirStat() = default;
  ~DirStat();
  DirStat(const DirStat&) = delete;
  DirStat& operator=(const DirStat&) = delete;
  // False when the file does not exist (or its directory does not).
  bool Stat(const std::string& path, struct stat* st);

 private:
  std::unordered_map<std::string, int> dirs_;  // directory -> fd (-1: missing)
  std::string last_dir_ = "\n";                // no directory's name
  int last_fd_ = -1;
};

}  // namespace seedgrid

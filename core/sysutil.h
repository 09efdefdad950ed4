// Small POSIX helpers shared by the registry, the store and the coordinator: who and when we
// are (hostname, UTC timestamps) and the directory fsync that makes a rename(2) durable.
// Failures are thrown as std::system_error carrying errno and the path involved.
#pragma once

#include <string>

namespace seedgrid {

// gethostname(2); "unknown" if it fails (it is only ever used for labels and temp names).
std::string Hostname();

// Seconds since the Unix epoch, with sub-second resolution (CLOCK_REALTIME).
double UnixNow();

// ISO 8601 UTC with second resolution, e.g. "2024-05-01T13:45:07Z".
std::string Iso8601Utc(double unix_seconds);
std::string NowIso8601Utc();

// fsync(2) of a file's data and of a directory's entries. After rename(2) the rename is only
// durable once the directory holding the new name is synced.
void FsyncFile(const std::string& path);
void FsyncDir(const std::string& dir);

// Whether process `pid` of this host is alive: it exists and is not a zombie (ended, not yet
// reaped by its parent). Used to tell a lost MPI rank from one that is only slow.
bool ProcessAlive(int pid);

// mkdir -p that also fsyncs the parent of every directory it created, so a crash right
// after publishing into a fresh directory does not lose the directory entry.
void MakeDirsDurable(const std::string& dir);

}  // namespace seedgrid

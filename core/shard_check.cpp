#include "core/shard_check.h"

#include <fcntl.h>
#include <unistd.h>

#include <cerrno>
#include <cstdio>
#include <cstring>
#include <ctime>
#include <memory>
#include <system_error>

#include <fmt/format.h>

#include "core/store.h"

namespace seedgrid {

namespace {

uint64_t Mix(uint64_t h, uint64_t v) {  // splitmix64 over the running hash
  h ^= v + 0x9E3779B97F4A7C15ull + (h << 6) + (h >> 2);
  h ^= h >> 30;
  h *= 0xBF58476D1CE4E5B9ull;
  h ^= h >> 27;
  h *= 0x94D049BB133111EBull;
  return h ^ (h >> 31);
}

uint64_t Nanos(const timespec& t) {
  return static_cast<uint64_t>(t.tv_sec) * 1000000000ull + static_cast<uint64_t>(t.tv_nsec);
}

// The attributes a shard file carries (core/store.h), beside the id.
constexpr const char* kTextAttrs[] = {"seedgrid_sweep", "seedgrid_stage",  "seedgrid_kind",
                                      "seedgrid_role",  "seedgrid_params", "seedgrid_metrics"};
constexpr const char* kIntAttrs[] = {"seedgrid_seed", "seedgrid_attempt"};

}  // namespace

int64_t FileStamp(const struct stat& st) {
  uint64_t h = Mix(0, static_cast<uint64_t>(st.st_ino));
  h = Mix(h, static_cast<uint64_t>(st.st_dev));
  h = Mix(h, static_cast<uint64_t>(st.st_size));
  h = Mix(h, Nanos(st.st_mtim));
  h = Mix(h, Nanos(st.st_ctim));
  const auto s = static_cast<int64_t>(h);
  return s == 0 ? 1 : s;
}

std::optional<int64_t> FileStampOf(const std::string& path) {
  struct stat st {};
  if (::stat(path.c_str(), &st) != 0) return std::nullopt;
  return FileStamp(st);
}

std::optional<std::string> CheckShardFile(const std::string& path, const ShardId& id,
                                          const std::vector<std::string>& datasets) {
  struct stat st {};
  if (::stat(path.c_str(), &st) != 0)
    return fmt::format("cannot stat it: {}", std::strerror(errno));
  if (!S_ISREG(st.st_mode)) return std::string("not a regular file");
  if (st.st_size == 0) return std::string("empty file");
  std::unique_ptr<H5Reader> r;
  try {
    r = std::make_unique<H5Reader>(path);
  } catch (const std::exception& e) {
    return std::string("does not open as HDF5 (truncated or overwritten?): ") + e.what();
  }
  try {
    auto file_id = r->AttrString("/", "seedgrid_shard_id");
    if (!file_id) return std::string("no seedgrid_shard_id attribute (not a shard file)");
    if (*file_id != id.hex) return fmt::format("it is shard {}'s file, not {}'s", *file_id, id.hex);
    for (const char* a : kTextAttrs) {
      if (!r->AttrString("/", a)) return fmt::format("attribute {} missing", a);
    }
    for (const char* a : kIntAttrs) {
      if (!r->AttrInt("/", a)) return fmt::format("attribute {} missing", a);
    }
    for (const auto& d : datasets) {
      if (!r->Has(d)) return fmt::format("dataset {} missing", d);
    }
  } catch (const std::exception& e) {
    return std::string("unreadable: ") + e.what();
  }
  return std::nullopt;
}

std::string MoveAside(const std::string& path) {
  char stamp[32];
  const std::time_t now = std::time(nullptr);
  std::tm tm{};
  gmtime_r(&now, &tm);
  std::strftime(stamp, sizeof stamp, "%Y%m%dT%H%M%SZ", &tm);
  std::string target = path + ".damaged-" + stamp;
  for (int i = 1; ::access(target.c_str(), F_OK) == 0; ++i) {
    target = fmt::format("{}.damaged-{}.{}", path, stamp, i);
  }
  if (::rename(path.c_str(), target.c_str()) != 0) {
    throw std::system_error(errno, std::generic_category(),
                            fmt::format("cannot move {} aside to {}", path, target));
  }
  return target;
}

DirStat::~DirStat() {
  for (const auto& [dir, fd] : dirs_) {
    if (fd >= 0) ::close(fd);
  }
}

bool DirStat::Stat(const std::string& path, struct stat* st) {
  const size_t slash = path.rfind('/');
  const std::string dir = slash == std::string::npos ? "." : path.substr(0, slash);
  if (dir != last_dir_) {  // paths come grouped by directory: one lookup per group
    last_dir_ = dir;
    auto [it, fresh] = dirs_.try_emplace(dir, -1);
    if (fresh) it->second = ::open(dir.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    last_fd_ = it->second;
  }
  if (last_fd_ < 0) return false;
  const char* name = slash == std::string::npos ? path.c_str() : path.c_str() + slash + 1;
  return ::fstatat(last_fd_, name, st, 0) == 0;
}

}  // namespace seedgrid

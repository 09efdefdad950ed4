#include "core/sysutil.h"

#include <fcntl.h>
#include <signal.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <chrono>
#include <cmath>
#include <ctime>
#include <filesystem>
#include <fstream>
#include <string>
#include <system_error>
#include <vector>

namespace seedgrid {

namespace {

[[noreturn]] void ThrowErrno(const std::string& what, const std::string& path) {
  throw std::system_error(errno, std::generic_category(), what + " " + path);
}

void FsyncPath(const std::string& path, int flags, const char* what) {
  int fd = ::open(path.c_str(), flags | O_CLOEXEC);
  if (fd < 0) ThrowErrno(std::string("open for ") + what, path);
  int rc;
  do rc = ::fsync(fd);
  while (rc != 0 && errno == EINTR);
  int saved = errno;
  ::close(fd);
  // Some filesystems (and /proc-like ones) refuse fsync on directories; nothing to make durable.
  if (rc != 0 && !(saved == EINVAL || saved == ENOTSUP)) {
    errno = saved;
    ThrowErrno(what, path);
  }
}

}  // namespace

std::string Hostname() {
  char buf[256] = {};
  if (::gethostname(buf, sizeof(buf) - 1) != 0 || buf[0] == '\0') return "unknown";
  return buf;
}

double UnixNow() {
  using namespace std::chrono;
  return duration<double>(system_clock::now().time_since_epoch()).count();
}

std::string Iso8601Utc(double unix_seconds) {
  std::time_t t = static_cast<std::time_t>(std::floor(unix_seconds));
  std::tm tm{};
  gmtime_r(&t, &tm);
  char buf[32];
  std::strftime(buf, sizeof(buf), "%Y-%m-%dT%H:%M:%SZ", &tm);
  return buf;
}

std::string NowIso8601Utc() { return Iso8601Utc(UnixNow()); }

bool ProcessAlive(int pid) {
  if (pid <= 0) return false;
  if (::kill(pid, 0) != 0 && errno != EPERM) return false;
  // It exists; a zombie has ended though. /proc/PID/stat: "PID (comm) STATE ...", where comm
  // may hold spaces and parentheses. Unreadable: trust kill(2).
  std::ifstream stat("/proc/" + std::to_string(pid) + "/stat");
  std::string text((std::istreambuf_iterator<char>(stat)), std::istreambuf_iterator<char>());
  const size_t paren = text.rfind(')');
  if (paren == std::string::npos || paren + 2 >= text.size()) return true;
  const char state = text[paren + 2];
  return state != 'Z' && state != 'X';
}

void FsyncFile(const std::string& path) { FsyncPath(path, O_RDONLY, "fsync"); }

void FsyncDir(const std::string& dir) {
  FsyncPath(dir.empty() ? "." : dir, O_RDONLY | O_DIRECTORY, "fsync directory");
}

void MakeDirsDurable(const std::string& dir) {
  namespace fs = std::filesystem;
  if (dir.empty()) return;
  std::vector<fs::path> missing;  // deepest first
  fs::path start = fs::path(dir).lexically_normal();
  if (!start.has_filename()) start = start.parent_path();  // "a/b/" -> "a/b"
  for (fs::path p = start; !p.empty() && !fs::exists(p); p = p.parent_path()) {
    missing.push_back(p);
    if (p == p.parent_path()) break;
  }
  for (auto it = missing.rbegin(); it != missing.rend(); ++it) {
    if (::mkdir(it->c_str(), 0777) != 0 && errno != EEXIST) ThrowErrno("mkdir", it->string());
    fs::path parent = it->parent_path();
    FsyncDir(parent.empty() ? "." : parent.string());
  }
}

}  // namespace seedgrid

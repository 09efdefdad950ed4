#include "core/process.h"

#include <fcntl.h>
#include <signal.h>
#include <spawn.h>
#include <sys/auxv.h>
#include <sys/prctl.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cerrno>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <system_error>
#include <utility>

#include <fmt/format.h>

extern char** environ;

namespace seedgrid {
namespace fs = std::filesystem;

namespace {

[[noreturn]] void ThrowErrno(int err, const std::string& what) {
  throw std::system_error(err, std::generic_category(), what);
}

// The C views of an argv / envp, NULL-terminated (built before the child exists: the fork path's
// child must not allocate).
std::vector<char*> CArray(const std::vector<std::string>& v) {
  std::vector<char*> out;
  out.reserve(v.size() + 1);
  for (const auto& s : v) out.push_back(const_cast<char*>(s.c_str()));
  out.push_back(nullptr);
  return out;
}

// posix_spawn attributes and file actions as RAII, filled from SpawnOptions.
class SpawnSetup {
 public:
  explicit SpawnSetup(const SpawnOptions& o) {
    posix_spawnattr_init(&attr_);
    posix_spawn_file_actions_init(&actions_);
    short flags = 0;
    int rc = 0;
    if (o.new_process_group) {
      flags |= POSIX_SPAWN_SETPGROUP;
      rc = posix_spawnattr_setpgroup(&attr_, 0);
    }
    if (!o.default_signals.empty()) {
      sigset_t dfl;
      sigemptyset(&dfl);
      for (int sig : o.default_signals) sigaddset(&dfl, sig);
      flags |= POSIX_SPAWN_SETSIGDEF;
      if (!rc) rc = posix_spawnattr_setsigdefault(&attr_, &dfl);
    }
    if (o.unblock_signals) {
      sigset_t none;
      sigemptyset(&none);
      flags |= POSIX_SPAWN_SETSIGMASK;
      if (!rc) rc = posix_spawnattr_setsigmask(&attr_, &none);
    }
    if (!rc) rc = posix_spawnattr_setflags(&attr_, flags);
    for (const auto& r : o.redirects) {
      if (rc) break;
      rc = r.from_fd >= 0 ? posix_spawn_file_actions_adddup2(&actions_, r.from_fd, r.child_fd)
                          : posix_spawn_file_actions_addopen(&actions_, r.child_fd, r.path.c_str(),
                                                             r.flags, 0644);
    }
    if (!rc && !o.cwd.empty()) rc = posix_spawn_file_actions_addchdir_np(&actions_, o.cwd.c_str());
    if (rc) {
      Destroy();
      ThrowErrno(rc, "posix_spawn set-up for " + o.argv[0]);
    }
  }
  ~SpawnSetup() { Destroy(); }
  SpawnSetup(const SpawnSetup&) = delete;
  SpawnSetup& operator=(const SpawnSetup&) = delete;
  const posix_spawnattr_t* attr() const { return &attr_; }
  const posix_spawn_file_actions_t* actions() const { return &actions_; }

 private:
  void Destroy() {
    posix_spawnattr_destroy(&attr_);
    posix_spawn_file_actions_destroy(&actions_);
  }
  posix_spawnattr_t attr_;
  posix_spawn_file_actions_t actions_;
};

// The fork path's child, between fork and exec: only async-signal-safe calls, no allocation.
// Reports the errno of what failed through `err_fd` (close-on-exec: EOF means the exec
// succeeded) and exits 127.
[[noreturn]] void ChildAfterFork(const SpawnOptions& o, pid_t parent, char* const* argv,
                                 char* const* envp, int err_fd) {
  auto fail = [err_fd](int err) {
    [[maybe_unused]] ssize_t n = ::write(err_fd, &err, sizeof err);
    ::_exit(127);
  };
  if (::prctl(PR_SET_PDEATHSIG, o.parent_death_signal) != 0) fail(errno);
  if (::getppid() != parent) ::_exit(127);  // the parent ended before prctl: nobody to serve
  if (o.new_process_group && ::setpgid(0, 0) != 0) fail(errno);
  for (int sig : o.default_signals) ::signal(sig, SIG_DFL);
  if (o.unblock_signals) {
    sigset_t none;
    sigemptyset(&none);
    ::sigprocmask(SIG_SETMASK, &none, nullptr);
  }
  for (const auto& r : o.redirects) {
    int fd = r.from_fd;
    if (fd < 0 && (fd = ::open(r.path.c_str(), r.flags, 0644)) < 0) fail(errno);
    if (fd != r.child_fd) {
      if (::dup2(fd, r.child_fd) < 0) fail(errno);
      if (r.from_fd < 0) ::close(fd);
    } else if (::fcntl(fd, F_SETFD, 0) < 0) {  // same number: keep it open across exec
      fail(errno);
    }
  }
  if (!o.cwd.empty() && ::chdir(o.cwd.c_str()) != 0) fail(errno);
  if (envp) environ = const_cast<char**>(envp);
  ::execvp(argv[0], argv);
  fail(errno);
  ::_exit(127);
}

pid_t ForkAndExec(const SpawnOptions& o, char* const* argv, char* const* envp) {
  Pipe err = MakePipe();
  const pid_t parent = ::getpid();
  const pid_t pid = ::fork();
  if (pid < 0) ThrowErrno(errno, "fork for " + o.argv[0]);
  if (pid == 0) ChildAfterFork(o, parent, argv, envp, err.write.get());
  err.write.reset();
  int child_errno = 0;
  ssize_t n;
  while ((n = ::read(err.read.get(), &child_errno, sizeof child_errno)) < 0 && errno == EINTR) {
  }
  if (n > 0) {
    int st;
    while (::waitpid(pid, &st, 0) < 0 && errno == EINTR) {
    }
    ThrowErrno(child_errno, "cannot start " + o.argv[0]);
  }
  return pid;
}

}  // namespace

// ---- Fd, Pipe ----

void Fd::reset(int fd) noexcept {
  if (fd_ >= 0 && fd_ != fd) ::close(fd_);
  fd_ = fd;
}

Pipe MakePipe() {
  int p[2];
  if (::pipe2(p, O_CLOEXEC) != 0) ThrowErrno(errno, "pipe2");
  return {Fd(p[0]), Fd(p[1])};
}

void SetNonBlocking(int fd) {
  const int flags = ::fcntl(fd, F_GETFL);
  if (flags < 0 || ::fcntl(fd, F_SETFL, flags | O_NONBLOCK) < 0)
    ThrowErrno(errno, "fcntl O_NONBLOCK");
}

void WriteAll(int fd, std::string_view data) {
  const char* p = data.data();
  size_t n = data.size();
  while (n > 0) {
    ssize_t w = ::write(fd, p, n);
    if (w < 0) {
      if (errno == EINTR) continue;
      ThrowErrno(errno, "write to pipe");
    }
    p += w;
    n -= static_cast<size_t>(w);
  }
}

// ---- ExitStatus ----

bool ExitStatus::exited() const { return WIFEXITED(raw_); }
int ExitStatus::code() const { return WIFEXITED(raw_) ? WEXITSTATUS(raw_) : -1; }
bool ExitStatus::signaled() const { return WIFSIGNALED(raw_); }
int ExitStatus::signal() const { return WIFSIGNALED(raw_) ? WTERMSIG(raw_) : 0; }
int ExitStatus::ShellCode() const { return signaled() ? 128 + signal() : code(); }

std::string ExitStatus::Describe() const {
  if (signaled()) {
    const int sig = signal();
    const char* abbrev = sigabbrev_np(sig);
    return fmt::format("killed by signal {} (SIG{}{})", sig, abbrev ? abbrev : "?",
                       sig == SIGKILL ? ", possibly the out-of-memory killer" : "");
  }
  if (exited()) return fmt::format("exited with code {}", code());
  return fmt::format("ended with wait status {}", raw_);
}

// ---- Child, Spawn ----

Child::~Child() { KillAndReap(); }

Child::Child(Child&& o) noexcept
    : pid_(std::exchange(o.pid_, -1)), group_(std::exchange(o.group_, false)) {}

Child& Child::operator=(Child&& o) noexcept {
  if (this != &o) {
    KillAndReap();
    pid_ = std::exchange(o.pid_, -1);
    group_ = std::exchange(o.group_, false);
  }
  return *this;
}

void Child::Signal(int sig) const {
  if (pid_ > 0) ::kill(group_ ? -pid_ : pid_, sig);
}

ExitStatus Child::Wait() {
  int st = 0;
  while (::waitpid(pid_, &st, 0) < 0) {
    if (errno != EINTR) ThrowErrno(errno, fmt::format("waitpid {}", pid_));
  }
  pid_ = -1;
  return ExitStatus(st);
}

std::optional<ExitStatus> Child::TryWait() {
  int st = 0;
  pid_t r;
  while ((r = ::waitpid(pid_, &st, WNOHANG)) < 0) {
    if (errno != EINTR) ThrowErrno(errno, fmt::format("waitpid {}", pid_));
  }
  if (r == 0) return std::nullopt;
  pid_ = -1;
  return ExitStatus(st);
}

void Child::KillAndReap() noexcept {
  if (pid_ <= 0) return;
  Signal(SIGKILL);
  int st;
  while (::waitpid(pid_, &st, 0) < 0 && errno == EINTR) {
  }
  pid_ = -1;
}

Child Spawn(const SpawnOptions& o) {
  if (o.argv.empty() || o.argv[0].empty()) {
    throw std::invalid_argument("Spawn: empty argv");
  }
  std::vector<char*> argv = CArray(o.argv);
  std::vector<char*> envp;
  if (o.env) envp = CArray(*o.env);
  char* const* env = o.env ? envp.data() : environ;
  if (o.parent_death_signal != 0) {
    return Child(ForkAndExec(o, argv.data(), o.env ? envp.data() : nullptr), o.new_process_group);
  }
  SpawnSetup setup(o);
  pid_t pid = -1;
  const bool search = o.argv[0].find('/') == std::string::npos;
  int rc = search ? posix_spawnp(&pid, argv[0], setup.actions(), setup.attr(), argv.data(), env)
                  : posix_spawn(&pid, argv[0], setup.actions(), setup.attr(), argv.data(), env);
  if (rc != 0) ThrowErrno(rc, "cannot start " + o.argv[0]);
  return Child(pid, o.new_process_group);
}

std::vector<std::string> ChildEnvironment(const std::vector<std::string>& set,
                                          const std::vector<std::string_view>& drop_prefixes) {
  auto name_of = [](std::string_view v) { return v.substr(0, v.find('=')); };
  std::vector<std::string> env;
  for (char** e = environ; *e; ++e) {
    const std::string_view v(*e);
    bool drop = false;
    for (auto p : drop_prefixes) drop = drop || v.starts_with(p);
    for (const auto& s : set) drop = drop || name_of(v) == name_of(s);
    if (!drop) env.emplace_back(v);
  }
  env.insert(env.end(), set.begin(), set.end());
  return env;
}

// ---- shell words, our own path ----

std::string ShellQuote(std::string_view s) {
  constexpr std::string_view kPlain =
      "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789_-+=./,:@%";
  if (!s.empty() && s.find_first_not_of(kPlain) == std::string_view::npos) return std::string(s);
  std::string out = "'";
  for (char c : s) {
    if (c == '\'') {
      out += "'\\''";
    } else {
      out += c;
    }
  }
  return out + "'";
}

std::string ShellJoin(const std::vector<std::string>& words) {
  std::string out;
  for (const auto& w : words) {
    if (!out.empty()) out += ' ';
    out += ShellQuote(w);
  }
  return out;
}

std::string SelfExe(std::string_view fallback) {
  std::error_code ec;
  fs::path p = fs::read_symlink("/proc/self/exe", ec);
  if (!ec && p.is_absolute()) return p.string();
  const char* execfn = reinterpret_cast<const char*>(::getauxval(AT_EXECFN));
  if (execfn && *execfn) {
    const std::string_view name(execfn);
    if (name.find('/') != std::string_view::npos) {
      fs::path abs = fs::absolute(name, ec);
      if (!ec) return abs.lexically_normal().string();
    } else if (const char* path = std::getenv("PATH")) {
      std::string_view dirs(path);
      while (true) {
        const size_t colon = dirs.find(':');
        fs::path cand = fs::path(dirs.substr(0, colon)) / name;
        if (::access(cand.c_str(), X_OK) == 0)
          return fs::absolute(cand, ec).lexically_normal().string();
        if (colon == std::string_view::npos) break;
        dirs.remove_prefix(colon + 1);
      }
    }
  }
  return std::string(fallback);
}

}  // namespace seedgrid

#include "experiments/command/guard.h"

#include <dirent.h>
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <sys/prctl.h>
#include <sys/signalfd.h>
#include <sys/socket.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstdlib>
#include <cstring>
#include <fstream>
#include <system_error>
#include <unordered_map>
#include <utility>
#include <vector>

#include <fmt/format.h>

extern char** environ;

namespace seedgrid::command {
namespace {

// Guard -> runner, on the status pipe: one 8-byte record each (a pipe writes it whole).
//   kStarted <command pid>, then kEnded <wait status>; or kFailed <errno> and nothing more.
enum : int32_t { kStarted = 1, kFailed = 2, kEnded = 3 };
struct Report {
  int32_t kind;
  int32_t value;
};
// Runner -> guard, on the lifeline: this byte asks for the kill; EOF says the runner is gone.
constexpr char kKillByte = 'K';

// What the guard and the command need, prepared before the fork: after it, no allocation.
struct GuardPlan {
  const SpawnOptions* o;
  char* const* argv;
  char* const* envp;
  pid_t join_group;  // 0: the command leads its own
  int lifeline;      // our end; the runner's end is lifeline_peer
  int lifeline_peer;
  int status;  // write end; the read end is status_peer
  int status_peer;
};

// ---- the guard and the command's child side: async-signal-safe calls only ----

void WriteReport(int fd, int32_t kind, int32_t value) {
  const Report r{kind, value};
  ssize_t n;
  do {
    n = ::write(fd, &r, sizeof r);
  } while (n < 0 && errno == EINTR);
}

long ParsePid(const char* s) {
  long v = 0;
  if (!*s) return -1;
  for (; *s; ++s) {
    if (*s < '0' || *s > '9') return -1;
    v = v * 10 + (*s - '0');
  }
  return v;
}

// The parent pid in /proc/<name>/stat (the field after the state, after the last ')': the
// command name may hold any character); -1 when it cannot be read (the process is gone).
long ParentOf(const char* name) {
  char path[64] = "/proc/";
  size_t len = 6;
  for (const char* s = name; *s && len < sizeof path - 6; ++s) path[len++] = *s;
  std::memcpy(path + len, "/stat", 6);
  const int fd = ::open(path, O_RDONLY | O_CLOEXEC);
  if (fd < 0) return -1;
  char buf[512];
  const ssize_t n = ::read(fd, buf, sizeof buf - 1);
  ::close(fd);
  if (n <= 0) return -1;
  buf[n] = 0;
  const char* p = std::strrchr(buf, ')');
  if (!p || p[1] != ' ' || !p[2] || p[3] != ' ') return -1;
  long v = 0;
  for (p += 4; *p >= '0' && *p <= '9'; ++p) v = v * 10 + (*p - '0');
  return v;
}

struct LinuxDirent64 {
  ino64_t d_ino;
  off64_t d_off;
  unsigned short d_reclen;
  unsigned char d_type;
  char d_name[];
};

// SIGKILL to every child of `self`, found in /proc (getdents64: opendir allocates).
void KillChildren(pid_t self) {
  const int dir = ::open("/proc", O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  if (dir < 0) return;
  alignas(LinuxDirent64) char buf[8192];
  for (;;) {
    const long n = ::syscall(SYS_getdents64, dir, buf, sizeof buf);
    if (n <= 0) break;
    for (long off = 0; off < n;) {
      const auto* d = reinterpret_cast<const LinuxDirent64*>(buf + off);
      off += d->d_reclen;
      const long pid = ParsePid(d->d_name);
      if (pid > 0 && ParentOf(d->d_name) == self) ::kill(static_cast<pid_t>(pid), SIGKILL);
    }
  }
  ::close(dir);
}

// Kills every process under the guard, round after round: each killed process's children
// become the guard's (it is their subreaper) and are killed in the next round. Reaping the
// command on the way sets `status` and `ended`.
void KillTree(pid_t self, pid_t cmd, int* status, bool* ended) {
  auto reaped = [&](pid_t r, int st) {
    if (r == cmd) {
      *status = st;
      *ended = true;
    }
  };
  for (;;) {
    pid_t r;
    int st = 0;
    while ((r = ::waitpid(-1, &st, WNOHANG)) > 0) reaped(r, st);
    if (r < 0 && errno == ECHILD) return;  // no child left (the usual case: one check, no scan)
    KillChildren(self);
    do {
      r = ::waitpid(-1, &st, 0);
    } while (r < 0 && errno == EINTR);
    if (r < 0 && errno == ECHILD) return;
    reaped(r, st);
  }
}

// Closes every descriptor but 0-2 and `keep` (sorted, distinct, > 2).
void CloseAllBut(const int* keep, int n) {
  unsigned first = 3;
  for (int i = 0; i <= n; ++i) {
    const unsigned last = i < n ? static_cast<unsigned>(keep[i]) - 1 : ~0U;
    if (first <= last && ::syscall(SYS_close_range, first, last, 0) != 0) {
      for (unsigned fd = first; fd <= last && fd < 65536; ++fd) ::close(static_cast<int>(fd));
    }
    if (i < n) first = static_cast<unsigned>(keep[i]) + 1;
  }
}

[[noreturn]] void CommandAfterFork(const GuardPlan& p, pid_t guard, int err_fd) {
  auto fail = [err_fd](int err) {
    [[maybe_unused]] ssize_t n = ::write(err_fd, &err, sizeof err);
    ::_exit(127);
  };
  if (::prctl(PR_SET_PDEATHSIG, SIGKILL) != 0) fail(errno);
  if (::getppid() != guard) ::_exit(127);  // the guard is gone: so is the runner
  if (::setpgid(0, p.join_group) != 0) fail(errno);
  for (int sig = 1; sig < NSIG; ++sig) {
    if (sig != SIGKILL && sig != SIGSTOP) ::signal(sig, SIG_DFL);  // none stays ignored
  }
  sigset_t none;
  sigemptyset(&none);
  ::sigprocmask(SIG_SETMASK, &none, nullptr);
  for (const auto& r : p.o->redirects) {
    int fd = r.from_fd;
    if (fd < 0 && (fd = ::open(r.path.c_str(), r.flags, 0644)) < 0) fail(errno);
    if (fd != r.child_fd) {
      if (::dup2(fd, r.child_fd) < 0) fail(errno);
      if (r.from_fd < 0) ::close(fd);
    } else if (::fcntl(fd, F_SETFD, 0) < 0) {
      fail(errno);
    }
  }
  if (!p.o->cwd.empty() && ::chdir(p.o->cwd.c_str()) != 0) fail(errno);
  if (p.envp) environ = const_cast<char**>(p.envp);
  ::execvp(p.argv[0], p.argv);
  fail(errno);
  ::_exit(127);
}

// Forks the command; its pid, or -errno when it could not be started (reaped then).
pid_t ForkCommand(const GuardPlan& p, pid_t self) {
  int err[2];
  if (::pipe2(err, O_CLOEXEC) != 0) return -errno;
  const pid_t cmd = ::fork();
  if (cmd < 0) return -errno;
  if (cmd == 0) CommandAfterFork(p, self, err[1]);
  ::close(err[1]);
  int child_errno = 0;
  ssize_t n;
  while ((n = ::read(err[0], &child_errno, sizeof child_errno)) < 0 && errno == EINTR) {
  }
  ::close(err[0]);
  if (n <= 0) return cmd;  // EOF: exec succeeded
  while (::waitpid(cmd, nullptr, 0) < 0 && errno == EINTR) {
  }
  return -child_errno;
}

// The guard's life (the layout and the rules: guard.h). Long for one reason: it is one
// sequence of system calls after a fork, which helpers would only scatter.
[[noreturn]] void GuardMain(const GuardPlan& p) {
  const pid_t self = ::getpid();
  ::close(p.lifeline_peer);
  ::close(p.status_peer);
  auto give_up = [&](int err) {
    WriteReport(p.status, kFailed, err);
    ::_exit(0);
  };
  // Our own group (the runner's signals to its group are for the command, not for us), every
  // orphan of the command ours, SIGCHLD read from a descriptor, the rest ignored: the guard
  // ends by its protocol only (or SIGKILL).
  if (::setpgid(0, 0) != 0 || ::prctl(PR_SET_CHILD_SUBREAPER, 1) != 0) give_up(errno);
  for (int sig : {SIGTERM, SIGINT, SIGHUP, SIGQUIT, SIGUSR1, SIGUSR2, SIGPIPE}) {
    ::signal(sig, SIG_IGN);
  }
  ::signal(SIGCHLD, SIG_DFL);
  sigset_t chld;
  sigemptyset(&chld);
  sigaddset(&chld, SIGCHLD);
  ::sigprocmask(SIG_BLOCK, &chld, nullptr);
  const int sigfd = ::signalfd(-1, &chld, SFD_CLOEXEC | SFD_NONBLOCK);
  if (sigfd < 0) give_up(errno);
  const pid_t cmd = ForkCommand(p, self);
  if (cmd < 0) give_up(-cmd);
  WriteReport(p.status, kStarted, cmd);
  // Hold nothing of the runner's: stdio to /dev/null, every other descriptor closed, cwd /.
  const int null = ::open("/dev/null", O_RDWR | O_CLOEXEC);
  for (int fd = 0; fd < 3 && null >= 0; ++fd) ::dup2(null, fd);
  int keep[3] = {p.lifeline, p.status, sigfd};
  std::sort(keep, keep + 3);
  CloseAllBut(keep, 3);
  [[maybe_unused]] int rc = ::chdir("/");
  int status = 0;
  bool ended = false;
  while (!ended) {
    pollfd fds[2] = {{p.lifeline, POLLIN, 0}, {sigfd, POLLIN, 0}};
    if (::poll(fds, 2, 1000) < 0 && errno != EINTR) break;
    signalfd_siginfo info;
    while (::read(sigfd, &info, sizeof info) > 0) {
    }
    for (pid_t r; (r = ::waitpid(-1, &status, WNOHANG)) > 0;) {
      if (r == cmd) ended = true;  // other children: orphans that ended on their own
    }
    if (ended || !(fds[0].revents & (POLLIN | POLLHUP | POLLERR))) continue;
    char c = 0;
    const ssize_t n = ::read(p.lifeline, &c, 1);
    if (n < 0 && (errno == EINTR || errno == EAGAIN)) continue;
    ::kill(cmd, SIGKILL);  // asked to, or the runner is gone: either way, now
    if (p.join_group == 0) ::kill(-cmd, SIGKILL);
    if (n == 1 && c == kKillByte) continue;  // reap it above, then report
    break;
  }
  KillTree(self, cmd, &status, &ended);
  if (ended) WriteReport(p.status, kEnded, status);  // nobody reads it when the runner is gone
  ::_exit(0);
}

// NULL-terminated C views, built before the fork.
std::vector<char*> CArray(const std::vector<std::string>& v) {
  std::vector<char*> out;
  out.reserve(v.size() + 1);
  for (const auto& s : v) out.push_back(const_cast<char*>(s.c_str()));
  out.push_back(nullptr);
  return out;
}

}  // namespace

GuardedCommand GuardedCommand::Start(const SpawnOptions& o, pid_t join_group) {
  if (o.argv.empty()) throw std::invalid_argument("GuardedCommand::Start: empty argv");
  const std::vector<char*> argv = CArray(o.argv);
  const std::vector<char*> envp = o.env ? CArray(*o.env) : std::vector<char*>{};
  int life[2];
  if (::socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, life) != 0) {
    throw std::system_error(errno, std::generic_category(), "socketpair (command guard)");
  }
  Fd life_ours(life[0]), life_guard(life[1]);
  Pipe status = MakePipe();
  const GuardPlan plan{&o,
                       argv.data(),
                       o.env ? envp.data() : nullptr,
                       join_group,
                       life_guard.get(),
                       life_ours.get(),
                       status.write.get(),
                       status.read.get()};
  const pid_t guard = ::fork();
  if (guard < 0) throw std::system_error(errno, std::generic_category(), "fork (command guard)");
  if (guard == 0) GuardMain(plan);
  GuardedCommand g;
  g.guard_ = guard;
  g.lifeline_ = std::move(life_ours);
  g.status_ = std::move(status.read);
  life_guard.reset();
  status.write.reset();
  Report r{};
  size_t got = 0;
  while (got < sizeof r) {
    const ssize_t n = ::read(g.status_.get(), reinterpret_cast<char*>(&r) + got, sizeof r - got);
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) break;
    got += static_cast<size_t>(n);
  }
  if (got < sizeof r || r.kind != kStarted) {
    const ExitStatus guard_status = g.Reap();
    if (got == sizeof r && r.kind == kFailed) {
      throw std::system_error(r.value, std::generic_category(), "start " + o.argv[0]);
    }
    throw std::runtime_error(fmt::format("the command's guard process ended before starting it: {}",
                                         guard_status.Describe()));
  }
  g.pid_ = r.value;
  g.group_ = join_group > 0 ? join_group : g.pid_;
  SetNonBlocking(g.status_.get());
  return g;
}

GuardedCommand::~GuardedCommand() { Release(); }

GuardedCommand::GuardedCommand(GuardedCommand&& o) noexcept { *this = std::move(o); }

GuardedCommand& GuardedCommand::operator=(GuardedCommand&& o) noexcept {
  if (this == &o) return *this;
  Release();
  guard_ = std::exchange(o.guard_, -1);
  pid_ = std::exchange(o.pid_, -1);
  group_ = std::exchange(o.group_, -1);
  lifeline_ = std::move(o.lifeline_);
  status_ = std::move(o.status_);
  buf_ = std::move(o.buf_);
  status_seen_ = std::exchange(o.status_seen_, std::nullopt);
  done_ = std::exchange(o.done_, std::nullopt);
  reported_ = std::exchange(o.reported_, false);
  return *this;
}

// Closing the lifeline is the guard's signal to kill the command's tree and exit.
void GuardedCommand::Release() noexcept {
  lifeline_.reset();
  if (guard_ > 0) {
    while (::waitpid(guard_, nullptr, 0) < 0 && errno == EINTR) {
    }
    guard_ = -1;
  }
}

ExitStatus GuardedCommand::Reap() {
  int raw = 0;
  pid_t r;
  do {
    r = ::waitpid(guard_, &raw, 0);
  } while (r < 0 && errno == EINTR);
  guard_ = -1;
  lifeline_.reset();
  return ExitStatus(raw);
}

// Reads the guard's reports; true once it reported the end or closed the pipe.
bool GuardedCommand::ReadReport(bool block) {
  for (;;) {
    while (buf_.size() >= sizeof(Report)) {
      Report r;
      std::memcpy(&r, buf_.data(), sizeof r);
      buf_.erase(0, sizeof r);
      if (r.kind == kEnded) {
        status_seen_ = ExitStatus(r.value);
        reported_ = true;
        return true;
      }
    }
    if (block) {
      pollfd p{status_.get(), POLLIN, 0};
      if (::poll(&p, 1, -1) < 0 && errno != EINTR) {
        throw std::system_error(errno, std::generic_category(), "poll (command guard)");
      }
    }
    char tmp[64];
    const ssize_t n = ::read(status_.get(), tmp, sizeof tmp);
    if (n > 0) {
      buf_.append(tmp, static_cast<size_t>(n));
      continue;
    }
    if (n == 0) return true;  // the guard is gone without a report
    if (errno == EINTR || errno == EAGAIN || errno == EWOULDBLOCK) {
      if (!block) return false;
      continue;
    }
    throw std::system_error(errno, std::generic_category(), "read (command guard)");
  }
}

// The guard's report; without one (the guard was killed), the guard's death stands for the
// command's: a signal as such, anything else as SIGKILL (never as a success).
ExitStatus GuardedCommand::Outcome(ExitStatus guard) const {
  if (status_seen_) return *status_seen_;
  return guard.signaled() ? guard : ExitStatus(SIGKILL);
}

std::optional<ExitStatus> GuardedCommand::TryWait() {
  if (done_) return done_;
  if (guard_ <= 0 || !ReadReport(false)) return std::nullopt;
  done_ = Outcome(Reap());
  return done_;
}

ExitStatus GuardedCommand::Wait() {
  if (done_) return *done_;
  if (guard_ <= 0) throw std::logic_error("GuardedCommand::Wait: no command");
  ReadReport(true);
  done_ = Outcome(Reap());
  return *done_;
}

void GuardedCommand::Kill() {
  if (done_ || !lifeline_) return;
  // MSG_NOSIGNAL: a guard that is already gone is no SIGPIPE of ours.
  [[maybe_unused]] ssize_t n = ::send(lifeline_.get(), &kKillByte, 1, MSG_NOSIGNAL);
}

int64_t GuardedCommand::TreeRssKb() const {
  if (guard_ <= 0) return 0;
  std::unordered_map<pid_t, std::vector<pid_t>> children;
  DIR* d = ::opendir("/proc");
  if (!d) return 0;
  while (dirent* e = ::readdir(d)) {
    const long pid = ParsePid(e->d_name);
    if (pid <= 0) continue;
    const long parent = ParentOf(e->d_name);
    if (parent > 0) children[static_cast<pid_t>(parent)].push_back(static_cast<pid_t>(pid));
  }
  ::closedir(d);
  static const int64_t page_kb = ::sysconf(_SC_PAGESIZE) / 1024;
  int64_t kb = 0;
  std::vector<pid_t> todo = {guard_};
  while (!todo.empty()) {
    const pid_t p = todo.back();
    todo.pop_back();
    auto it = children.find(p);
    if (it == children.end()) continue;
    for (pid_t c : it->second) {
      std::ifstream statm(fmt::format("/proc/{}/statm", c));
      int64_t size = 0, resident = 0;
      if (statm >> size >> resident) kb += resident * page_kb;
      todo.push_back(c);
    }
  }
  return kb;
}

std::optional<std::string> GuardedCommand::OverMemory(int64_t limit_mb) const {
  if (limit_mb <= 0) return std::nullopt;
  const int64_t kb = TreeRssKb();
  if (kb <= limit_mb * 1024) return std::nullopt;
  return fmt::format(
      "memory limit exceeded: the command's processes hold {} MiB resident, limit {} MiB",
      kb / 1024, limit_mb);
}

}  // namespace seedgrid::command

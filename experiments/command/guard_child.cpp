#include "experiments/command/guard_child.h"

#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <sys/prctl.h>
#include <sys/signalfd.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstring>

extern char** environ;

namespace seedgrid::command {
namespace {

void WriteReport(int fd, int32_t kind, int32_t value) {
  const GuardReport r{kind, value};
  ssize_t n;
  do {
    n = ::write(fd, &r, sizeof r);
  } while (n < 0 && errno == EINTR);
}

long ParsePidImpl(const char* s) {
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
long ParentOfImpl(const char* name) {
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
      const long pid = ParsePidImpl(d->d_name);
      if (pid > 0 && ParentOfImpl(d->d_name) == self) ::kill(static_cast<pid_t>(pid), SIGKILL);
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
  for (int i = 0; i < p.n_redirects; ++i) {
    const GuardRedirect& r = p.redirects[i];
    int fd = r.from_fd;
    if (fd < 0 && (fd = ::open(r.path, r.flags, 0644)) < 0) fail(errno);
    if (fd != r.child_fd) {
      if (::dup2(fd, r.child_fd) < 0) fail(errno);
      if (r.from_fd < 0) ::close(fd);
    } else if (::fcntl(fd, F_SETFD, 0) < 0) {
      fail(errno);
    }
  }
  if (p.cwd && *p.cwd && ::chdir(p.cwd) != 0) fail(errno);
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

}  // namespace

long ParseProcPid(const char* name) { return ParsePidImpl(name); }
long ParentOfProc(const char* pid) { return ParentOfImpl(pid); }

// The guard's life (the layout and the rules: guard.h). ~65 lines for one reason: it is one
// sequence of system calls after a fork, which helpers would only scatter.
void GuardMain(const GuardPlan& p) {
  const pid_t self = ::getpid();
  for (int fd : p.close_first) {
    if (fd >= 0) ::close(fd);
  }
  auto give_up = [&](int err) {
    WriteReport(p.status, kGuardFailed, err);
    ::_exit(0);
  };
  // Neither end may reach the command (a started guard got them without close-on-exec).
  if (::fcntl(p.lifeline, F_SETFD, FD_CLOEXEC) != 0 || ::fcntl(p.status, F_SETFD, FD_CLOEXEC) != 0)
    give_up(errno);
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
  WriteReport(p.status, kGuardStarted, cmd);
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
    int st = 0;
    for (pid_t r; (r = ::waitpid(-1, &st, WNOHANG)) > 0;) {
      if (r == cmd) {  // other children: orphans that ended on their own
        status = st;
        ended = true;
      }
    }
    if (ended || !(fds[0].revents & (POLLIN | POLLHUP | POLLERR))) continue;
    char c = 0;
    const ssize_t n = ::read(p.lifeline, &c, 1);
    if (n < 0 && (errno == EINTR || errno == EAGAIN)) continue;
    ::kill(cmd, SIGKILL);  // asked to, or the runner is gone: either way, now
    if (p.join_group == 0) ::kill(-cmd, SIGKILL);
    if (n == 1 && c == kGuardKillByte) continue;  // reap it above, then report
    break;
  }
  KillTree(self, cmd, &status, &ended);
  if (ended) WriteReport(p.status, kGuardEnded, status);  // nobody reads it when the runner is gone
  ::_exit(0);
}

}  // namespace seedgrid::command

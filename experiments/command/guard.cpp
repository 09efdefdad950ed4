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
#include <filesystem>
#include <fstream>
#include <system_error>
#include <unordered_map>
#include <utility>
#include <vector>

#include <fmt/format.h>

#include "experiments/command/guard_child.h"

namespace seedgrid::command {
namespace {

namespace fs = std::filesystem;

// NULL-terminated C views, built before the fork.
std::vector<char*> CArray(const std::vector<std::string>& v) {
  std::vector<char*> out;
  out.reserve(v.size() + 1);
  for (const auto& s : v) out.push_back(const_cast<char*>(s.c_str()));
  out.push_back(nullptr);
  return out;
}

// seedgrid-guard next to this program, or "" (then the guard is a fork of ours).
const std::string& GuardProgram() {
  static const std::string path = [] {
    const std::string self = SelfExe();
    if (self.empty()) return std::string();
    const std::string p = (fs::path(self).parent_path() / "seedgrid-guard").string();
    return ::access(p.c_str(), X_OK) == 0 ? p : std::string();
  }();
  return path;
}

// Starts seedgrid-guard with the command's environment, cwd and descriptors, the lifeline and
// the status pipe on numbers above every descriptor the redirects touch (placed first, so no
// redirect clobbers their sources or they a redirect's).
Child SpawnGuard(const std::string& program, const SpawnOptions& o, pid_t join_group, int lifeline,
                 int status) {
  int top = std::max({2, lifeline, status});
  for (const auto& r : o.redirects) top = std::max({top, r.child_fd, r.from_fd});
  SpawnOptions s;
  s.argv = {program, std::to_string(top + 1), std::to_string(top + 2), std::to_string(join_group),
            "--"};
  s.argv.insert(s.argv.end(), o.argv.begin(), o.argv.end());
  s.env = o.env;
  s.cwd = o.cwd;
  s.redirects = {Redirect::Dup(top + 1, lifeline), Redirect::Dup(top + 2, status)};
  s.redirects.insert(s.redirects.end(), o.redirects.begin(), o.redirects.end());
  s.unblock_signals = true;
  return Spawn(s);
}

// The fallback: a fork of ours runs GuardMain (guard_child.h: nothing there allocates).
pid_t ForkGuard(const SpawnOptions& o, pid_t join_group, int lifeline, int status,
                int lifeline_peer, int status_peer) {
  const std::vector<char*> argv = CArray(o.argv);
  const std::vector<char*> envp = o.env ? CArray(*o.env) : std::vector<char*>{};
  std::vector<GuardRedirect> redirects;
  for (const auto& r : o.redirects) {
    redirects.push_back({r.child_fd, r.from_fd, r.path.c_str(), r.flags});
  }
  GuardPlan plan{};
  plan.argv = argv.data();
  plan.envp = o.env ? envp.data() : nullptr;
  plan.cwd = o.cwd.c_str();
  plan.redirects = redirects.data();
  plan.n_redirects = static_cast<int>(redirects.size());
  plan.join_group = join_group;
  plan.lifeline = lifeline;
  plan.status = status;
  plan.close_first[0] = lifeline_peer;
  plan.close_first[1] = status_peer;
  const pid_t guard = ::fork();
  if (guard < 0) throw std::system_error(errno, std::generic_category(), "fork (command guard)");
  if (guard == 0) GuardMain(plan);
  return guard;
}

}  // namespace

GuardedCommand GuardedCommand::Start(const SpawnOptions& o, pid_t join_group) {
  return Start(o, join_group, GuardProgram());
}

GuardedCommand GuardedCommand::Start(const SpawnOptions& o, pid_t join_group,
                                     const std::string& guard_program) {
  if (o.argv.empty()) throw std::invalid_argument("GuardedCommand::Start: empty argv");
  int life[2];
  if (::socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, life) != 0) {
    throw std::system_error(errno, std::generic_category(), "socketpair (command guard)");
  }
  Fd life_ours(life[0]), life_guard(life[1]);
  Pipe status = MakePipe();
  GuardedCommand g;
  if (!guard_program.empty()) {
    g.spawned_ = SpawnGuard(guard_program, o, join_group, life_guard.get(), status.write.get());
    g.guard_ = g.spawned_.pid();
  } else {
    g.guard_ = ForkGuard(o, join_group, life_guard.get(), status.write.get(), life_ours.get(),
                         status.read.get());
  }
  g.lifeline_ = std::move(life_ours);
  g.status_ = std::move(status.read);
  life_guard.reset();
  status.write.reset();
  GuardReport r{};
  size_t got = 0;
  while (got < sizeof r) {
    const ssize_t n = ::read(g.status_.get(), reinterpret_cast<char*>(&r) + got, sizeof r - got);
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) break;
    got += static_cast<size_t>(n);
  }
  if (got < sizeof r || r.kind != kGuardStarted) {
    const ExitStatus guard_status = g.Reap();
    if (got == sizeof r && r.kind == kGuardFailed) {
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
  spawned_ = std::move(o.spawned_);
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
    try {
      Reap();
    } catch (...) {
      // Child::Wait throws only on a waitpid error, with nothing left to reap.
    }
  }
}

ExitStatus GuardedCommand::Reap() {
  if (spawned_.running()) {
    guard_ = -1;
    lifeline_.reset();
    return spawned_.Wait();
  }
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
    while (buf_.size() >= sizeof(GuardReport)) {
      GuardReport r;
      std::memcpy(&r, buf_.data(), sizeof r);
      buf_.erase(0, sizeof r);
      if (r.kind == kGuardEnded) {
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
  [[maybe_unused]] ssize_t n = ::send(lifeline_.get(), &kGuardKillByte, 1, MSG_NOSIGNAL);
}

void GuardedCommand::Terminate() {
  if (done_ || group_ <= 0 || group_ != pid_) return;
  // ESRCH: the group is already gone (the command ended; the guard reports it).
  if (::kill(-group_, SIGTERM) != 0 && errno != ESRCH)
    throw std::system_error(errno, std::generic_category(), "kill(SIGTERM) to a command's group");
}

int64_t GuardedCommand::TreeRssKb() const {
  if (guard_ <= 0) return 0;
  std::unordered_map<pid_t, std::vector<pid_t>> children;
  DIR* d = ::opendir("/proc");
  if (!d) return 0;
  while (dirent* e = ::readdir(d)) {
    const long pid = ParseProcPid(e->d_name);
    if (pid <= 0) continue;
    const long parent = ParentOfProc(e->d_name);
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

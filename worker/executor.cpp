#include "worker/executor.h"

#include <fcntl.h>
#include <signal.h>
#include <spawn.h>
#include <sys/prctl.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cerrno>
#include <chrono>
#include <condition_variable>
#include <cstdlib>
#include <cstring>
#include <mutex>
#include <system_error>
#include <thread>

#include <fmt/format.h>

#include "core/runner.h"
#include "core/sysutil.h"
#include "worker/shard_exec.h"

extern char** environ;

namespace seedgrid {
namespace {

void WriteAll(int fd, const char* p, size_t n) {
  while (n > 0) {
    ssize_t w = ::write(fd, p, n);
    if (w < 0) {
      if (errno == EINTR) continue;
      throw std::system_error(errno, std::generic_category(), "write to pipe");
    }
    p += w;
    n -= static_cast<size_t>(w);
  }
}

// Blocking read of one whole frame; false on EOF.
bool ReadFrame(int fd, std::string& buf, std::string* frame) {
  for (;;) {
    if (auto n = WholeFrameSize(buf)) {
      frame->assign(buf, 0, *n);
      buf.erase(0, *n);
      return true;
    }
    char tmp[65536];
    ssize_t r = ::read(fd, tmp, sizeof tmp);
    if (r < 0) {
      if (errno == EINTR) continue;
      throw std::system_error(errno, std::generic_category(), "read from pipe");
    }
    if (r == 0) return false;
    buf.append(tmp, static_cast<size_t>(r));
  }
}

int EnvInt(const char* name, int def) {
  const char* v = std::getenv(name);
  return v && *v ? std::atoi(v) : def;
}

constexpr const char* kParentEnv = "SEEDGRID_EXECUTOR_PARENT";

// Whether this executor leads its own process group (ExecutorProcess::Start makes it so):
// then everything a shard started is in that group too, and dies with it.
volatile sig_atomic_t g_own_group = 0;

// Async-signal-safe: SIGKILL to the executor's group (itself and whatever its shards started),
// or to itself alone when it was not started as a group leader (never to the worker's group).
void KillExecutorGroup() { ::kill(g_own_group ? 0 : ::getpid(), SIGKILL); }

void OnWorkerDeath(int) { KillExecutorGroup(); }

// The executor must not outlive its worker (a hung shard would run on forever, parented to
// init): the kernel sends SIGHUP when the worker's thread that spawned us (its main thread)
// ends, and the handler kills the whole group. The worker may have died before prctl: then
// the parent is already another process, and the set-up ends the same way.
void DieWithWorker() {
  g_own_group = ::getpgrp() == ::getpid();
  struct sigaction sa {};
  sa.sa_handler = OnWorkerDeath;
  sigemptyset(&sa.sa_mask);
  if (::sigaction(SIGHUP, &sa, nullptr) != 0 || ::prctl(PR_SET_PDEATHSIG, SIGHUP) != 0) {
    throw std::system_error(errno, std::generic_category(), "executor: PR_SET_PDEATHSIG");
  }
  const char* parent = std::getenv(kParentEnv);
  if (parent && *parent && std::atol(parent) != static_cast<long>(::getppid())) KillExecutorGroup();
}

// Frames to the worker, from the shard's thread (Progress, ShardDone) and the memory watch
// (its ShardDone): one whole frame at a time.
class FrameOut {
 public:
  explicit FrameOut(int fd) : fd_(fd) {}
  // Called with mu() held.
  void WriteLocked(const FromWorker& msg) {
    buf_.clear();
    Encode(msg, &buf_);
    WriteAll(fd_, buf_.data(), buf_.size());
  }
  std::mutex& mu() { return mu_; }

 private:
  int fd_;
  std::mutex mu_;
  std::string buf_;
};

// A shard's memory limit applies to what the shard adds: the growth of the executor's
// resident set above its baseline, read just before the shard starts (the runtime, ~130-160
// MiB with LibTorch, and models cached by earlier shards are not the shard's). A thread polls
// /proc/self/statm every 20 ms while a shard with a limit runs; over the limit it reports the
// attempt as a `memory` outcome and kills the executor's group: a runner's thread cannot be
// stopped, only its process. That ShardDone is the executor's last frame (executor.h).
class MemoryWatch {
 public:
  explicit MemoryWatch(FrameOut& out) : out_(out) {}
  ~MemoryWatch() {
    {
      std::lock_guard lock(mu_);
      stop_ = true;
    }
    cv_.notify_one();
    if (thread_.joinable()) thread_.join();
  }

  void Arm(const RunShard& task, double start) {
    if (task.memory_mb <= 0) return;
    std::lock_guard lock(mu_);
    id_ = task.id;
    attempt_ = task.attempt;
    limit_kb_ = task.memory_mb * 1024;
    start_ = start;
    baseline_kb_ = CurrentRssKb();
    armed_ = true;
    if (!thread_.joinable()) thread_ = std::thread([this] { Loop(); });
    cv_.notify_one();
  }
  void Disarm() {
    std::lock_guard lock(mu_);
    armed_ = false;
  }

 private:
  void Loop() {
    std::unique_lock lock(mu_);
    while (!stop_) {
      if (!armed_) {
        cv_.wait(lock, [&] { return stop_ || armed_; });
        continue;
      }
      cv_.wait_for(lock, std::chrono::milliseconds(20));
      if (!armed_ || stop_) continue;
      const int64_t rss = CurrentRssKb();
      if (rss - baseline_kb_ > limit_kb_) Kill(rss);
    }
  }

  // With mu_ held (the shard's thread cannot report it done meanwhile, see Disarm).
  [[noreturn]] void Kill(int64_t rss_kb) {
    ShardDone d;
    d.id = id_;
    d.attempt = attempt_;
    d.start = start_;
    d.end = UnixNow();
    d.outcome = Outcome::kMemory;
    d.error = fmt::format("memory limit exceeded: the shard grew the executor's RSS by {} MiB "
                          "(from {} to {} MiB), limit {} MiB",
                          (rss_kb - baseline_kb_) / 1024, baseline_kb_ / 1024, rss_kb / 1024,
                          limit_kb_ / 1024);
    d.peak_rss_kb = rss_kb;
    {
      std::lock_guard out_lock(out_.mu());
      try {
        out_.WriteLocked(FromWorker{std::move(d)});
      } catch (const std::exception&) {
        // The worker is gone: nobody to tell.
      }
      KillExecutorGroup();
      std::abort();  // not reached: SIGKILL cannot be caught
    }
  }

  FrameOut& out_;
  std::mutex mu_;
  std::condition_variable cv_;
  std::thread thread_;
  bool armed_ = false, stop_ = false;
  ShardId id_;
  int attempt_ = 0;
  int64_t limit_kb_ = 0, baseline_kb_ = 0;
  double start_ = 0;
};

}  // namespace

int RunExecutorMain(int in_fd, int out_fd) {
  DieWithWorker();
  ::signal(SIGPIPE, SIG_IGN);
  // The worker decides this process's fate (it is killed at shutdown); a terminal's Ctrl-C or
  // Slurm's walltime signal is for the coordinator. SIGTERM is the worker's timeout signal.
  ::signal(SIGINT, SIG_IGN);
  ::signal(SIGUSR1, SIG_IGN);
  ::signal(SIGTERM, SIG_DFL);
  const int threads = std::max(1, EnvInt("SEEDGRID_THREADS", 1));
  const char* dev = std::getenv("SEEDGRID_DEVICE");
  const std::string device = dev && *dev ? dev : "cpu";
  const RunnerRegistry& runners = AllRunners();
  ConfigureComputeProcess(threads);
  std::string buf, frame;
  FrameOut out(out_fd);
  MemoryWatch memory(out);
  TakePeakRssKb();
  int64_t rss_kb = 0;
  double rss_read_at = 0;
  while (ReadFrame(in_fd, buf, &frame)) {
    ToWorker msg = DecodeToWorker(frame);
    if (std::holds_alternative<Shutdown>(msg)) break;
    const auto& task = std::get<RunShard>(msg);
    LocalRunOptions opts;
    opts.threads = threads;
    opts.device = device;
    opts.on_progress = [&](int64_t step, int64_t total) {
      std::lock_guard lock(out.mu());
      out.WriteLocked(FromWorker{Progress{task.id, task.attempt, step, total}});
    };
    memory.Arm(task, UnixNow());
    ShardDone done = RunShardLocally(task, runners, opts);
    memory.Disarm();
    // The peak (VmHWM, then reset) costs a /proc read and a page-table walk: worth it for
    // shards of 50 ms and more; quicker ones report the current RSS, read at most every 10 ms
    // (a /proc read is a few µs, as much as a no-op shard's whole round trip).
    if (done.end - done.start >= 0.05) {
      done.peak_rss_kb = TakePeakRssKb();
    } else {
      if (done.end - rss_read_at >= 0.01) {
        rss_kb = CurrentRssKb();
        rss_read_at = done.end;
      }
      done.peak_rss_kb = rss_kb;
    }
    std::lock_guard lock(out.mu());
    out.WriteLocked(FromWorker{std::move(done)});
  }
  return 0;
}

ExecutorProcess::ExecutorProcess(std::string binary, std::vector<std::string> env_overrides)
    : binary_(std::move(binary)), env_(std::move(env_overrides)) {}

ExecutorProcess::~ExecutorProcess() {
  if (pid_ > 0) {
    ::kill(-pid_, SIGKILL);
    int st;
    while (::waitpid(pid_, &st, 0) < 0 && errno == EINTR) {
    }
  }
  CloseFds();
}

void ExecutorProcess::CloseFds() {
  for (int* fd : {&to_child_, &from_child_, &err_child_}) {
    if (*fd >= 0) ::close(*fd);
    *fd = -1;
  }
}

namespace {

// posix_spawnattr_t as RAII, set up for an executor: its own process group (so the worker can
// signal it and whatever its shards started as one, and so Open MPI's signals to the worker's
// group do not reach it), default SIGTERM and SIGHUP (the worker ignores SIGTERM; ignored
// signals would stay ignored across exec), nothing blocked.
class SpawnAttr {
 public:
  SpawnAttr() {
    if (int rc = posix_spawnattr_init(&attr_)) {
      throw std::system_error(rc, std::generic_category(), "posix_spawnattr_init");
    }
    sigset_t dfl, none;
    sigemptyset(&dfl);
    sigaddset(&dfl, SIGTERM);
    sigaddset(&dfl, SIGHUP);
    sigemptyset(&none);
    int rc = posix_spawnattr_setflags(&attr_, POSIX_SPAWN_SETPGROUP | POSIX_SPAWN_SETSIGDEF |
                                                  POSIX_SPAWN_SETSIGMASK);
    if (!rc) rc = posix_spawnattr_setpgroup(&attr_, 0);
    if (!rc) rc = posix_spawnattr_setsigdefault(&attr_, &dfl);
    if (!rc) rc = posix_spawnattr_setsigmask(&attr_, &none);
    if (rc) {
      posix_spawnattr_destroy(&attr_);
      throw std::system_error(rc, std::generic_category(), "posix_spawnattr for the executor");
    }
  }
  ~SpawnAttr() { posix_spawnattr_destroy(&attr_); }
  SpawnAttr(const SpawnAttr&) = delete;
  SpawnAttr& operator=(const SpawnAttr&) = delete;
  const posix_spawnattr_t* get() const { return &attr_; }

 private:
  posix_spawnattr_t attr_;
};

}  // namespace

void ExecutorProcess::Start() {
  CloseFds();
  rbuf_.clear();
  rpos_ = 0;
  int in[2], out[2], err[2];
  if (::pipe2(in, O_CLOEXEC) || ::pipe2(out, O_CLOEXEC) || ::pipe2(err, O_CLOEXEC)) {
    throw std::system_error(errno, std::generic_category(), "pipe2 for the executor");
  }
  posix_spawn_file_actions_t fa;
  posix_spawn_file_actions_init(&fa);
  posix_spawn_file_actions_adddup2(&fa, in[0], 3);
  posix_spawn_file_actions_adddup2(&fa, out[1], 4);
  posix_spawn_file_actions_adddup2(&fa, err[1], 2);
  // The executor is not an MPI process: drop the launcher's variables so nothing in it
  // (or in a library it loads) mistakes it for a rank.
  std::vector<std::string> env;
  for (char** e = environ; *e; ++e) {
    std::string_view v(*e);
    if (v.starts_with("OMPI_") || v.starts_with("PMIX_") || v.starts_with("PMI_")) continue;
    if (v.substr(0, v.find('=')) == kParentEnv) continue;  // the worker's own, if any: ours follows
    bool overridden = false;
    for (const auto& o : env_) {
      if (v.substr(0, v.find('=') + 1) == std::string_view(o).substr(0, o.find('=') + 1)) {
        overridden = true;
      }
    }
    if (!overridden) env.emplace_back(v);
  }
  for (const auto& o : env_) env.push_back(o);
  // DieWithWorker() compares it with its parent after PR_SET_PDEATHSIG.
  env.push_back(fmt::format("{}={}", kParentEnv, ::getpid()));
  std::vector<char*> envp;
  for (auto& s : env) envp.push_back(s.data());
  envp.push_back(nullptr);
  std::string a0 = binary_, a1 = "exec";
  char* argv[] = {a0.data(), a1.data(), nullptr};
  pid_t pid;
  SpawnAttr attr;
  int rc = posix_spawn(&pid, binary_.c_str(), &fa, attr.get(), argv, envp.data());
  posix_spawn_file_actions_destroy(&fa);
  ::close(in[0]);
  ::close(out[1]);
  ::close(err[1]);
  if (rc != 0) {
    ::close(in[1]);
    ::close(out[0]);
    ::close(err[0]);
    throw std::system_error(rc, std::generic_category(), "posix_spawn " + binary_ + " exec");
  }
  pid_ = pid;
  to_child_ = in[1];
  from_child_ = out[0];
  err_child_ = err[0];
  ::fcntl(from_child_, F_SETFL, O_NONBLOCK);
  ::fcntl(err_child_, F_SETFL, O_NONBLOCK);
}

void ExecutorProcess::Send(const std::string& frame) { WriteAll(to_child_, frame.data(), frame.size()); }

bool ExecutorProcess::ReadFrames() {
  char tmp[65536];
  for (;;) {
    ssize_t r = ::read(from_child_, tmp, sizeof tmp);
    if (r > 0) {
      rbuf_.append(tmp, static_cast<size_t>(r));
      if (r < static_cast<ssize_t>(sizeof tmp)) return true;
      continue;
    }
    if (r == 0) return false;
    if (errno == EINTR) continue;
    if (errno == EAGAIN || errno == EWOULDBLOCK) return true;
    return false;
  }
}

bool ExecutorProcess::ReadStderr() {
  char tmp[8192];
  for (;;) {
    ssize_t r = ::read(err_child_, tmp, sizeof tmp);
    if (r > 0) {
      WriteAll(STDERR_FILENO, tmp, static_cast<size_t>(r));
      err_tail_.append(tmp, static_cast<size_t>(r));
      if (err_tail_.size() > 4096) err_tail_.erase(0, err_tail_.size() - 4096);
      continue;
    }
    if (r == 0) return false;
    if (errno == EINTR) continue;
    return true;
  }
}

bool ExecutorProcess::NextFrame(std::string* frame) {
  std::string_view rest(rbuf_.data() + rpos_, rbuf_.size() - rpos_);
  auto n = WholeFrameSize(rest);
  if (!n) {
    if (rpos_ > 0) {
      rbuf_.erase(0, rpos_);
      rpos_ = 0;
    }
    return false;
  }
  frame->assign(rest.data(), *n);
  rpos_ += *n;
  if (rpos_ == rbuf_.size()) {
    rbuf_.clear();
    rpos_ = 0;
  }
  return true;
}

void ExecutorProcess::Signal(int sig) {
  if (pid_ > 0) ::kill(-pid_, sig);  // the executor's group: its shards' own processes too
}

int ExecutorProcess::Reap() {
  int status = 0;
  if (pid_ > 0) {
    // What the executor's shard started would live on in its group: killed first, while the
    // unreaped executor still holds the group's id (so no other process can have it).
    ::kill(-pid_, SIGKILL);
    while (::waitpid(pid_, &status, 0) < 0 && errno == EINTR) {
    }
  }
  pid_ = -1;
  return status;
}

std::string DescribeWaitStatus(int status) {
  if (WIFSIGNALED(status)) {
    int sig = WTERMSIG(status);
    const char* abbrev = sigabbrev_np(sig);
    return fmt::format("killed by signal {} (SIG{}{})", sig, abbrev ? abbrev : "?",
                       sig == SIGKILL ? ", possibly the out-of-memory killer" : "");
  }
  if (WIFEXITED(status)) return fmt::format("exited with code {}", WEXITSTATUS(status));
  return fmt::format("ended with wait status {}", status);
}

}  // namespace seedgrid

#include "worker/executor.h"

#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <sys/ioctl.h>
#include <sys/prctl.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cerrno>
#include <chrono>
#include <condition_variable>
#include <cstdlib>
#include <cstring>
#include <iostream>
#include <mutex>
#include <system_error>
#include <thread>

#include <fmt/format.h>

#include "core/process.h"
#include "core/runner.h"
#include "core/strings.h"
#include "core/sysutil.h"
#include "worker/live_feed.h"
#include "worker/shard_exec.h"

namespace seedgrid {
namespace {

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
    WriteAll(fd_, buf_);
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
    id_ = task.key.id();
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
    d.error = fmt::format(
        "memory limit exceeded: the shard grew the executor's RSS by {} MiB "
        "(from {} to {} MiB), limit {} MiB",
        (rss_kb - baseline_kb_) / 1024, baseline_kb_ / 1024, rss_kb / 1024, limit_kb_ / 1024);
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

// The end of a shard's stdout and stderr (worker/supervisor.h): flushed, then its marker on
// each pipe that still holds bytes the worker has not read (an empty one needs none: every
// byte of the shard was read already).
void EndAttemptOutput(const RunShard& task) {
  std::cout.flush();
  std::cerr.flush();
  std::fflush(nullptr);
  std::string marker;
  for (int fd : {STDOUT_FILENO, STDERR_FILENO}) {
    int unread = 0;
    if (::ioctl(fd, FIONREAD, &unread) != 0 || unread == 0) continue;
    if (marker.empty()) marker = AttemptEndMarker(task.key.id(), task.attempt);
    try {
      WriteAll(fd, marker);
    } catch (const std::exception&) {
      // The worker is gone (EPIPE): the next read of in_fd ends this executor.
    }
  }
}

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
  // Live curves (worker/live_feed.h): the runners' LivePoint calls and the live file a command
  // names, coalesced and sent at most once a second while the shard runs.
  ThreadedLiveFeed live(
      [&](const LivePoints& p) {
        std::lock_guard lock(out.mu());
        out.WriteLocked(FromWorker{p});
      },
      UnixNow);
  ScopedLiveSink live_sink(&live);
  TakePeakRssKb();
  int64_t rss_kb = 0;
  double rss_read_at = 0;
  // A pipe to the worker: line-buffered, so `seedgrid logs --follow` sees lines as they come.
  std::setvbuf(stdout, nullptr, _IOLBF, 0);
  while (ReadFrame(in_fd, buf, &frame)) {
    ToWorker msg = DecodeToWorker(frame);
    if (std::holds_alternative<Shutdown>(msg)) break;
    const auto& task = std::get<RunShard>(msg);
    LocalRunOptions opts;
    opts.threads = threads;
    opts.device = device;
    opts.on_progress = [&](int64_t step, int64_t total) {
      std::lock_guard lock(out.mu());
      out.WriteLocked(FromWorker{Progress{task.key.id(), task.attempt, step, total}});
    };
    memory.Arm(task, UnixNow());
    live.Begin(task.key.id(), task.attempt);
    ShardDone done = RunShardLocally(task, runners, opts);
    memory.Disarm();
    live.End();  // its last points go before its ShardDone
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
    EndAttemptOutput(task);
    std::lock_guard lock(out.mu());
    out.WriteLocked(FromWorker{std::move(done)});
  }
  return 0;
}

ExecutorProcess::ExecutorProcess(std::string binary, std::vector<std::string> env_overrides)
    : binary_(std::move(binary)), env_(std::move(env_overrides)) {}

// The Child member SIGKILLs the executor's group and reaps it; the Fd members close the pipes.
ExecutorProcess::~ExecutorProcess() = default;

void ExecutorProcess::Start() {
  to_child_.reset();
  from_child_.reset();
  out_child_.reset();
  err_child_.reset();
  rbuf_.clear();
  rpos_ = 0;
  Pipe in = MakePipe(), out = MakePipe(), std_out = MakePipe(), err = MakePipe();
  SpawnOptions o;
  o.argv = {binary_, "exec"};
  o.redirects = {Redirect::Dup(3, in.read.get()), Redirect::Dup(4, out.write.get()),
                 Redirect::Dup(STDOUT_FILENO, std_out.write.get()),
                 Redirect::Dup(STDERR_FILENO, err.write.get())};
  // The executor is not an MPI process: drop the launcher's variables so nothing in it (or in
  // a library it loads) mistakes it for a rank. The worker's own kParentEnv, if any, is
  // replaced by ours, which DieWithWorker() compares with its parent after PR_SET_PDEATHSIG.
  std::vector<std::string> set = env_;
  set.push_back(fmt::format("{}={}", kParentEnv, ::getpid()));
  o.env = ChildEnvironment(set, {"OMPI_", "PMIX_", "PMI_"});
  // Its own process group (so the worker can signal it and whatever its shards started as
  // one, and so Open MPI's signals to the worker's group do not reach it), default SIGTERM and
  // SIGHUP (the worker ignores SIGTERM; ignored signals would stay ignored across exec),
  // nothing blocked.
  o.new_process_group = true;
  o.default_signals = {SIGTERM, SIGHUP};
  o.unblock_signals = true;
  try {
    child_ = Spawn(o);
  } catch (const std::system_error& e) {
    throw std::system_error(e.code(), "posix_spawn " + binary_ + " exec");
  }
  to_child_ = std::move(in.write);
  from_child_ = std::move(out.read);
  out_child_ = std::move(std_out.read);
  err_child_ = std::move(err.read);
  SetNonBlocking(from_child_.get());
  SetNonBlocking(out_child_.get());
  SetNonBlocking(err_child_.get());
}

void ExecutorProcess::Send(const std::string& frame) { WriteAll(to_child_.get(), frame); }

bool ExecutorProcess::ReadFrames() {
  char tmp[65536];
  for (;;) {
    ssize_t r = ::read(from_child_.get(), tmp, sizeof tmp);
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

bool ExecutorProcess::ReadOutput(bool err, std::string* out) {
  const int fd = err ? err_child_.get() : out_child_.get();
  if (fd < 0) return false;
  char tmp[65536];
  for (;;) {
    ssize_t r = ::read(fd, tmp, sizeof tmp);
    if (r > 0) {
      out->append(tmp, static_cast<size_t>(r));
      if (r < static_cast<ssize_t>(sizeof tmp)) return true;
      continue;
    }
    if (r == 0) return false;
    if (errno == EINTR) continue;
    return errno == EAGAIN || errno == EWOULDBLOCK;
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
  child_.Signal(sig);  // the executor's group: its shards' own processes too
}

int ExecutorProcess::Reap() {
  if (!child_.running()) return 0;
  // What the executor's shard started would live on in its group: killed first, while the
  // unreaped executor still holds the group's id (so no other process can have it).
  child_.Signal(SIGKILL);
  return child_.Wait().raw();
}

bool ExecutorProcess::WaitExit(double timeout_s,
                               const std::function<void(OutStream, std::string_view)>& output) {
  const auto deadline = std::chrono::steady_clock::now() +
                        std::chrono::milliseconds(static_cast<int64_t>(timeout_s * 1000));
  std::string bytes;
  while (std::chrono::steady_clock::now() < deadline) {
    pollfd fds[3] = {{from_child_.get(), POLLIN, 0},
                     {out_child_.get(), POLLIN, 0},
                     {err_child_.get(), POLLIN, 0}};
    if (::poll(fds, 3, 20) <= 0) continue;
    // Drained, so a shard that prints while it saves never blocks on a full pipe.
    for (int k = 0; k < 2; ++k) {
      if (!fds[1 + k].revents) continue;
      bytes.clear();
      ReadOutput(k == 1, &bytes);
      if (!bytes.empty()) output(k == 0 ? OutStream::kStdout : OutStream::kStderr, bytes);
    }
    if (fds[0].revents && !ReadFrames()) return true;  // EOF: it ended
  }
  return false;
}

std::string DescribeWaitStatus(int status) { return ExitStatus(status).Describe(); }

}  // namespace seedgrid

#include "worker/executor.h"

#include <fcntl.h>
#include <signal.h>
#include <spawn.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cerrno>
#include <cstdlib>
#include <cstring>
#include <fstream>
#include <system_error>

#include <fmt/format.h>

#include "core/runner.h"
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

}  // namespace

int RunExecutorMain(int in_fd, int out_fd) {
  ::signal(SIGPIPE, SIG_IGN);
  // The worker decides this process's fate (it is killed at shutdown); a terminal's Ctrl-C or
  // Slurm's walltime signal is for the coordinator.
  ::signal(SIGINT, SIG_IGN);
  ::signal(SIGUSR1, SIG_IGN);
  const int threads = std::max(1, EnvInt("SEEDGRID_THREADS", 1));
  const char* dev = std::getenv("SEEDGRID_DEVICE");
  const std::string device = dev && *dev ? dev : "cpu";
  const RunnerRegistry& runners = AllRunners();
  ConfigureComputeProcess(threads);
  std::string buf, frame, out;
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
      out.clear();
      Encode(FromWorker{Progress{task.id, task.attempt, step, total}}, &out);
      WriteAll(out_fd, out.data(), out.size());
    };
    ShardDone done = RunShardLocally(task, runners, opts);
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
    out.clear();
    Encode(FromWorker{std::move(done)}, &out);
    WriteAll(out_fd, out.data(), out.size());
  }
  return 0;
}

ExecutorProcess::ExecutorProcess(std::string binary, std::vector<std::string> env_overrides)
    : binary_(std::move(binary)), env_(std::move(env_overrides)) {}

ExecutorProcess::~ExecutorProcess() {
  if (pid_ > 0) {
    ::kill(pid_, SIGKILL);
    int st;
    ::waitpid(pid_, &st, 0);
  }
  CloseFds();
}

void ExecutorProcess::CloseFds() {
  for (int* fd : {&to_child_, &from_child_, &err_child_}) {
    if (*fd >= 0) ::close(*fd);
    *fd = -1;
  }
}

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
    bool overridden = false;
    for (const auto& o : env_) {
      if (v.substr(0, v.find('=') + 1) == std::string_view(o).substr(0, o.find('=') + 1)) {
        overridden = true;
      }
    }
    if (!overridden) env.emplace_back(v);
  }
  for (const auto& o : env_) env.push_back(o);
  std::vector<char*> envp;
  for (auto& s : env) envp.push_back(s.data());
  envp.push_back(nullptr);
  std::string a0 = binary_, a1 = "exec";
  char* argv[] = {a0.data(), a1.data(), nullptr};
  pid_t pid;
  int rc = posix_spawn(&pid, binary_.c_str(), &fa, nullptr, argv, envp.data());
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
  if (pid_ > 0) ::kill(pid_, sig);
}

int ExecutorProcess::Reap() {
  int status = 0;
  if (pid_ > 0) {
    while (::waitpid(pid_, &status, 0) < 0 && errno == EINTR) {
    }
  }
  pid_ = -1;
  return status;
}

int64_t ExecutorProcess::RssKb() const {
  if (pid_ <= 0) return 0;
  std::ifstream f(fmt::format("/proc/{}/statm", pid_));
  int64_t size = 0, resident = 0;
  if (!(f >> size >> resident)) return 0;
  return resident * (::sysconf(_SC_PAGESIZE) / 1024);
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

#include "worker/worker.h"

#include <poll.h>
#include <sched.h>
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <cstdlib>
#include <deque>
#include <optional>
#include <thread>
#include <utility>

#include <fmt/format.h>

#include "core/runner.h"
#include "core/strings.h"
#include "core/sysutil.h"
#include "transport/poller.h"
#include "worker/collective_mpi.h"
#ifdef SEEDGRID_WITH_CUDA
#include "worker/collective_nccl.h"
#endif
#include "worker/executor.h"
#include "worker/shard_exec.h"

namespace seedgrid {
namespace {

using Clock = std::chrono::steady_clock;

double Seconds(Clock::duration d) { return std::chrono::duration<double>(d).count(); }

std::string LastLine(const std::string& text) {
  size_t end = text.find_last_not_of("\n\r ");
  if (end == std::string::npos) return "";
  size_t start = text.rfind('\n', end);
  start = start == std::string::npos ? 0 : start + 1;
  return text.substr(start, end - start + 1);
}

struct InFlight {
  RunShard task;
  Clock::time_point head_since;
};

class Supervisor {
 public:
  Supervisor(const MpiSession& mpi, const WorkerOptions& options)
      : mpi_(mpi), options_(options), threads_(ThreadsPerWorker(mpi)) {
    int local_worker = mpi.local_rank() - (mpi.coordinator_is_local() ? 1 : 0);
    std::string cuda = Env("CUDA_VISIBLE_DEVICES");
    device_ = "cpu";
#ifdef SEEDGRID_WITH_CUDA
    if (!cuda.empty() && cuda != "-1") {
      int n = 1 + static_cast<int>(std::count(cuda.begin(), cuda.end(), ','));
      device_ = fmt::format("cuda:{}", std::max(0, local_worker) % n);
      gpu_ = cuda;
    }
#endif
    std::vector<std::string> env = {
        fmt::format("SEEDGRID_THREADS={}", threads_),
        fmt::format("OMP_NUM_THREADS={}", threads_),
        fmt::format("OPENBLAS_NUM_THREADS={}", threads_),
        fmt::format("MKL_NUM_THREADS={}", threads_),
        fmt::format("SEEDGRID_DEVICE={}", device_),
        fmt::format("SEEDGRID_WORKER_RANK={}", mpi.rank()),
    };
    if (threads_ > 1 && Env("OMP_WAIT_POLICY").empty()) env.push_back("OMP_WAIT_POLICY=PASSIVE");
    executor_ = std::make_unique<ExecutorProcess>(options.binary, std::move(env));
    (void)local_worker;
  }

  int Run() {
    executor_->Start();
    Hello hello;
    hello.host = Hostname();
    hello.local_rank = mpi_.local_rank();
    hello.gpu = gpu_;
    hello.pid = ::getpid();
    hello.threads = threads_;
    if (!Env("SLURM_JOB_ID").empty()) {
      hello.slurm_job =
          Env("SLURM_JOB_ID") + (Env("SLURM_STEP_ID").empty() ? "" : "." + Env("SLURM_STEP_ID"));
    }
    SendUp(hello);

    std::string frame;
    int source = 0;
    while (!shutdown_) {
      bool active = false;
      while (TryRecvFrame(&frame, &source)) {
        active = true;
        HandleDown(DecodeToWorker(frame), frame);
        if (shutdown_) break;
      }
      if (shutdown_) break;
      active |= RunLocalQueue();
      if (!exec_q_.empty()) {
        // While the executor works, block on its pipe (up to 1 ms, then look at MPI again): a
        // spinning supervisor would take the core the executor needs on a small machine.
        active |= PumpExecutor(active ? 0 : 1);
        CheckLimits();
      } else {
        // An idle executor has nothing to say but its death or stray stderr: look at its pipes
        // when about to block, and otherwise every 256 rounds (a poll(2) per round would
        // double the cost of an inline shard's round trip).
        int wait = active ? 0 : poller_.WaitMs();
        if (wait > 0 || (++idle_rounds_ & 255) == 0) active |= PumpExecutor(wait);
      }
      if (active) {
        poller_.Active();
      } else if (poller_.ShouldYield()) {
        sched_yield();
      }
    }
    // Whatever still runs was marked preempted by the coordinator; stop it now.
    if (executor_->running()) {
      executor_->Signal(SIGKILL);
      executor_->Reap();
    }
    return exit_code_;
  }

 private:
  void SendUp(const FromWorker& msg) {
    up_.clear();
    Encode(msg, &up_);
    SendFrame(0, up_);
  }

  // `frame` is msg's encoding as received: forwarded to the executor unchanged.
  void HandleDown(ToWorker msg, const std::string& frame) {
    if (auto* s = std::get_if<Shutdown>(&msg)) {
      shutdown_ = true;
      exit_code_ = s->exit_code;
      return;
    }
    RunShard task = std::get<RunShard>(std::move(msg));
    if (task.gang.size() > 1 || task.isolation == Isolation::kInline) {
      local_.push_back(std::move(task));
      return;
    }
    if (exec_q_.empty()) head_killed_.reset();
    exec_q_.push_back(InFlight{std::move(task), Clock::now()});
    executor_->Send(frame);
  }

  // Inline and gang shards run here, one at a time, when the executor has nothing queued.
  bool RunLocalQueue() {
    if (local_.empty() || !exec_q_.empty()) return false;
    RunShard task = std::move(local_.front());
    local_.pop_front();
    if (!compute_configured_) {
      // Same thread pools as the executor, so gang results match executor results.
      ConfigureComputeProcess(threads_);
      compute_configured_ = true;
    }
    LocalRunOptions opts;
    opts.threads = threads_;
    opts.device = device_;
    opts.on_progress = [&](int64_t step, int64_t total) {
      SendUp(Progress{task.key.id(), task.attempt, step, total});
    };
    std::unique_ptr<Collective> gang;
    if (task.gang.size() > 1) {
      try {
#ifdef SEEDGRID_WITH_CUDA
        if (device_.starts_with("cuda"))  // NCCL on the shard's device; its id travels over MPI
          gang = std::make_unique<NcclCollective>(task.gang, task.gang_id, device_);
        else
#endif
          gang = std::make_unique<MpiCollective>(task.gang, task.gang_id);
      } catch (const std::exception& e) {
        ShardDone d;
        d.id = task.key.id();
        d.attempt = task.attempt;
        d.outcome = Outcome::kError;
        d.error = fmt::format("gang communicator: {}", e.what());
        SendUp(d);
        return true;
      }
      opts.collective = gang.get();
      opts.publish = gang->rank() == 0;
    }
    ShardDone done = RunShardLocally(task, AllRunners(), opts);
    SendUp(done);
    return true;
  }

  bool PumpExecutor(int wait_ms) {
    if (!executor_->running()) return false;
    pollfd fds[2] = {{executor_->out_fd(), POLLIN, 0}, {executor_->err_fd(), POLLIN, 0}};
    int rc = ::poll(fds, 2, wait_ms);
    if (rc <= 0) return false;
    if (fds[1].revents) executor_->ReadStderr();
    if (!fds[0].revents) return fds[1].revents != 0;
    bool active = false;
    bool open = executor_->ReadFrames();
    std::string frame;
    while (executor_->NextFrame(&frame)) {
      active = true;
      FromWorker msg = DecodeFromWorker(frame);
      if (auto* done = std::get_if<ShardDone>(&msg)) {
        // Over its memory limit, the executor reports the shard and kills itself (executor.h).
        if (done->outcome == Outcome::kMemory) executor_exiting_ = true;
        if (!exec_q_.empty() && exec_q_.front().task.key.id() == done->id) {
          exec_q_.pop_front();
          head_killed_.reset();
          if (!exec_q_.empty()) exec_q_.front().head_since = Clock::now();
        }
        executor_->ClearStderrTail();
      }
      SendFrame(0, frame);  // already a FromWorker encoding: forwarded as is
    }
    if (!open) {
      OnExecutorDeath();
      active = true;
    }
    return active;
  }

  void OnExecutorDeath() {
    executor_->ReadStderr();
    int status = executor_->Reap();
    std::string tail = LastLine(executor_->stderr_tail());
    // An announced death (a memory limit) was reported already: the next shard is innocent.
    const bool announced = std::exchange(executor_exiting_, false);
    if (!exec_q_.empty() && !announced) {
      InFlight dead = std::move(exec_q_.front());
      exec_q_.pop_front();
      ShardDone d;
      d.id = dead.task.key.id();
      d.attempt = dead.task.attempt;
      d.end = UnixNow();
      d.start = d.end - Seconds(Clock::now() - dead.head_since);
      d.signal = WIFSIGNALED(status) ? WTERMSIG(status) : 0;
      d.exit_code = WIFEXITED(status) ? WEXITSTATUS(status) : 0;
      if (head_killed_) {
        d.outcome = head_killed_->first;
        d.error = head_killed_->second;
      } else {
        d.outcome = Outcome::kCrash;
        d.error = "executor " + DescribeWaitStatus(status);
      }
      if (!tail.empty()) d.error += "; last output: " + tail;
      SendUp(d);
    }
    head_killed_.reset();
    kill_deadline_.reset();
    executor_->ClearStderrTail();
    executor_->Start();
    // Re-send what was queued behind the shard that died; those attempts are not charged.
    for (auto& f : exec_q_) {
      down_.clear();
      Encode(ToWorker{f.task}, &down_);
      executor_->Send(down_);
      f.head_since = Clock::now();
    }
  }

  void CheckLimits() {
    if (exec_q_.empty()) return;
    auto now = Clock::now();
    if (kill_deadline_ && now >= *kill_deadline_) {
      executor_->Signal(SIGKILL);
      kill_deadline_.reset();
      return;
    }
    if (head_killed_) return;
    const RunShard& head = exec_q_.front().task;
    double running = Seconds(now - exec_q_.front().head_since);
    if (head.timeout_s > 0 && running > head.timeout_s) {
      head_killed_ = {Outcome::kTimeout, fmt::format("timeout after {:.3g} s (limit {:.3g} s)",
                                                     running, head.timeout_s)};
      executor_->Signal(SIGTERM);
      kill_deadline_ =
          now + std::chrono::milliseconds(static_cast<int64_t>(options_.kill_grace_s * 1000));
    }
    // Memory limits are the executor's own (on the shard's growth above its baseline, which
    // only the executor sees at the shard's start): see worker/executor.h.
  }

  const MpiSession& mpi_;
  WorkerOptions options_;
  int threads_;
  std::string device_, gpu_;
  std::unique_ptr<ExecutorProcess> executor_;
  std::deque<InFlight> exec_q_;
  std::deque<RunShard> local_;
  std::optional<std::pair<Outcome, std::string>> head_killed_;
  std::optional<Clock::time_point> kill_deadline_;
  Poller poller_;
  std::string up_, down_;
  uint32_t idle_rounds_ = 0;
  bool shutdown_ = false;
  bool executor_exiting_ = false;  // it reported a memory-limit ShardDone and is killing itself
  bool compute_configured_ = false;
  int exit_code_ = 0;
};

}  // namespace

int ThreadsPerWorker(const MpiSession& mpi) {
  if (const char* t = std::getenv("SEEDGRID_THREADS"); t && std::atoi(t) > 0) return std::atoi(t);
  int cores = static_cast<int>(std::thread::hardware_concurrency());
  int workers_here = std::max(1, mpi.local_size() - (mpi.coordinator_is_local() ? 1 : 0));
  return std::max(1, cores / workers_here);
}

int RunWorker(const MpiSession& mpi, const WorkerOptions& options) {
  Supervisor s(mpi, options);
  return s.Run();
}

}  // namespace seedgrid

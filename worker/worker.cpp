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
#include <stdexcept>
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
#include "worker/supervisor.h"

namespace seedgrid {
namespace {

using Clock = std::chrono::steady_clock;

double Seconds(Clock::time_point t) {
  return std::chrono::duration<double>(t.time_since_epoch()).count();
}

// The worker's UpLink (core/comm.h) over MPI: frames to rank 0.
class MpiUpLink final : public UpLink {
 public:
  void Send(const FromWorker& msg) override {
    buf_.clear();
    Encode(msg, &buf_);
    SendFrame(0, buf_);
  }
  void SendEncoded(const std::string& frame) override { SendFrame(0, frame); }

 private:
  std::string buf_;
};

// Inline and gang shards, run on the supervisor's main thread (the only MPI thread: a gang's
// collectives need it) with its fds 1 and 2 captured into the attempt's logs.
class LocalShards final : public InProcessRunner {
 public:
  LocalShards(int threads, std::string device) : threads_(threads), device_(std::move(device)) {}

  ShardDone Run(const RunShard& task, AttemptLogs& logs,
                const std::function<void(int64_t, int64_t)>& progress) override {
    if (!compute_configured_) {
      // Same thread pools as the executor, so gang results match executor results.
      ConfigureComputeProcess(threads_);
      compute_configured_ = true;
    }
    LocalRunOptions opts;
    opts.threads = threads_;
    opts.device = device_;
    opts.on_progress = progress;
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
        return d;
      }
      opts.collective = gang.get();
      opts.publish = gang->rank() == 0;
      // The coordinator sends a gang's ranks nothing while the gang runs (their windows are
      // full) but Shutdown: a waiting frame from it is a preemption (read after the shard).
      opts.stop_requested = [] { return FrameWaiting(0); };
    }
    if (gang) {  // a long training: its log grows as it runs (a thread drains pipes)
      StdioCapture capture(logs);
      return RunShardLocally(task, AllRunners(), opts);
    }
    SpoolCapture capture(spool_, logs);  // the inline fast path: ~1 µs, see attempt_log.h
    return RunShardLocally(task, AllRunners(), opts);
  }

 private:
  int threads_;
  std::string device_;
  bool compute_configured_ = false;
  StdioSpool spool_;
};

// `SEEDGRID_LOG_CAP` (worker/attempt_log.h); a bad value is said once and the default kept: a
// log setting must not stop a worker.
LogCap LogCapFromEnv() {
  const std::string v = Env("SEEDGRID_LOG_CAP");
  if (v.empty()) return LogCap{};
  try {
    return ParseLogCap(v);
  } catch (const std::invalid_argument& e) {
    fmt::print(stderr, "seedgrid: {}; attempt logs keep the default 1M at each end\n", e.what());
    return LogCap{};
  }
}

// The worker's I/O: MPI, the executor's three pipes and the clock, each event handed to the
// Supervisor (worker/supervisor.h), which holds the policy.
class Driver {
 public:
  Driver(const MpiSession& mpi, const WorkerOptions& options)
      : mpi_(mpi), threads_(ThreadsPerWorker(mpi)) {
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
    (void)local_worker;
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
    local_ = std::make_unique<LocalShards>(threads_, device_);
    SupervisorOptions so;
    so.kill_grace_s = options.kill_grace_s;
    so.world_rank = mpi.rank();
    so.log_cap = LogCapFromEnv();
    so.live_clock = UnixNow;
    sup_ = std::make_unique<Supervisor>(up_, *executor_, *local_, so);
  }

  // The waiting policy (which source to poll, how long to block) in one place; every decision
  // about shards is the Supervisor's.
  int Run() {
    sup_->Start(MakeHello());
    std::string frame;
    int source = 0;
    while (!sup_->shutdown()) {
      bool active = false;
      while (TryRecvFrame(&frame, &source)) {
        active = true;
        sup_->OnMessage(DecodeToWorker(frame), frame, Now());
        if (sup_->shutdown()) break;
      }
      if (sup_->shutdown()) break;
      active |= sup_->RunInProcess();
      if (sup_->executor_busy()) {
        // While the executor works, block on its pipes (up to 1 ms, then look at MPI again): a
        // spinning supervisor would take the core the executor needs on a small machine.
        active |= PumpExecutor(active ? 0 : 1);
        sup_->Tick(Now());
      } else {
        // An idle executor has nothing to say but its death or stray output: look at its pipes
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
    return sup_->exit_code();
  }

 private:
  static double Now() { return Seconds(Clock::now()); }

  Hello MakeHello() const {
    Hello hello;
    hello.host = Hostname();
    hello.local_rank = mpi_.local_rank();
    hello.gpu = gpu_;
    hello.pid = ::getpid();
    hello.threads = threads_;
    if (const std::string job = Env("SLURM_JOB_ID"); !job.empty()) {
      const std::string step = Env("SLURM_STEP_ID");
      hello.slurm_job = step.empty() ? job : fmt::format("{}.{}", job, step);
    }
    return hello;
  }

  // Hands what stdout and stderr hold now to the supervisor. Returns the bytes read.
  size_t DrainOutput() {
    pollfd fds[2] = {{executor_->out_fd(), POLLIN, 0}, {executor_->err_fd(), POLLIN, 0}};
    if (::poll(fds, 2, 0) <= 0) return 0;
    size_t n = 0;
    for (int i = 0; i < 2; ++i) {
      if (!fds[i].revents) continue;
      out_.clear();
      executor_->ReadOutput(i == 1, &out_);
      n += out_.size();
      if (!out_.empty())
        sup_->OnExecutorOutput(i == 1 ? OutStream::kStderr : OutStream::kStdout, out_);
    }
    return n;
  }

  // One consistent batch for the supervisor (worker/supervisor.h): frames and output are read
  // alternately until a read of frames finds nothing new after the last output read, so every
  // ShardDone written before a byte of output we hold is in the batch, and every marker written
  // before a ShardDone in it. The bound only matters for a shard that prints without pause
  // while others end: its output then goes to it.
  bool PumpExecutor(int wait_ms) {
    if (!executor_->running()) return false;
    pollfd fds[3] = {{executor_->frames_fd(), POLLIN, 0},
                     {executor_->out_fd(), POLLIN, 0},
                     {executor_->err_fd(), POLLIN, 0}};
    if (::poll(fds, 3, wait_ms) <= 0) return false;
    bool open = fds[0].revents ? executor_->ReadFrames() : true;
    for (int i = 0; i < 16; ++i) {
      if (DrainOutput() == 0 || !open) break;
      const size_t before = executor_->buffered();
      open = executor_->ReadFrames();
      if (executor_->buffered() == before) break;
    }
    while (executor_->NextFrame(&frame_)) sup_->OnExecutorFrame(frame_, Now());
    if (!open) {
      for (int i = 0; i < 64 && DrainOutput() > 0; ++i) {
      }
      sup_->OnExecutorEof(Now());  // the dead executor's output goes to its running shard
    } else {
      sup_->RouteOutput();
    }
    return true;
  }

  const MpiSession& mpi_;
  int threads_;
  std::string device_, gpu_;
  MpiUpLink up_;
  std::unique_ptr<ExecutorProcess> executor_;
  std::unique_ptr<LocalShards> local_;
  std::unique_ptr<Supervisor> sup_;
  Poller poller_;
  std::string frame_, out_;
  uint32_t idle_rounds_ = 0;
};

}  // namespace

int ThreadsPerWorker(const MpiSession& mpi) {
  if (const char* t = std::getenv("SEEDGRID_THREADS"); t && std::atoi(t) > 0) return std::atoi(t);
  int cores = static_cast<int>(std::thread::hardware_concurrency());
  int workers_here = std::max(1, mpi.local_size() - (mpi.coordinator_is_local() ? 1 : 0));
  return std::max(1, cores / workers_here);
}

int RunWorker(const MpiSession& mpi, const WorkerOptions& options) {
  Driver d(mpi, options);
  return d.Run();
}

}  // namespace seedgrid

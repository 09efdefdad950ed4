// The executor: a long-lived child of a worker (the same binary, `seedgrid exec`, started with
// Spawn of core/process.h, i.e. posix_spawn, no MPI) that runs single-rank shards one after
// another, so a crash, abort, OOM kill or hang takes down only the child. Models loaded by a shard
// stay cached across shards.
//
// Pipe protocol (the codec of core/protocol.h): the worker writes RunShard frames to fd
// `in_fd` (3); the executor answers each with zero or more Progress frames and exactly one
// ShardDone on `out_fd` (4). Its stdout and stderr (fds 1 and 2, inherited by whatever a shard
// starts) are two more pipes to the worker, which writes them to the attempt logs: after each
// shard, before its ShardDone, the executor flushes both and marks the shard's end in each pipe
// that still holds unread bytes (worker/supervisor.h). A kind's or a child's output never mixes
// with frames. EOF on `in_fd`
// ends it. The worker may queue several RunShards; if the executor dies, the first unanswered one
// is the shard that killed it, except after a ShardDone with outcome `memory`: the executor
// enforces a shard's memory limit itself (on the growth of its RSS above the baseline it had when
// the shard started), and that ShardDone is its last frame before it kills itself, so the shards
// queued behind are not to blame.
//
// Lifetime: the executor leads its own process group (whatever a shard starts is in it) and
// dies with its worker: PR_SET_PDEATHSIG (SIGHUP, whose handler SIGKILLs the group), plus a
// check after set-up that its parent is still the worker that spawned it
// (SEEDGRID_EXECUTOR_PARENT). The worker signals and reaps the whole group.
#pragma once

#include <sys/types.h>

#include <deque>
#include <string>
#include <vector>

#include "core/process.h"
#include "core/protocol.h"
#include "worker/supervisor.h"

namespace seedgrid {

// `seedgrid exec` entry point. Returns the process exit code.
int RunExecutorMain(int in_fd, int out_fd);

// The worker's handle on its executor child (RAII: the destructor kills and reaps it). The
// supervisor's policy (worker/supervisor.h) acts through its ShardExecutor side; the driver
// (worker/worker.cpp) polls its three pipes: frames, stdout and stderr.
class ExecutorProcess final : public ShardExecutor {
 public:
  ExecutorProcess(std::string binary, std::vector<std::string> env_overrides);
  ~ExecutorProcess() override;
  ExecutorProcess(const ExecutorProcess&) = delete;
  ExecutorProcess& operator=(const ExecutorProcess&) = delete;

  void Start() override;  // Spawn; throws std::system_error
  bool running() const override { return child_.running(); }
  pid_t pid() const { return child_.pid(); }
  int frames_fd() const { return from_child_.get(); }  // frames from the executor
  int out_fd() const { return out_child_.get(); }      // its stdout (fd 1)
  int err_fd() const { return err_child_.get(); }      // its stderr (fd 2)
  void Send(const std::string& frame) override;        // blocking write of a whole frame
  // Reads what is available (non-blocking) into the frame buffer. Returns false on EOF (the
  // child closed its end: it is exiting or dead).
  bool ReadFrames();
  // Pops the next whole frame, if any.
  bool NextFrame(std::string* frame);
  // Frame bytes read and not yet popped.
  size_t buffered() const { return rbuf_.size() - rpos_; }
  // Appends what stdout (err = false) or stderr has (non-blocking) to *out; false on EOF.
  bool ReadOutput(bool err, std::string* out);
  // To the executor's process group: the executor and whatever its shard started.
  void Signal(int sig) override;
  // SIGKILLs what is left of the executor's group and reaps the executor (blocking). Returns
  // the executor's waitpid status.
  int Reap() override;
  bool WaitExit(double timeout_s,
                const std::function<void(OutStream, std::string_view)>& output) override;

 private:
  std::string binary_;
  std::vector<std::string> env_;
  Fd to_child_, from_child_, out_child_, err_child_;
  Child child_;  // declared last: destroyed first, so the group is killed before the pipes close
  std::string rbuf_;
  size_t rpos_ = 0;
};

// ExitStatus(status).Describe(): "killed by signal 11 (SIGSEGV)" / "exited with code 3".
std::string DescribeWaitStatus(int status);

}  // namespace seedgrid

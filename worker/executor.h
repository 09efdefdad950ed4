// The executor: a long-lived child of a worker (the same binary, `seedgrid exec`, started with
// Spawn of core/process.h, i.e. posix_spawn, no MPI) that runs single-rank shards one after
// another, so a crash, abort, OOM kill or hang takes down only the child. Models loaded by a shard
// stay cached across shards.
//
// Pipe protocol (the codec of core/protocol.h): the worker writes RunShard frames to fd
// `in_fd`; the executor answers each with zero or more Progress frames and exactly one
// ShardDone on `out_fd`. EOF on `in_fd` ends it. The worker may queue several RunShards; if the
// executor dies, the first unanswered one is the shard that killed it, except after a ShardDone
// with outcome `memory`: the executor enforces a shard's memory limit itself (on the growth of
// its RSS above the baseline it had when the shard started), and that ShardDone is its last
// frame before it kills itself, so the shards queued behind are not to blame.
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

namespace seedgrid {

// `seedgrid exec` entry point. Returns the process exit code.
int RunExecutorMain(int in_fd, int out_fd);

// The worker's handle on its executor child (RAII: the destructor kills and reaps it).
class ExecutorProcess {
 public:
  ExecutorProcess(std::string binary, std::vector<std::string> env_overrides);
  ~ExecutorProcess();
  ExecutorProcess(const ExecutorProcess&) = delete;
  ExecutorProcess& operator=(const ExecutorProcess&) = delete;

  void Start();  // Spawn; throws std::system_error
  bool running() const { return child_.running(); }
  pid_t pid() const { return child_.pid(); }
  int out_fd() const { return from_child_.get(); }  // frames from the executor
  int err_fd() const { return err_child_.get(); }   // its stderr
  void Send(const std::string& frame);              // blocking write of a whole frame
  // Reads what is available (non-blocking) into the frame buffer / stderr tail.
  // Returns false on EOF (the child closed its end: it is exiting or dead).
  bool ReadFrames();
  bool ReadStderr();
  // Pops the next whole frame, if any.
  bool NextFrame(std::string* frame);
  // To the executor's process group: the executor and whatever its shard started.
  void Signal(int sig);
  // SIGKILLs what is left of the executor's group and reaps the executor (blocking). Returns
  // the executor's waitpid status.
  int Reap();
  const std::string& stderr_tail() const { return err_tail_; }
  void ClearStderrTail() { err_tail_.clear(); }

 private:
  std::string binary_;
  std::vector<std::string> env_;
  Fd to_child_, from_child_, err_child_;
  Child child_;  // declared last: destroyed first, so the group is killed before the pipes close
  std::string rbuf_;
  size_t rpos_ = 0;
  std::string err_tail_;
};

// ExitStatus(status).Describe(): "killed by signal 11 (SIGSEGV)" / "exited with code 3".
std::string DescribeWaitStatus(int status);

}  // namespace seedgrid

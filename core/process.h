// Child processes, pipes and file descriptors, written once for every folder: the worker's
// executor child, the self-launch under mpirun, `submit`'s sbatch, the report's plotting
// script. Errors are thrown as std::system_error carrying errno and what was being done.
//
// How a child is started. Spawn uses posix_spawn, which glibc implements with a vfork-like
// clone: no copy of the parent's page tables and no pthread_atfork handlers run, which matters
// in a worker (an MPI process with LibTorch loaded: Open MPI's fork handlers and a large
// address space make fork(2) slow and unsafe there). posix_spawn cannot ask the kernel to
// signal the child when its parent dies (PR_SET_PDEATHSIG), so a spawn that needs it forks and
// execs; only the launcher, which is not an MPI process, asks for it. Both paths apply the same
// options in the same order and report a failed exec as a thrown std::system_error.
//
// Lifetime: a Child that was not waited for is SIGKILLed (its whole group when it leads one)
// and reaped by its destructor, so no path leaves a zombie or an orphan running.
#pragma once

#include <sys/types.h>

#include <optional>
#include <string>
#include <string_view>
#include <vector>

namespace seedgrid {

// An owned file descriptor: closed by the destructor (errors ignored: nothing to do about them
// on a descriptor that is being dropped). Move-only.
class Fd {
 public:
  Fd() = default;
  explicit Fd(int fd) noexcept : fd_(fd) {}
  ~Fd() { reset(); }
  Fd(Fd&& o) noexcept : fd_(o.release()) {}
  Fd& operator=(Fd&& o) noexcept {
    if (this != &o) reset(o.release());
    return *this;
  }
  Fd(const Fd&) = delete;
  Fd& operator=(const Fd&) = delete;

  int get() const { return fd_; }
  explicit operator bool() const { return fd_ >= 0; }
  // Gives the descriptor up without closing it.
  int release() noexcept {
    int fd = fd_;
    fd_ = -1;
    return fd;
  }
  // Closes the held descriptor (if any) and holds `fd`.
  void reset(int fd = -1) noexcept;

 private:
  int fd_ = -1;
};

// pipe2(O_CLOEXEC): both ends close on exec, so a child gets only what Spawn gives it.
struct Pipe {
  Fd read;
  Fd write;
};
Pipe MakePipe();

// O_NONBLOCK on `fd` (for ends read by a poller).
void SetNonBlocking(int fd);

// write(2) of all of `data`, EINTR retried; throws on any other error.
void WriteAll(int fd, std::string_view data);

// A waitpid status, read.
class ExitStatus {
 public:
  explicit ExitStatus(int raw = 0) : raw_(raw) {}
  int raw() const { return raw_; }
  bool exited() const;
  int code() const;  // exit code when exited(), else -1
  bool signaled() const;
  int signal() const;  // terminating signal when signaled(), else 0
  // The shell's $?: the exit code, or 128 + the signal.
  int ShellCode() const;
  // "exited with code 3" / "killed by signal 11 (SIGSEGV)" (SIGKILL adds that it may have been
  // the out-of-memory killer).
  std::string Describe() const;

 private:
  int raw_;
};

// One step of the child's descriptor set-up, applied in order (as posix_spawn's file actions):
// `child_fd` becomes a copy of our `from_fd`, or the file at `path` opened with `flags`.
struct Redirect {
  int child_fd = -1;
  int from_fd = -1;
  std::string path;
  int flags = 0;
  static Redirect Dup(int child_fd, int from_fd) { return {child_fd, from_fd, {}, 0}; }
  static Redirect Open(int child_fd, std::string path, int flags) {
    return {child_fd, -1, std::move(path), flags};
  }
};

struct SpawnOptions {
  // argv[0] is the program: a path, or a name looked up in PATH when it has no '/'.
  std::vector<std::string> argv;
  // The child's whole environment ("NAME=value"); nullopt: ours (see ChildEnvironment).
  std::optional<std::vector<std::string>> env;
  std::string cwd;  // empty: ours
  std::vector<Redirect> redirects;
  // The child leads a process group of its own (Child::Signal then reaches the whole group).
  bool new_process_group = false;
  // Signals set back to their default action in the child (an ignored signal stays ignored
  // across exec otherwise).
  std::vector<int> default_signals;
  // The child starts with no signal blocked (otherwise it inherits our mask).
  bool unblock_signals = false;
  // PR_SET_PDEATHSIG: the kernel sends this signal to the child when we end. The child also
  // exits at once (code 127) when we ended before it could ask. 0: none.
  int parent_death_signal = 0;
};

// A started child. See the lifetime note at the top.
class Child {
 public:
  Child() = default;
  ~Child();
  Child(Child&& o) noexcept;
  Child& operator=(Child&& o) noexcept;
  Child(const Child&) = delete;
  Child& operator=(const Child&) = delete;

  pid_t pid() const { return pid_; }
  bool running() const { return pid_ > 0; }  // started and not yet reaped
  // To the child, or to its whole group when it leads one. No-op once reaped.
  void Signal(int sig) const;
  // Blocks until the child ends and reaps it.
  ExitStatus Wait();
  // Reaps the child if it has ended; nullopt while it runs.
  std::optional<ExitStatus> TryWait();

 private:
  friend Child Spawn(const SpawnOptions& opts);
  Child(pid_t pid, bool group) : pid_(pid), group_(group) {}
  void KillAndReap() noexcept;
  pid_t pid_ = -1;
  bool group_ = false;
};

// Starts argv[0]; throws std::system_error when it cannot be started (the exec's errno
// included: a missing program is ENOENT here, not an exit code 127 later).
Child Spawn(const SpawnOptions& opts);

// Our environment without the variables whose names start with one of `drop_prefixes` and
// without those `set` assigns, followed by `set` ("NAME=value") in its order.
std::vector<std::string> ChildEnvironment(const std::vector<std::string>& set,
                                          const std::vector<std::string_view>& drop_prefixes = {});

// `s` as one word for a POSIX shell: unchanged when made only of characters no shell treats
// specially ([A-Za-z0-9_+=./,:@%-]), else in single quotes, each ' written as '\''.
std::string ShellQuote(std::string_view s);
// The words quoted and joined by spaces: a command line to paste into a shell.
std::string ShellJoin(const std::vector<std::string>& words);

// The absolute path of this program: /proc/self/exe, else the path it was executed by
// (AT_EXECFN, made absolute or looked up in PATH), else `fallback`.
std::string SelfExe(std::string_view fallback = "");

}  // namespace seedgrid

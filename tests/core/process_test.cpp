#include "core/process.h"

#include <fcntl.h>
#include <signal.h>
#include <sys/stat.h>
#include <unistd.h>

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <chrono>
#include <filesystem>
#include <fstream>
#include <sstream>
#include <thread>

namespace seedgrid {
namespace {

namespace fs = std::filesystem;
using ::testing::HasSubstr;

std::string Slurp(int fd) {
  std::string out;
  char buf[4096];
  ssize_t n;
  while ((n = ::read(fd, buf, sizeof buf)) > 0) out.append(buf, static_cast<size_t>(n));
  return out;
}

std::string SlurpFile(const fs::path& p) {
  std::ifstream in(p);
  std::ostringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

bool IsOpen(int fd) { return ::fcntl(fd, F_GETFD) != -1; }

// Runs `sh -c script` with its stdout on a pipe; returns what it printed and its status.
std::pair<std::string, ExitStatus> RunCaptured(std::vector<std::string> argv, SpawnOptions o = {}) {
  Pipe out = MakePipe();
  o.argv = std::move(argv);
  o.redirects.push_back(Redirect::Dup(STDOUT_FILENO, out.write.get()));
  Child c = Spawn(o);
  out.write.reset();
  std::string text = Slurp(out.read.get());
  return {text, c.Wait()};
}

std::pair<std::string, ExitStatus> Sh(const std::string& script, SpawnOptions o = {}) {
  return RunCaptured({"/bin/sh", "-c", script}, std::move(o));
}

TEST(Fd, ClosesOnDestructionAndMovesOwnership) {
  int raw;
  {
    Pipe p = MakePipe();
    raw = p.read.get();
    EXPECT_TRUE(IsOpen(raw));
    EXPECT_EQ(::fcntl(raw, F_GETFD) & FD_CLOEXEC, FD_CLOEXEC);
    Fd moved = std::move(p.read);
    EXPECT_FALSE(p.read);
    EXPECT_EQ(moved.get(), raw);
  }
  EXPECT_FALSE(IsOpen(raw));
  Pipe p = MakePipe();
  int kept = p.write.release();
  p.write.reset();
  EXPECT_TRUE(IsOpen(kept));
  ::close(kept);
}

TEST(Fd, ResetClosesTheOldDescriptor) {
  Pipe p = MakePipe();
  int old = p.read.get();
  Fd fd = std::move(p.read);
  fd.reset(::dup(p.write.get()));
  EXPECT_FALSE(IsOpen(old));
  EXPECT_TRUE(fd);
}

TEST(ShellQuote, RoundTripsThroughTheShell) {
  const std::vector<std::string> words = {
      "plain", "",      "a b",         "it's",      "'",     "''",    "$HOME",
      "`id`",  "a\"b",  "back\\slash", "new\nline", "*?[x]", "~user", "a;b|c&d",
      "#hash", "!bang", "{a,b}",       "tab\there", "=x",    "%20",   "é"};
  for (const auto& w : words) {
    auto [out, st] = Sh("printf '%s' " + ShellQuote(w));
    EXPECT_EQ(out, w) << ShellQuote(w);
    EXPECT_EQ(st.code(), 0);
  }
  auto [out, st] = Sh("for w in " + ShellJoin(words) + "; do printf '%s|' \"$w\"; done");
  std::string expect;
  for (const auto& w : words) expect += w + "|";
  EXPECT_EQ(out, expect);
}

TEST(ShellQuote, LeavesPlainWordsAlone) {
  EXPECT_EQ(ShellQuote("run/a-b_c.yaml"), "run/a-b_c.yaml");
  EXPECT_EQ(ShellQuote("lr=0.1,x:y@z%"), "lr=0.1,x:y@z%");
  EXPECT_EQ(ShellQuote(""), "''");
  EXPECT_EQ(ShellQuote("a b"), "'a b'");
  EXPECT_EQ(ShellQuote("it's"), "'it'\\''s'");
}

TEST(Spawn, ReportsExitCodesAndSignals) {
  EXPECT_EQ(Sh("exit 3").second.code(), 3);
  EXPECT_TRUE(Sh("exit 3").second.exited());
  EXPECT_EQ(Sh("exit 3").second.Describe(), "exited with code 3");
  ExitStatus killed = Sh("kill -SEGV $$").second;
  EXPECT_TRUE(killed.signaled());
  EXPECT_EQ(killed.signal(), SIGSEGV);
  EXPECT_EQ(killed.ShellCode(), 128 + SIGSEGV);
  EXPECT_EQ(killed.code(), -1);
  EXPECT_EQ(killed.Describe(), "killed by signal 11 (SIGSEGV)");
  EXPECT_THAT(ExitStatus(SIGKILL).Describe(), HasSubstr("out-of-memory"));
}

TEST(Spawn, MissingProgramThrowsWithErrno) {
  SpawnOptions o;
  o.argv = {"/nonexistent/seedgrid-no-such-program"};
  try {
    Spawn(o);
    FAIL() << "no throw";
  } catch (const std::system_error& e) {
    EXPECT_EQ(e.code().value(), ENOENT);
    EXPECT_THAT(e.what(), HasSubstr("seedgrid-no-such-program"));
  }
  o.argv = {"seedgrid-no-such-program-in-path"};
  EXPECT_THROW(Spawn(o), std::system_error);
  o.parent_death_signal = SIGTERM;  // the fork path reports the exec's errno too
  EXPECT_THROW(Spawn(o), std::system_error);
}

TEST(Spawn, RedirectsStdioToFilesAndSetsCwdAndEnv) {
  const fs::path dir =
      fs::temp_directory_path() / ("seedgrid_process_" + std::to_string(::getpid()));
  fs::create_directories(dir);
  for (bool fork_path : {false, true}) {
    SpawnOptions o;
    o.argv = {"sh", "-c", "pwd; echo \"$SEEDGRID_P_A-$SEEDGRID_P_B\"; echo err >&2; cat"};
    o.cwd = dir.string();
    ::setenv("SEEDGRID_P_B", "dropped", 1);
    ::setenv("SEEDGRID_P_KEEP", "kept", 1);
    o.env = ChildEnvironment({"SEEDGRID_P_A=set"}, {"SEEDGRID_P_B"});
    EXPECT_NE(std::find(o.env->begin(), o.env->end(), "SEEDGRID_P_KEEP=kept"), o.env->end());
    const fs::path log = dir / "log.txt";
    o.redirects = {Redirect::Open(STDIN_FILENO, "/dev/null", O_RDONLY),
                   Redirect::Open(STDOUT_FILENO, log.string(), O_WRONLY | O_CREAT | O_TRUNC),
                   Redirect::Dup(STDERR_FILENO, STDOUT_FILENO)};
    if (fork_path) o.parent_death_signal = SIGTERM;
    EXPECT_EQ(Spawn(o).Wait().code(), 0);
    EXPECT_EQ(SlurpFile(log), fs::canonical(dir).string() + "\nset-\nerr\n") << fork_path;
  }
  ::unsetenv("SEEDGRID_P_B");
  ::unsetenv("SEEDGRID_P_KEEP");
  fs::remove_all(dir);
}

TEST(Spawn, NewProcessGroupIsSignalledAsAWhole) {
  for (bool fork_path : {false, true}) {
    Pipe out = MakePipe();
    SpawnOptions o;
    // The shell and a grandchild; both report their group, then wait.
    o.argv = {
        "sh", "-c",
        "sleep 30 & echo $(cut -d' ' -f5 /proc/$$/stat) $(cut -d' ' -f5 /proc/$!/stat); wait"};
    o.new_process_group = true;
    o.redirects = {Redirect::Dup(STDOUT_FILENO, out.write.get())};
    if (fork_path) o.parent_death_signal = SIGKILL;
    Child c = Spawn(o);
    out.write.reset();
    std::string line;
    char ch;
    while (::read(out.read.get(), &ch, 1) == 1 && ch != '\n') line += ch;
    EXPECT_EQ(line, std::to_string(c.pid()) + " " + std::to_string(c.pid())) << fork_path;
    EXPECT_NE(::getpgrp(), c.pid());
    EXPECT_FALSE(c.TryWait().has_value());
    c.Signal(SIGTERM);
    ExitStatus st = c.Wait();
    EXPECT_EQ(st.signal(), SIGTERM);
    EXPECT_FALSE(c.running());
    // The sleep got SIGTERM too: the pipe's last writer is gone.
    EXPECT_EQ(Slurp(out.read.get()), "");
  }
}

TEST(Spawn, ResetsSignalsToDefaultAndUnblocks) {
  struct sigaction ign {
  }, old_term{};
  ign.sa_handler = SIG_IGN;
  ::sigaction(SIGTERM, &ign, &old_term);
  sigset_t block, old_mask;
  sigemptyset(&block);
  sigaddset(&block, SIGUSR1);
  ::pthread_sigmask(SIG_BLOCK, &block, &old_mask);
  // grep itself, not a shell (a shell sets its own mask up).
  const std::vector<std::string> show = {"grep", "-E", "^Sig(Ign|Blk)", "/proc/self/status"};
  auto has_bit = [](const std::string& status, const char* field, int sig) {
    size_t at = status.find(field);
    unsigned long long mask =
        std::stoull(status.substr(at + std::string(field).size()), nullptr, 16);
    return (mask >> (sig - 1)) & 1;
  };
  for (bool fork_path : {false, true}) {
    SpawnOptions inherit;
    if (fork_path) inherit.parent_death_signal = SIGKILL;
    std::string s = RunCaptured(show, inherit).first;
    EXPECT_TRUE(has_bit(s, "SigIgn:", SIGTERM)) << s;
    EXPECT_TRUE(has_bit(s, "SigBlk:", SIGUSR1)) << s;
    SpawnOptions reset = inherit;
    reset.default_signals = {SIGTERM, SIGHUP};
    reset.unblock_signals = true;
    s = RunCaptured(show, reset).first;
    EXPECT_FALSE(has_bit(s, "SigIgn:", SIGTERM)) << s;
    EXPECT_FALSE(has_bit(s, "SigBlk:", SIGUSR1)) << s;
  }
  ::pthread_sigmask(SIG_SETMASK, &old_mask, nullptr);
  ::sigaction(SIGTERM, &old_term, nullptr);
}

TEST(Spawn, ParentDeathSignalReachesTheChild) {
  // A middle process spawns `sleep` with PR_SET_PDEATHSIG and exits: the kernel kills the
  // sleep. The middle process is forked here so the test itself stays the sleep's grandparent.
  Pipe pid_pipe = MakePipe();
  pid_t middle = ::fork();
  ASSERT_GE(middle, 0);
  if (middle == 0) {
    SpawnOptions o;
    o.argv = {"sleep", "30"};
    o.parent_death_signal = SIGKILL;
    Child c = Spawn(o);
    pid_t pid = c.pid();
    [[maybe_unused]] ssize_t n = ::write(pid_pipe.write.get(), &pid, sizeof pid);
    ::_exit(0);  // no destructor: only the kernel can end the sleep now
  }
  pid_pipe.write.reset();
  pid_t sleeper = 0;
  ASSERT_EQ(::read(pid_pipe.read.get(), &sleeper, sizeof sleeper),
            static_cast<ssize_t>(sizeof sleeper));
  int st;
  ::waitpid(middle, &st, 0);
  bool gone = false;
  for (int i = 0; i < 200 && !gone; ++i) {
    std::ifstream stat("/proc/" + std::to_string(sleeper) + "/stat");
    std::string text((std::istreambuf_iterator<char>(stat)), {});
    gone = text.empty() || text.find(") Z") != std::string::npos;
    if (!gone) std::this_thread::sleep_for(std::chrono::milliseconds(10));
  }
  EXPECT_TRUE(gone) << "sleep " << sleeper << " outlived its parent";
  if (!gone) ::kill(sleeper, SIGKILL);
}

TEST(Child, DestructorKillsAndReapsTheGroup) {
  pid_t pid;
  {
    SpawnOptions o;
    o.argv = {"sleep", "30"};
    o.new_process_group = true;
    Child c = Spawn(o);
    pid = c.pid();
    Child moved = std::move(c);
    EXPECT_FALSE(c.running());
    EXPECT_TRUE(moved.running());
  }
  EXPECT_EQ(::kill(pid, 0), -1);  // reaped: no zombie left
  EXPECT_EQ(errno, ESRCH);
}

TEST(SelfExe, IsThisTestsAbsolutePath) {
  const std::string exe = SelfExe();
  EXPECT_TRUE(fs::path(exe).is_absolute()) << exe;
  EXPECT_TRUE(fs::equivalent(exe, "/proc/self/exe"));
}

}  // namespace
}  // namespace seedgrid

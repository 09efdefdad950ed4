#include "experiments/command/gang.h"

#include <netdb.h>
#include <netinet/in.h>
#include <poll.h>
#include <signal.h>
#include <sys/socket.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <chrono>
#include <cstring>
#include <stdexcept>
#include <system_error>
#include <thread>

#include <fmt/format.h>

#include "core/sysutil.h"

namespace seedgrid::command {
namespace {

[[noreturn]] void Fail(const std::string& what) {
  throw std::system_error(errno, std::generic_category(), what);
}

// A TCP socket bound to a free port of this host; `listen` makes it a server.
Fd BoundSocket(int* port, bool listen_too) {
  Fd s(::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0));
  if (!s) Fail("socket");
  sockaddr_in a{};
  a.sin_family = AF_INET;
  a.sin_addr.s_addr = htonl(INADDR_ANY);
  socklen_t len = sizeof a;
  if (::bind(s.get(), reinterpret_cast<sockaddr*>(&a), sizeof a) != 0) Fail("bind");
  if (::getsockname(s.get(), reinterpret_cast<sockaddr*>(&a), &len) != 0) Fail("getsockname");
  if (listen_too && ::listen(s.get(), 128) != 0) Fail("listen");
  *port = ntohs(a.sin_port);
  return s;
}

Fd Connect(const std::string& host, int port) {
  const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(30);
  for (;;) {
    addrinfo hints{}, *res = nullptr;
    hints.ai_family = AF_INET;
    hints.ai_socktype = SOCK_STREAM;
    const int rc = ::getaddrinfo(host.c_str(), std::to_string(port).c_str(), &hints, &res);
    if (rc == 0) {
      Fd s(::socket(res->ai_family, res->ai_socktype | SOCK_CLOEXEC, res->ai_protocol));
      const bool ok = s && ::connect(s.get(), res->ai_addr, res->ai_addrlen) == 0;
      ::freeaddrinfo(res);
      if (ok) return s;
    }
    if (std::chrono::steady_clock::now() > deadline) {
      throw std::runtime_error(
          fmt::format("gang: cannot connect to rank 0's control port {}:{}", host, port));
    }
    std::this_thread::sleep_for(std::chrono::milliseconds(50));
  }
}

// Reads what `fd` has into `buf`; false on EOF or error.
bool ReadSome(int fd, std::string& buf) {
  char tmp[4096];
  ssize_t r;
  do {
    r = ::read(fd, tmp, sizeof tmp);
  } while (r < 0 && errno == EINTR);
  if (r <= 0) return false;
  buf.append(tmp, static_cast<size_t>(r));
  return true;
}

// Pops one whole line off `buf`.
bool NextLine(std::string& buf, std::string* line) {
  const size_t nl = buf.find('\n');
  if (nl == std::string::npos) return false;
  *line = buf.substr(0, nl);
  buf.erase(0, nl + 1);
  return true;
}

bool Ok(const ExitStatus& s) { return s.exited() && s.code() == 0; }

constexpr int kMemoryCode = 2;     // a line's code for the memory limit (gang.h)
constexpr int kTimeoutCode = 3;    // ... for the timeout
constexpr int kPreemptedCode = 4;  // ... for a preemption

// One rank's timeout and preemption (GangControl::Wait): SIGTERM to the command's group at
// the timeout or once the worker is told to stop, SIGKILL to its tree after the grace.
class TermThenKill {
 public:
  using Clock = std::chrono::steady_clock;
  explicit TermThenKill(const GangLimits& limits) : limits_(limits) {
    if (limits.timeout_s > 0) term_at_ = After(Clock::now(), limits.timeout_s);
  }
  // Called every round while the command runs: true once it was SIGKILLed.
  bool Poll(GuardedCommand& cmd, GangEnd* end) {
    const auto now = Clock::now();
    if (end->timed_out || end->preempted) {
      if (now < kill_at_) return false;
      cmd.Kill();
      return true;
    }
    if (now >= term_at_) {
      end->timed_out = true;
    } else if (limits_.stop_requested && now >= next_check_) {
      next_check_ = now + std::chrono::milliseconds(50);
      end->preempted = limits_.stop_requested();
    }
    if (end->timed_out || end->preempted) {
      cmd.Terminate();
      kill_at_ = After(now, end->timed_out ? limits_.grace_s : limits_.preempt_grace_s);
    }
    return false;
  }

 private:
  static Clock::time_point After(Clock::time_point t, double s) {
    return t + std::chrono::duration_cast<Clock::duration>(std::chrono::duration<double>(s));
  }
  const GangLimits& limits_;
  Clock::time_point term_at_ = Clock::time_point::max();
  Clock::time_point kill_at_ = Clock::time_point::max();
  Clock::time_point next_check_{};
};

std::string OneLine(std::string s) {
  std::replace(s.begin(), s.end(), '\n', ' ');
  return s;
}

}  // namespace

GangControl::GangControl(Collective& c, GangEnv* env) {
  constexpr size_t kHost = 256;
  GangEnv& g = *env;
  g.rank = rank_ = c.rank();
  g.world = c.size();
  std::vector<uint8_t> mine(kHost, 0), all(kHost * static_cast<size_t>(g.world), 0);
  const std::string host = Hostname();
  std::memcpy(mine.data(), host.data(), std::min(host.size(), kHost - 1));
  c.Gather(mine.data(), all.data(), kHost, DType::kUInt8, 0);
  c.Broadcast(all.data(), all.size(), DType::kUInt8, 0);
  int32_t ports[2] = {0, 0};  // MASTER_PORT, the control port
  if (rank_ == 0) {
    int master = 0, control = 0;
    BoundSocket(&master, false);  // closed again: the command's rank 0 binds it
    listen_ = BoundSocket(&control, true);
    ports[0] = master;
    ports[1] = control;
  }
  c.Broadcast(ports, 2, DType::kInt32, 0);
  auto host_of = [&](int r) { return std::string(reinterpret_cast<const char*>(&all[r * kHost])); };
  g.local_rank = 0;
  g.local_world = 0;
  for (int r = 0; r < g.world; ++r) {
    if (host_of(r) != host) continue;
    if (r < g.rank) ++g.local_rank;
    ++g.local_world;
  }
  g.master_addr = host_of(0) == host ? "127.0.0.1" : host_of(0);
  g.master_port = ports[0];
  if (rank_ != 0) {
    to_lead_ = Connect(g.master_addr, ports[1]);
    return;
  }
  while (static_cast<int>(peers_.size()) < g.world - 1) {
    pollfd p{listen_.get(), POLLIN, 0};
    const int rc = ::poll(&p, 1, 30000);
    if (rc < 0 && errno == EINTR) continue;
    if (rc <= 0) {
      throw std::runtime_error(fmt::format("gang: {} of {} ranks connected to rank 0 in 30 s",
                                           peers_.size() + 1, g.world));
    }
    Fd s(::accept4(listen_.get(), nullptr, nullptr, SOCK_CLOEXEC));
    if (!s) Fail("accept");
    peers_.push_back(std::move(s));
  }
}

void GangControl::SendLine(int fd, const std::string& line) {
  try {
    WriteAll(fd, OneLine(line) + "\n");
  } catch (const std::exception&) {
    // The peer is gone: it has nothing left to stop.
  }
}

void GangControl::Broadcast(const std::string& line) {
  for (auto& p : peers_) {
    if (p) SendLine(p.get(), line);
  }
}

// Long (~110 lines) for one reason: rank 0's and the other ranks' loops share the command's
// handling (its end, its memory, the stop) and differ only in who they listen to; apart they
// would repeat it.
GangEnd GangControl::Wait(GuardedCommand& cmd, int64_t memory_mb, const GangLimits& limits,
                          const std::function<std::string(ExitStatus)>& describe) {
  TermThenKill stopper(limits);
  GangEnd end;
  std::optional<ExitStatus> mine;
  std::string first_error;  // the first failure seen in the gang
  int first_code = 0;
  bool killed = false;
  auto stop = [&](int code, const std::string& why) {
    if (first_error.empty()) {
      first_error = why;
      first_code = code;
    }
    if (!mine && !killed) {
      cmd.Kill();
      killed = true;
      end.stopped_by = first_error;
      end.stopped_by_memory = first_code == kMemoryCode;
    }
  };
  std::vector<std::string> bufs(rank_ == 0 ? peers_.size() : 1);
  std::vector<bool> reported(bufs.size(), false);
  auto more = [&] {
    if (!mine) return true;
    if (rank_ != 0) return false;
    return !std::all_of(reported.begin(), reported.end(), [](bool b) { return b; });
  };
  auto next_check = std::chrono::steady_clock::now();
  while (more()) {
    if (!mine && !killed) killed = stopper.Poll(cmd, &end);
    if (!mine && !killed && memory_mb > 0 && std::chrono::steady_clock::now() >= next_check) {
      next_check = std::chrono::steady_clock::now() + std::chrono::milliseconds(50);
      if (auto over = cmd.OverMemory(memory_mb)) {
        end.over_memory = *over;
        cmd.Kill();
        killed = true;
      }
    }
    if (!mine && (mine = cmd.TryWait())) {
      const int code = !end.over_memory.empty() ? kMemoryCode
                       : end.timed_out          ? kTimeoutCode
                       : end.preempted          ? kPreemptedCode
                       : Ok(*mine)              ? 0
                                                : 1;
      std::string what = end.over_memory;
      if (what.empty()) {
        what = end.timed_out   ? fmt::format("timeout ({:.3g} s), then ", limits.timeout_s)
               : end.preempted ? "preempted, then "
                               : "";
        what += describe(*mine);
      }
      if (rank_ != 0) {
        SendLine(to_lead_.get(), fmt::format("E {} {} {}", rank_, code, what));
        break;
      }
      if (code != 0 && first_error.empty()) {
        first_error = "gang rank 0: " + what;
        first_code = code;
        if (code != kTimeoutCode && code != kPreemptedCode)
          Broadcast(fmt::format("K {} {}", code, first_error));
      }
    }
    std::vector<pollfd> fds;
    std::vector<size_t> index;
    for (size_t i = 0; i < bufs.size(); ++i) {
      if (reported[i]) continue;
      fds.push_back({rank_ == 0 ? peers_[i].get() : to_lead_.get(), POLLIN, 0});
      index.push_back(i);
    }
    if (fds.empty()) {
      std::this_thread::sleep_for(std::chrono::milliseconds(20));
      continue;
    }
    if (::poll(fds.data(), fds.size(), 50) <= 0) continue;
    for (size_t k = 0; k < fds.size(); ++k) {
      if (!fds[k].revents) continue;
      const size_t i = index[k];
      const bool open = ReadSome(fds[k].fd, bufs[i]);
      std::string line;
      while (NextLine(bufs[i], &line)) {
        int r = 0, code = 0, used = 0;
        if (rank_ != 0 && std::sscanf(line.c_str(), "K %d %n", &code, &used) == 1 && used > 0) {
          stop(code, line.substr(used));
        }
        if (rank_ == 0 && std::sscanf(line.c_str(), "E %d %d %n", &r, &code, &used) == 2 &&
            used > 0) {
          reported[i] = true;
          if (code == kTimeoutCode || code == kPreemptedCode) {
            if (first_error.empty()) {  // every rank keeps these itself (gang.h)
              first_error = fmt::format("gang rank {}: {}", r, line.substr(used));
              first_code = code;
            }
          } else if (code != 0 && first_error.empty()) {
            const std::string why = fmt::format("gang rank {}: {}", r, line.substr(used));
            Broadcast(fmt::format("K {} {}", code, why));
            stop(code, why);
          }
        }
      }
      if (!open) {
        reported[i] = true;
        const std::string why = rank_ == 0 ? "a gang rank's worker ended before its command did"
                                           : "gang rank 0's worker ended before its command did";
        if (first_error.empty()) {
          if (rank_ == 0) Broadcast("K 1 " + why);
          stop(1, why);
        }
      }
    }
  }
  end.status = mine ? *mine : cmd.Wait();
  return end;
}

}  // namespace seedgrid::command

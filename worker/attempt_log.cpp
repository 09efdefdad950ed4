#include "worker/attempt_log.h"

#include <fcntl.h>
#include <poll.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <iostream>
#include <stdexcept>
#include <system_error>
#include <vector>

#include <fmt/format.h>

namespace seedgrid {
namespace {

constexpr size_t kRecentKeep = 4096;

void FlushStdio() {
  std::cout.flush();
  std::cerr.flush();
  std::fflush(nullptr);
}

Fd DupCloexec(int fd) {
  int d = ::fcntl(fd, F_DUPFD_CLOEXEC, 3);
  if (d < 0) throw std::system_error(errno, std::generic_category(), fmt::format("dup fd {}", fd));
  return Fd(d);
}

void Dup2(int from, int to) {
  while (::dup2(from, to) < 0) {
    if (errno != EINTR) {
      throw std::system_error(errno, std::generic_category(), fmt::format("dup2 onto fd {}", to));
    }
  }
}

}  // namespace

LogCap ParseLogCap(std::string_view text) {
  const std::string v(text);
  char* end = nullptr;
  errno = 0;
  const double n = std::strtod(v.c_str(), &end);
  const std::string_view unit(end);
  const double scale = unit.empty()  ? 1
                       : unit == "K" ? 1024.0
                       : unit == "M" ? 1048576.0
                       : unit == "G" ? 1073741824.0
                                     : -1;
  if (v.empty() || end == v.c_str() || errno != 0 || scale < 0 || !(n >= 0) || n * scale > 1e15) {
    throw std::invalid_argument(
        fmt::format("SEEDGRID_LOG_CAP='{}': expected a byte count such as 65536, 512K or 1M", v));
  }
  LogCap cap;
  cap.head = cap.tail = static_cast<int64_t>(n * scale);
  return cap;
}

CappedLog::~CappedLog() {
  try {
    Close();
  } catch (...) {
  }
}

void CappedLog::Fail(const std::string& what) {
  if (!failed_) {
    std::string msg = fmt::format("seedgrid: attempt log {}: {}: {} (this log is dropped)\n", path_,
                                  what, std::strerror(errno));
    (void)!::write(STDERR_FILENO, msg.data(), msg.size());
  }
  failed_ = true;
  fd_.reset();
}

void CappedLog::Append(std::string_view data) {
  if (failed_ || data.empty()) return;
  if (!fd_) {
    std::error_code ec;
    std::filesystem::create_directories(std::filesystem::path(path_).parent_path(), ec);
    fd_.reset(::open(path_.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_APPEND | O_CLOEXEC, 0644));
    if (!fd_) return Fail("open");
  }
  while (!data.empty()) {
    ssize_t n = ::write(fd_.get(), data.data(), data.size());
    if (n < 0) {
      if (errno == EINTR) continue;
      return Fail("write");
    }
    data.remove_prefix(static_cast<size_t>(n));
  }
}

void CappedLog::Write(std::string_view data) {
  if (data.empty() || closed_) return;
  recent_.append(data);
  if (recent_.size() > 2 * kRecentKeep) recent_.erase(0, recent_.size() - kRecentKeep);
  const int64_t size = static_cast<int64_t>(data.size());
  const int64_t in_head = std::clamp<int64_t>(cap_.head - total_, 0, size);
  if (in_head > 0) {
    Append(data.substr(0, static_cast<size_t>(in_head)));
    head_ends_line_ = data[static_cast<size_t>(in_head) - 1] == '\n';
  }
  std::string_view rest = data.substr(static_cast<size_t>(in_head));
  ring_.append(rest);
  if (!cut_ && total_ + size <= cap_.head + cap_.tail) {
    Append(rest);
  } else if (!cut_) {
    // Over head + tail: back to the head; the tail waits in ring_ until Close.
    cut_ = true;
    if (fd_ && ::ftruncate(fd_.get(), cap_.head) != 0) Fail("truncate");
  }
  total_ += size;
  const size_t keep = static_cast<size_t>(cap_.tail);
  if (ring_.size() > 2 * keep) ring_.erase(0, ring_.size() - keep);
}

void CappedLog::Close() {
  if (closed_) return;
  closed_ = true;
  if (cut_) {
    const size_t keep = std::min(ring_.size(), static_cast<size_t>(cap_.tail));
    const int64_t cut = total_ - cap_.head - static_cast<int64_t>(keep);
    std::string marker = fmt::format(
        "{}[seedgrid: {} bytes cut here; this log keeps the first {} and the last {}]\n",
        head_ends_line_ ? "" : "\n", cut, cap_.head, keep);
    Append(marker);
    Append(std::string_view(ring_).substr(ring_.size() - keep));
  }
  ring_.clear();
  ring_.shrink_to_fit();
  fd_.reset();
}

std::string CappedLog::LastLines(int n) const {
  std::vector<std::string_view> lines;
  std::string_view text = recent_;
  while (!text.empty() && static_cast<int>(lines.size()) < n) {
    size_t end = text.find_last_not_of("\n\r \t");
    if (end == std::string_view::npos) break;
    size_t start = text.rfind('\n', end);
    start = start == std::string_view::npos ? 0 : start + 1;
    lines.push_back(text.substr(start, end - start + 1));
    text = text.substr(0, start);
  }
  std::string out;
  for (auto it = lines.rbegin(); it != lines.rend(); ++it) {
    if (!out.empty()) out += '\n';
    out += *it;
  }
  return out;
}

AttemptLogs::AttemptLogs(const std::string& dir, int attempt, LogCap cap, int gang_rank)
    : out(dir + "/" + AttemptLogName(attempt, false, gang_rank), cap),
      err(dir + "/" + AttemptLogName(attempt, true, gang_rank), cap) {}

StdioCapture::StdioCapture(AttemptLogs& logs) : logs_(logs) {
  FlushStdio();
  saved_out_ = DupCloexec(STDOUT_FILENO);
  saved_err_ = DupCloexec(STDERR_FILENO);
  Pipe out = MakePipe(), err = MakePipe(), stop = MakePipe();
  Dup2(out.write.get(), STDOUT_FILENO);  // dup2 clears FD_CLOEXEC: a child inherits fds 1, 2
  try {
    Dup2(err.write.get(), STDERR_FILENO);
  } catch (...) {
    Dup2(saved_out_.get(), STDOUT_FILENO);
    throw;
  }
  out_read_ = std::move(out.read);
  err_read_ = std::move(err.read);
  stop_read_ = std::move(stop.read);
  stop_write_ = std::move(stop.write);
  SetNonBlocking(out_read_.get());
  SetNonBlocking(err_read_.get());
  thread_ = std::thread([this] { Drain(); });
}

StdioCapture::~StdioCapture() {
  FlushStdio();
  // Restoring fds 1 and 2 closes our ends of the pipes; what was written is in them already.
  (void)::dup2(saved_out_.get(), STDOUT_FILENO);
  (void)::dup2(saved_err_.get(), STDERR_FILENO);
  const char byte = 0;
  while (::write(stop_write_.get(), &byte, 1) < 0 && errno == EINTR) {
  }
  thread_.join();
}

// Reads both pipes into the logs until told to stop, then empties them without waiting for a
// writer that may never close (a child the shard left behind).
void StdioCapture::Drain() {
  pollfd fds[3] = {
      {out_read_.get(), POLLIN, 0}, {err_read_.get(), POLLIN, 0}, {stop_read_.get(), POLLIN, 0}};
  CappedLog* sink[2] = {&logs_.out, &logs_.err};
  char buf[65536];
  auto read_all = [&](int i) {
    for (;;) {
      ssize_t n = ::read(fds[i].fd, buf, sizeof buf);
      if (n > 0) {
        sink[i]->Write(std::string_view(buf, static_cast<size_t>(n)));
        continue;
      }
      if (n < 0 && errno == EINTR) continue;
      if (n == 0) fds[i].fd = -1;  // EOF: poll ignores negative fds
      return;
    }
  };
  for (;;) {
    if (::poll(fds, 3, -1) < 0) {
      if (errno == EINTR) continue;
      break;
    }
    for (int i = 0; i < 2; ++i) {
      if (fds[i].fd >= 0 && fds[i].revents) read_all(i);
    }
    if (fds[2].revents) break;
  }
  for (int i = 0; i < 2; ++i) {
    if (fds[i].fd >= 0) read_all(i);
  }
}

namespace {

Fd Memfd(const char* name) {
  const int fd = ::memfd_create(name, MFD_CLOEXEC);
  if (fd < 0) throw std::system_error(errno, std::generic_category(), "memfd_create");
  Fd f(fd);
  // Appends: after ftruncate(0) the next write starts at 0 again, whoever holds the fd.
  if (::fcntl(fd, F_SETFL, O_APPEND) != 0)
    throw std::system_error(errno, std::generic_category(), "fcntl(O_APPEND)");
  return f;
}

// Hands the spool's bytes to `sink` (nullptr: to fd `to`) and empties it.
void Empty(int spool, CappedLog* sink, int to) {
  struct stat st {};
  if (::fstat(spool, &st) != 0 || st.st_size == 0) return;
  char buf[65536];
  for (off_t at = 0; at < st.st_size;) {
    const ssize_t n = ::pread(spool, buf, sizeof buf, at);
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) break;
    if (sink) {
      sink->Write(std::string_view(buf, static_cast<size_t>(n)));
    } else {
      for (ssize_t done = 0; done < n;) {
        const ssize_t w = ::write(to, buf + done, static_cast<size_t>(n - done));
        if (w < 0 && errno == EINTR) continue;
        if (w <= 0) break;
        done += w;
      }
    }
    at += n;
  }
  (void)::ftruncate(spool, 0);
}

}  // namespace

StdioSpool::StdioSpool()
    : out_(Memfd("seedgrid-stdout")),
      err_(Memfd("seedgrid-stderr")),
      saved_out_(DupCloexec(STDOUT_FILENO)),
      saved_err_(DupCloexec(STDERR_FILENO)) {}

SpoolCapture::SpoolCapture(StdioSpool& spool, AttemptLogs& logs) : spool_(spool), logs_(logs) {
  FlushStdio();
  Empty(spool_.out(), nullptr, spool_.saved_out());
  Empty(spool_.err(), nullptr, spool_.saved_err());
  Dup2(spool_.out(), STDOUT_FILENO);  // dup2 clears FD_CLOEXEC: a child inherits fds 1, 2
  try {
    Dup2(spool_.err(), STDERR_FILENO);
  } catch (...) {
    Dup2(spool_.saved_out(), STDOUT_FILENO);
    throw;
  }
}

SpoolCapture::~SpoolCapture() {
  FlushStdio();
  (void)::dup2(spool_.saved_out(), STDOUT_FILENO);
  (void)::dup2(spool_.saved_err(), STDERR_FILENO);
  Empty(spool_.out(), &logs_.out, -1);
  Empty(spool_.err(), &logs_.err, -1);
}

}  // namespace seedgrid

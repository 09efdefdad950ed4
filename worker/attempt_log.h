// Per-attempt logs: every attempt's stdout and stderr, beside the shard's file
// (core/log_layout.h):
//
//   <out>/<sweep>/<stage>/<id>.logs/attempt-<n>.out      (stdout)
//   <out>/<sweep>/<stage>/<id>.logs/attempt-<n>.err      (stderr)
//
// (gang ranks other than the lead write attempt-<n>.rank<k>.{out,err}). Read by
// `seedgrid logs` (coordinator/commands.h) and pointed to by `status` and `show`.
//
// Size cap, head and tail: a log keeps the first `head` bytes and the last `tail` bytes of its
// stream. Up to head + tail bytes everything is written as it arrives (so `logs --follow`
// sees it live). Past that, the file is cut back to its head and the tail is kept in memory
// (a ring of `tail` bytes) until the attempt ends, when one marker line saying how many bytes
// were cut and the last `tail` bytes are appended:
//
//   [seedgrid: 1234567 bytes cut here; this log keeps the first 1048576 and the last 1048576]
//
// A stream that stays empty leaves no file (the no-op shard of a dispatch benchmark costs no
// open(2)); the directory is made on the first byte.
//
// Who writes them: the supervisor (worker/supervisor.h) routes its executor's stdout and
// stderr pipes into the attempt at the head of the executor's queue, and captures its own
// fds 1 and 2 while it runs an inline shard (SpoolCapture: no thread, no pipe, written when the
// shard ends) or a gang shard (StdioCapture: a thread drains pipes, so a long training's log
// grows as it runs) in-process. A process the
// shard starts inherits fds 1 and 2 and lands in the same files. Frames never share these fds
// (the executor's frames use fds 3 and 4).
#pragma once

#include <cstdint>
#include <memory>
#include <mutex>
#include <string>
#include <string_view>
#include <thread>

#include "core/log_layout.h"
#include "core/process.h"

namespace seedgrid {

struct LogCap {
  int64_t head = int64_t{1} << 20;  // bytes kept from the start
  int64_t tail = int64_t{1} << 20;  // bytes kept from the end
};

// `SEEDGRID_LOG_CAP`'s value: bytes kept at each end, with an optional K, M or G suffix
// ("65536", "512K", "1M"). Throws std::invalid_argument naming the variable.
LogCap ParseLogCap(std::string_view text);

// One capped stream written to one file (see the header comment). Not thread-safe.
class CappedLog {
 public:
  CappedLog(std::string path, LogCap cap) : path_(std::move(path)), cap_(cap) {}
  ~CappedLog();  // Close(), errors swallowed
  CappedLog(const CappedLog&) = delete;
  CappedLog& operator=(const CappedLog&) = delete;

  void Write(std::string_view data);
  // Appends the marker and the kept tail when bytes were cut; closes the file. Idempotent.
  // A failure to write is reported once on stderr: a log must never fail its shard.
  void Close();

  const std::string& path() const { return path_; }
  int64_t bytes() const { return total_; }  // bytes the stream carried, cut ones included
  // The last `n` non-empty lines the stream carried (from a small rolling window).
  std::string LastLines(int n) const;

 private:
  void Fail(const std::string& what);
  void Append(std::string_view data);  // to the file

  std::string path_;
  LogCap cap_;
  Fd fd_;
  bool failed_ = false, closed_ = false, cut_ = false;
  bool head_ends_line_ = true;  // the marker starts a line of its own
  int64_t total_ = 0;
  std::string ring_;    // past head + tail: the newest bytes (up to 2 * tail, trimmed lazily)
  std::string recent_;  // the last few KiB, for LastLines
};

// stdout and stderr of one attempt.
struct AttemptLogs {
  AttemptLogs(const std::string& dir, int attempt, LogCap cap, int gang_rank = 0);
  void Close() {
    out.Close();
    err.Close();
  }
  CappedLog out, err;
};

// While alive, this process's fds 1 and 2 write to pipes that a thread drains into `logs`
// (stdio and iostreams are flushed at both ends). For shards run in the supervisor itself.
// The destructor restores the fds and drains what was written before it, without waiting for
// a child that still holds the pipes open.
class StdioCapture {
 public:
  explicit StdioCapture(AttemptLogs& logs);
  ~StdioCapture();
  StdioCapture(const StdioCapture&) = delete;
  StdioCapture& operator=(const StdioCapture&) = delete;

 private:
  void Drain();

  AttemptLogs& logs_;
  Fd saved_out_, saved_err_;
  Fd out_read_, err_read_, stop_read_, stop_write_;
  std::thread thread_;
};

// Two anonymous in-memory files (memfd, O_APPEND) that stand in for fds 1 and 2 while an
// inline shard runs: made once per worker, emptied after each shard. Why not StdioCapture: an
// inline shard is the dispatch fast path (a few µs a shard); three pipes and a thread per shard
// cost ~30 µs, swapping fds 1 and 2 and reading back what a shard wrote costs ~1 µs.
class StdioSpool {
 public:
  StdioSpool();  // throws std::system_error; keeps copies of fds 1 and 2 as they are now
  int out() const { return out_.get(); }
  int err() const { return err_.get(); }
  int saved_out() const { return saved_out_.get(); }  // the worker's own fds 1 and 2
  int saved_err() const { return saved_err_.get(); }

 private:
  Fd out_, err_, saved_out_, saved_err_;
};

// While alive, fds 1 and 2 write to the spool; the destructor restores them and moves what the
// shard wrote into `logs` (then empties the spool). Bytes found in the spool at the start (a
// child an earlier shard left behind) go to the worker's own fds, as other stray output does.
// A process the shard starts and leaves running keeps writing to the spool: what it writes
// lands in the next inline shard's start (as stray output), not in its log.
class SpoolCapture {
 public:
  SpoolCapture(StdioSpool& spool, AttemptLogs& logs);
  ~SpoolCapture();
  SpoolCapture(const SpoolCapture&) = delete;
  SpoolCapture& operator=(const SpoolCapture&) = delete;

 private:
  StdioSpool& spool_;
  AttemptLogs& logs_;
};

}  // namespace seedgrid

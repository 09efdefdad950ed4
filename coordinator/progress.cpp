#include "coordinator/progress.h"

#include <unistd.h>

#include <cstdio>
#include <cstdlib>
#include <cstring>

#include <fmt/format.h>

namespace seedgrid {
namespace {

std::string Duration(double s) {
  if (s < 0 || s > 1e7) return "?";
  if (s < 60) return fmt::format("{:.0f}s", s);
  if (s < 3600) return fmt::format("{}m{:02d}s", int(s) / 60, int(s) % 60);
  return fmt::format("{}h{:02d}m", int(s) / 3600, (int(s) % 3600) / 60);
}

}  // namespace

ProgressLine::ProgressLine(std::string sweep, int64_t total, bool quiet)
    : sweep_(std::move(sweep)), total_(total) {
  const char* env = std::getenv("SEEDGRID_PROGRESS");
  std::string m = env ? env : "";
  if (quiet || m == "off") {
    mode_ = Mode::kOff;
  } else if (m == "tty" || (m.empty() && ::isatty(STDOUT_FILENO))) {
    mode_ = Mode::kTty;
  } else {
    mode_ = Mode::kPlain;
  }
  interval_s_ = mode_ == Mode::kTty ? 0.2 : 10.0;
  if (const char* iv = std::getenv("SEEDGRID_PROGRESS_INTERVAL")) interval_s_ = std::atof(iv);
}

void ProgressLine::Observe(const std::vector<SchedEvent>& events,
                           const std::vector<SchedTask>& tasks) {
  for (const auto& e : events) {
    if (auto* d = std::get_if<DispatchedEvent>(&e)) {
      stage_ = tasks[d->task].msg.key.stage();
    } else if (auto* p = std::get_if<ProgressEvent>(&e)) {
      shard_progress_ =
          fmt::format("{} {}/{}", tasks[p->task].msg.key.id().hex.substr(0, 8), p->step, p->total);
    } else if (auto* f = std::get_if<FinishedEvent>(&e)) {
      if (f->done.outcome != Outcome::kOk && f->done.outcome != Outcome::kPreempted &&
          mode_ != Mode::kOff) {
        std::string line =
            fmt::format("shard {} ({}) attempt {} {}: {}", tasks[f->task].msg.key.id().hex,
                        tasks[f->task].msg.key.stage(), f->done.attempt, ToString(f->done.outcome),
                        f->done.error);
        if (mode_ == Mode::kTty) std::fputs("\r\033[K", stdout);
        fmt::print("{}{}\n", line, f->new_status == ShardStatus::kPending ? " (will retry)" : "");
      }
    }
  }
}

std::string ProgressLine::Line(const SchedCounts& c, double elapsed) const {
  int64_t finished_now = c.done - done_at_start_;
  double rate = elapsed > 0 ? finished_now / elapsed : 0;
  int64_t left = c.pending + c.running + c.preempted;
  std::string eta = rate > 0 ? Duration(left / rate) : "?";
  std::string s = fmt::format("[{}] {}/{} done · {} running · {} failed · {} pending", sweep_,
                              c.done, total_, c.running, c.failed, c.pending + c.preempted);
  if (c.blocked) s += fmt::format(" · {} blocked", c.blocked);
  s += fmt::format(" · {:.1f}/s · ETA {}", rate, eta);
  if (!stage_.empty()) s += " · stage " + stage_;
  if (!shard_progress_.empty() && c.running > 0) s += " · " + shard_progress_;
  return s;
}

void ProgressLine::Tick(const SchedCounts& c, std::chrono::steady_clock::time_point now) {
  if (done_at_start_ < 0) done_at_start_ = c.done;
  if (mode_ == Mode::kOff) return;
  if (std::chrono::duration<double>(now - last_).count() < interval_s_) return;
  last_ = now;
  std::string line = Line(c, std::chrono::duration<double>(now - start_).count());
  if (mode_ == Mode::kTty) {
    fmt::print("\r\033[K{}", line);
  } else {
    fmt::print("{}\n", line);
  }
  std::fflush(stdout);
}

void ProgressLine::Finish(const SchedCounts& c, double seconds) {
  if (mode_ == Mode::kOff) return;
  if (done_at_start_ < 0) done_at_start_ = c.done;
  if (mode_ == Mode::kTty) std::fputs("\r\033[K", stdout);
  fmt::print("{}\n", Line(c, seconds));
  fmt::print("[{}] finished in {}: {} done, {} failed, {} blocked, {} preempted, {} pending\n",
             sweep_, Duration(seconds), c.done, c.failed, c.blocked, c.preempted, c.pending);
  std::fflush(stdout);
}

}  // namespace seedgrid

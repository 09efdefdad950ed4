#include "worker/shard_exec.h"

#include <fcntl.h>
#include <unistd.h>

#include <chrono>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <memory>
#include <optional>

#include <fmt/format.h>

#include "core/shard_control.h"
#include "core/sysutil.h"

namespace seedgrid {
namespace {

namespace fs = std::filesystem;

ShardTaskView MakeView(const RunShard& t) {
  return {t.key, t.sweep, t.attempt, t.inputs, t.memory_mb};
}

class LocalContext final : public ShardContext, public ShardControl {
 public:
  LocalContext(const RunShard& task, const LocalRunOptions& o) : task_(task), options_(o) {}
  ~LocalContext() override {
    writer_.reset();
    if (!temp_path_.empty()) ::unlink(temp_path_.c_str());
  }

  // Built on first use: a runner that reads nothing of its task (noop, a shard's whole cost
  // at dispatch rates) copies nothing (and the key parses its JSON only when asked).
  const ShardTaskView& task() const override {
    if (!view_) view_ = MakeView(task_);
    return *view_;
  }
  H5Writer& out() override {
    if (!writer_) {
      fs::create_directories(fs::path(task_.out_path).parent_path());
      temp_path_ = TempPathFor(task_.out_path, task_.attempt);
      writer_ = std::make_unique<H5Writer>(temp_path_);
    }
    return *writer_;
  }
  std::string artifact_dir() override {
    fs::create_directories(task_.artifact_dir);
    return task_.artifact_dir;
  }
  void Metric(const std::string& name, double value) override {
    for (auto& [k, v] : metrics_) {
      if (k == name) {
        v = value;
        return;
      }
    }
    metrics_.emplace_back(name, value);
  }
  void Progress(int64_t step, int64_t total) override {
    if (!options_.on_progress) return;
    auto now = std::chrono::steady_clock::now();
    if (step >= total || std::chrono::duration<double>(now - last_progress_).count() >=
                             options_.progress_interval_s) {
      last_progress_ = now;
      options_.on_progress(step, total);
    }
  }
  Collective* collective() override { return options_.collective; }
  int threads() const override { return options_.threads; }
  std::string device() const override { return options_.device; }
  ShardTimeLimits time_limits() const override { return {task_.timeout_s, task_.grace_s}; }
  bool stop_requested() const override {
    return options_.stop_requested && options_.stop_requested();
  }

  // After a successful run: attributes, close, publish. Returns the published path or "".
  std::string Publish() {
    if (!options_.publish) return "";
    if (!writer_ && metrics_.empty()) return "";
    H5Writer& w = out();
    const ShardFileHeader h{task_.key, task_.sweep, task_.attempt};
    WriteShardAttributes(w, h, metrics_);
    w.Close();
    writer_.reset();
    PublishFile(temp_path_, task_.out_path);
    temp_path_.clear();
    return task_.out_path;
  }

  std::vector<std::pair<std::string, double>>& metrics() { return metrics_; }

 private:
  const RunShard& task_;
  mutable std::optional<ShardTaskView> view_;
  LocalRunOptions options_;
  std::unique_ptr<H5Writer> writer_;
  std::string temp_path_;
  std::vector<std::pair<std::string, double>> metrics_;
  std::chrono::steady_clock::time_point last_progress_{};
};

}  // namespace

ShardDone RunShardLocally(const RunShard& task, const RunnerRegistry& runners,
                          const LocalRunOptions& options) {
  ShardDone done;
  done.id = task.key.id();
  done.attempt = task.attempt;
  done.start = UnixNow();
  try {
    const Runner* runner = runners.Find(task.key.kind());
    if (!runner) {
      throw std::runtime_error(
          fmt::format("kind '{}' has no runner in this seedgrid build (built without LibTorch?)",
                      task.key.kind()));
    }
    LocalContext ctx(task, options);
    (*runner)(ctx);
    done.artifact = ctx.Publish();
    done.metrics = std::move(ctx.metrics());
    done.outcome = Outcome::kOk;
  } catch (const ShardFailure& e) {
    done.outcome = e.outcome();
    done.error = e.what();
  } catch (const std::exception& e) {
    done.outcome = Outcome::kError;
    done.error = e.what();
  } catch (...) {
    done.outcome = Outcome::kError;
    done.error = "unknown exception";
  }
  done.end = UnixNow();
  return done;
}

int64_t TakePeakRssKb() {
  int64_t kb = 0;
  std::ifstream status("/proc/self/status");
  std::string line;
  while (std::getline(status, line)) {
    if (line.rfind("VmHWM:", 0) == 0) {
      kb = std::strtoll(line.c_str() + 6, nullptr, 10);
      break;
    }
  }
  int fd = ::open("/proc/self/clear_refs", O_WRONLY | O_CLOEXEC);
  if (fd >= 0) {
    (void)!::write(fd, "5", 1);
    ::close(fd);
  }
  return kb;
}

int64_t CurrentRssKb() {
  static int fd = ::open("/proc/self/statm", O_RDONLY | O_CLOEXEC);
  if (fd < 0) return 0;
  char buf[128];
  ssize_t n = ::pread(fd, buf, sizeof buf - 1, 0);
  if (n <= 0) return 0;
  buf[n] = 0;
  long long size = 0, resident = 0;
  if (std::sscanf(buf, "%lld %lld", &size, &resident) != 2) return 0;
  static const long page_kb = ::sysconf(_SC_PAGESIZE) / 1024;
  return resident * page_kb;
}

}  // namespace seedgrid

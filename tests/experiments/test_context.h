// A ShardContext for running experiment runners in tests without the runtime: the shard file and
// artifact dir live in a fresh temporary directory (removed on destruction unless keep()),
// metrics and progress are recorded in memory.
#pragma once

#include <unistd.h>

#include <atomic>
#include <cstdlib>
#include <filesystem>
#include <map>
#include <memory>
#include <string>

#include "core/kinds.h"
#include "core/runner.h"
#include "core/store.h"

namespace seedgrid::testing {

// A unique temporary directory, removed recursively on destruction.
class TempDir {
 public:
  TempDir() {
    static std::atomic<int> counter{0};
    path_ = std::filesystem::temp_directory_path() /
            ("seedgrid-test-" + std::to_string(::getpid()) + "-" + std::to_string(counter++));
    std::filesystem::remove_all(path_);
    std::filesystem::create_directories(path_);
  }
  ~TempDir() {
    std::error_code ec;
    if (!keep_) std::filesystem::remove_all(path_, ec);
  }
  TempDir(const TempDir&) = delete;
  TempDir& operator=(const TempDir&) = delete;
  const std::filesystem::path& path() const { return path_; }
  std::string str() const { return path_.string(); }
  void keep() { keep_ = true; }

 private:
  std::filesystem::path path_;
  bool keep_ = false;
};

class TestShardContext : public ShardContext {
 public:
  // `params` are merged over the kind's defaults the way the spec does (objects merge, other
  // values replace), so tests give only what they change.
  TestShardContext(const KindConfig& kind, const Json& params, int64_t seed,
                   std::vector<InputArtifact> inputs = {}, Collective* collective = nullptr)
      : collective_(collective) {
    Json merged = kind.defaults;
    Merge(merged, params);
    task_.key = ShardKey({.id = ShardId{"00000000000000" + std::to_string(10 + seed % 90)},
                          .stage = "test",
                          .kind = kind.name,
                          .seed = seed,
                          .role = ShardRole::kSingle},
                         merged, Json::object());
    task_.sweep = "test";
    if (kind.validate) {
      const auto problems = kind.validate(merged);
      if (!problems.empty()) {
        std::string all;
        for (const auto& p : problems) all += p + "; ";
        throw std::runtime_error("test params invalid: " + all);
      }
    }
    task_.inputs = std::move(inputs);
    writer_ = std::make_unique<H5Writer>((dir_.path() / "shard.h5").string());
  }

  const ShardTaskView& task() const override { return task_; }
  H5Writer& out() override { return *writer_; }
  std::string artifact_dir() override {
    const auto d = dir_.path() / "artifacts";
    std::filesystem::create_directories(d);
    return d.string();
  }
  void Metric(const std::string& name, double value) override { metrics[name] = value; }
  void Progress(int64_t step, int64_t total) override {
    last_step = step;
    last_total = total;
  }
  Collective* collective() override { return collective_; }
  int threads() const override { return threads_; }
  std::string device() const override { return "cpu"; }

  void set_threads(int t) { threads_ = t; }
  // Closes the shard file (call before reading it back).
  std::string Finish() {
    writer_->Close();
    return (dir_.path() / "shard.h5").string();
  }
  std::string h5_path() const { return (dir_.path() / "shard.h5").string(); }
  // An InputArtifact describing this shard, for a downstream runner.
  InputArtifact AsInput() {
    return InputArtifact{task_.key, h5_path(), (dir_.path() / "artifacts").string()};
  }
  TempDir& dir() { return dir_; }

  std::map<std::string, double> metrics;
  int64_t last_step = 0, last_total = 0;

 private:
  static void Merge(Json& base, const Json& patch) {
    if (!base.is_object() || !patch.is_object()) {
      base = patch;
      return;
    }
    for (const auto& [k, v] : patch.items()) Merge(base[k], v);
  }

  TempDir dir_;
  ShardTaskView task_;
  std::unique_ptr<H5Writer> writer_;
  Collective* collective_;
  int threads_ = 1;
};

}  // namespace seedgrid::testing

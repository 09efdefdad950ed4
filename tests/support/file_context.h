// A ShardContext over a given task that writes the shard's HDF5 file and artifact directory at
// paths the caller chooses (no temporary directory, nothing removed): for tests and benchmarks
// that chain runners by hand (a map shard's file is the reduce shard's input).
#pragma once

#include <filesystem>
#include <map>
#include <memory>
#include <string>

#include "core/runner.h"
#include "core/store.h"

namespace seedgrid::testing {

class FileShardContext final : public ShardContext {
 public:
  FileShardContext(ShardTaskView view, std::filesystem::path out, std::filesystem::path artifacts,
                   int threads = 1, Collective* gang = nullptr)
      : view_(std::move(view)),
        out_(std::move(out)),
        artifacts_(std::move(artifacts)),
        threads_(threads),
        gang_(gang) {}
  const ShardTaskView& task() const override { return view_; }
  H5Writer& out() override {
    if (!writer_) writer_ = std::make_unique<H5Writer>(out_.string());
    return *writer_;
  }
  std::string artifact_dir() override {
    std::filesystem::create_directories(artifacts_);
    return artifacts_.string();
  }
  void Metric(const std::string& name, double value) override { metrics[name] = value; }
  void Progress(int64_t, int64_t) override {}
  Collective* collective() override { return gang_; }
  int threads() const override { return threads_; }
  std::string device() const override { return "cpu"; }
  // Closes the shard file (call before reading it back).
  void Close() {
    if (writer_) writer_->Close();
  }

  std::map<std::string, double> metrics;

 private:
  ShardTaskView view_;
  std::filesystem::path out_, artifacts_;
  int threads_;
  Collective* gang_;
  std::unique_ptr<H5Writer> writer_;
};

}  // namespace seedgrid::testing

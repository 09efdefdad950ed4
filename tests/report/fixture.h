// Test fixtures for reports: a registry and shard files in a temporary directory, written
// through the real Registry and H5Writer APIs.
#pragma once

#include <cstdlib>
#include <filesystem>
#include <functional>
#include <memory>
#include <string>
#include <utility>
#include <vector>

#include <fmt/format.h>

#include "core/registry.h"
#include "core/store.h"

namespace seedgrid::testing {

class TempDir {
 public:
  TempDir() {
    std::string tmpl = (std::filesystem::temp_directory_path() / "seedgrid-report-XXXXXX").string();
    if (!::mkdtemp(tmpl.data())) throw std::runtime_error("mkdtemp failed");
    path_ = tmpl;
  }
  ~TempDir() {
    std::error_code ec;
    std::filesystem::remove_all(path_, ec);
  }
  TempDir(const TempDir&) = delete;
  TempDir& operator=(const TempDir&) = delete;
  const std::filesystem::path& path() const { return path_; }

 private:
  std::filesystem::path path_;
};

struct ShardSpec {
  std::string stage;
  int stage_index = 0;
  std::string kind;
  Json axes = Json::object();
  int64_t seed = 0;
  ShardStatus status = ShardStatus::kDone;
  std::vector<std::pair<std::string, double>> metrics;
  std::function<void(H5Writer&)> file;  // writes the shard's datasets; none: no artifact
  std::string role = "single";
  Json params = Json::object();
};

// A sweep in <tmp>/runs/registry.sqlite, shard files in <tmp>/runs/<sweep>/<stage>/<id>.h5.
class SweepFixture {
 public:
  explicit SweepFixture(std::string sweep, std::string spec_text = "")
      : sweep_(std::move(sweep)), runs_(tmp_.path() / "runs") {
    std::filesystem::create_directories(runs_);
    registry_ = std::make_unique<Registry>(registry_path(), Registry::Mode::kWrite);
    SweepRow row;
    row.name = sweep_;
    row.spec_text = spec_text.empty() ? fmt::format("name: {}\nout: runs\n", sweep_) : spec_text;
    row.spec_hash = "0123456789abcdef0123";
    row.out_dir = "runs";
    row.git_commit = "test";
    row.host = "test";
    registry_->UpsertSweep(row);
  }

  // Adds another sweep to the same registry; later Add calls add to it.
  void AddSweep(std::string name) {
    SweepRow row;
    row.name = name;
    row.spec_text = fmt::format("name: {}\nout: runs\n", name);
    row.spec_hash = "0123456789abcdef0123";
    row.out_dir = "runs";
    row.git_commit = "test";
    row.host = "test";
    registry_->UpsertSweep(row);
    sweep_ = std::move(name);
  }

  std::string registry_path() const { return (runs_ / "registry.sqlite").string(); }
  const std::filesystem::path& root() const { return tmp_.path(); }
  Registry& registry() { return *registry_; }
  const std::string& sweep() const { return sweep_; }

  ShardId Add(const ShardSpec& s) {
    ShardRow row;
    row.key = ShardKey({.id = ShardId{fmt::format("{:016x}", 0xa000 + next_++)},
                        .stage = s.stage,
                        .kind = s.kind,
                        .seed = s.seed,
                        .role = ParseShardRole(s.role)},
                       s.params, s.axes);
    row.sweep = sweep_;
    row.stage_index = s.stage_index;
    registry_->InsertShards({row});
    const ShardId& id = row.key.id();
    std::string artifact;
    if (s.file && s.status == ShardStatus::kDone) {
      artifact = fmt::format("{}/{}/{}.h5", sweep_, s.stage, id.hex);
      std::filesystem::create_directories((runs_ / artifact).parent_path());
      H5Writer w((runs_ / artifact).string());
      s.file(w);
      w.Close();
    }
    registry_->SetShardState(id, s.status, 1, artifact,
                             s.status == ShardStatus::kFailed ? "boom" : "");
    if (!s.metrics.empty()) registry_->SetMetrics(id, s.metrics);
    return id;
  }

 private:
  TempDir tmp_;
  std::string sweep_;
  std::filesystem::path runs_;
  std::unique_ptr<Registry> registry_;
  int next_ = 0;
};

}  // namespace seedgrid::testing

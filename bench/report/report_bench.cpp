// report_bench [--shards N] [--seeds S] [--reps R] [--dir DIR]
//
// Writes a registry with one lora_steer stage of N shards (N/S configs over adapter × rank × lr,
// S seeds each, 6 metrics per shard, ~1% failed and ~1% running) and times WriteReport over it,
// tables only (Markdown, LaTeX, CSV, HTML and report.md; no figures). The goal is under 2 s
// for 10,000 shards.
#include <algorithm>
#include <chrono>
#include <cstdlib>
#include <filesystem>
#include <random>
#include <string>
#include <vector>

#include <fmt/format.h>

#include "coordinator/report/report.h"
#include "core/registry.h"

namespace fs = std::filesystem;
using seedgrid::Registry;

namespace {

double Seconds(std::chrono::steady_clock::time_point since) {
  return std::chrono::duration<double>(std::chrono::steady_clock::now() - since).count();
}

void Generate(const std::string& registry_path, const std::string& sweep, int shards, int seeds) {
  Registry reg(registry_path, Registry::Mode::kWrite);
  seedgrid::SweepRow row;
  row.name = sweep;
  row.spec_text = fmt::format("name: {}\nout: runs\n", sweep);
  row.spec_hash = "bench";
  row.out_dir = "runs";
  reg.UpsertSweep(row);
  std::mt19937_64 rng(1);
  std::normal_distribution<double> noise(0, 1);
  std::uniform_real_distribution<double> u(0, 1);
  Registry::Batch batch(reg);
  std::vector<seedgrid::ShardRow> rows;
  const char* adapters[] = {"lora", "ia3"};
  const int ranks[] = {1, 2, 4, 8, 16};
  for (int i = 0; i < shards; ++i) {
    int config = i / seeds;
    seedgrid::Json axes = {{"adapter", adapters[config % 2]},
                           {"lora.rank", ranks[(config / 2) % 5]},
                           {"train.lr", 1e-4 * (1 + config / 10)}};
    seedgrid::Json params = {{"adapter", axes["adapter"]},
                             {"lora", {{"rank", axes["lora.rank"]}, {"alpha", 8}}},
                             {"train", {{"lr", axes["train.lr"]}, {"steps", 200}}},
                             {"eval", {{"alphas", {-2, -1, 0, 1, 2}}}}};
    seedgrid::ShardRow s;
    s.key = seedgrid::ShardKey({.id = seedgrid::ShardId{fmt::format("{:016x}", 0x5eed0000ULL + i)},
                                .stage = "steer",
                                .kind = "lora_steer",
                                .seed = i % seeds},
                               std::move(params), std::move(axes));
    s.sweep = sweep;
    s.stage_index = 1;
    rows.push_back(std::move(s));
  }
  reg.InsertShards(rows);
  for (const auto& s : rows) {
    double r = u(rng);
    auto status = r < 0.01   ? seedgrid::ShardStatus::kFailed
                  : r < 0.02 ? seedgrid::ShardStatus::kRunning
                             : seedgrid::ShardStatus::kDone;
    const seedgrid::ShardId& id = s.key.id();
    reg.SetShardState(id, status, 1,
                      status == seedgrid::ShardStatus::kDone ? "steer/" + id.hex + ".h5" : "", "");
    if (status != seedgrid::ShardStatus::kDone) continue;
    reg.SetMetrics(id, {{"steer_delta", 1 + 0.3 * noise(rng)},
                        {"steer_slope", 0.8 + 0.2 * noise(rng)},
                        {"kl_at_1", 0.01 * std::abs(noise(rng))},
                        {"pmass_min", 0.9 + 0.01 * noise(rng)},
                        {"dw_fro", 3 + noise(rng)},
                        {"final_loss_pos", 0.4 + 0.05 * noise(rng)}});
  }
  batch.Commit();
}

}  // namespace

int main(int argc, char** argv) {
  int shards = 10000, seeds = 10, reps = 5;
  std::string dir;
  for (int i = 1; i + 1 < argc; i += 2) {
    std::string a = argv[i];
    if (a == "--shards")
      shards = std::atoi(argv[i + 1]);
    else if (a == "--seeds")
      seeds = std::atoi(argv[i + 1]);
    else if (a == "--reps")
      reps = std::atoi(argv[i + 1]);
    else if (a == "--dir")
      dir = argv[i + 1];
    else {
      fmt::print(stderr, "usage: report_bench [--shards N] [--seeds S] [--reps R] [--dir DIR]\n");
      return 2;
    }
  }
  bool keep = !dir.empty();
  if (!keep)
    dir =
        (fs::temp_directory_path() / fmt::format("seedgrid-report-bench-{}", ::getpid())).string();
  fs::remove_all(dir);
  fs::create_directories(dir);
  std::string registry = (fs::path(dir) / "registry.sqlite").string();

  auto t0 = std::chrono::steady_clock::now();
  Generate(registry, "bench", shards, seeds);
  double gen = Seconds(t0);

  seedgrid::ReportOptions opts;
  opts.registry_path = registry;
  opts.sweep = "bench";
  opts.out_dir = (fs::path(dir) / "report").string();
  opts.figures = false;
  std::vector<double> times;
  size_t groups = 0, incomplete = 0;
  for (int r = 0; r < reps; ++r) {
    auto t = std::chrono::steady_clock::now();
    seedgrid::ReportResult res = seedgrid::WriteReport(opts);
    times.push_back(Seconds(t));
    groups = res.tables.at(0).groups.size();
    incomplete = res.tables.at(0).incomplete_groups();
  }
  std::vector<double> sorted = times;
  std::sort(sorted.begin(), sorted.end());
  fmt::print(
      "report_bench: {} shards ({} configs x {} seeds, 6 metrics), {} groups ({} incomplete)\n",
      shards, groups, seeds, groups, incomplete);
  fmt::print("  registry generated in {:.2f} s\n", gen);
  fmt::print(
      "  seedgrid report (tables: md, tex, csv, html; no figures): first {:.3f} s, "
      "median {:.3f} s, best {:.3f} s over {} runs (goal < 2 s)\n",
      times.front(), sorted[sorted.size() / 2], sorted.front(), reps);
  if (!keep) fs::remove_all(dir);
  return sorted[sorted.size() / 2] < 2.0 ? 0 : 1;
}

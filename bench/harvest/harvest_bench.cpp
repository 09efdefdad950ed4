// harvest_bench: what the harvest statistics cost over the forward pass, and the peak memory of
// a large harvest. Results and the commands that produced them: BENCHMARKS.md.
//
//   harvest_bench speed [--checkpoint DIR] [--batches 32] [--reps 7] [--threads 1]
//     The demo model (pretrained here in a few seconds unless --checkpoint is given) on
//     synthetic rows, batch 32 × 24 tokens, the params of configs/harvest.yaml. Per rep, in an
//     order that rotates every rep, the same batches run as: forward only (logits at every
//     position, no capture); harvest without cooc and [C, V] statistics (counts, sums,
//     reservoir); + C×C co-occurrence; + [C, V] input/output-token statistics; and the
//     statistics alone on pre-captured activations. Prints tokens/s (median over reps; CPU time
//     of the process, which a busy shared machine does not inflate, and wall time) and the cost
//     over the forward pass as the median of per-rep ratios (goal: ≤ 30% without [C, V]).
//
//   harvest_bench rss [--components 4096] [--vocab 50000] [--rows 64] [--batch 8] [--dir DIR]
//     A random-init model with `components` MLP units over 2 layers and `vocab` tokens, saved as
//     safetensors, harvested from a token HDF5 file with every statistic on: 2 map shards and
//     the reduce, each run through RunHarvest in its own process (this binary re-executed), so
//     each phase's peak RSS (getrusage of the child) is its own.
#include <sys/resource.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <ATen/Parallel.h>
#include <torch/torch.h>

#include <algorithm>
#include <chrono>
#include <filesystem>
#include <map>
#include <memory>
#include <string>
#include <vector>

#include <fmt/format.h>

#include "core/store.h"
#include "experiments/data/tokens.h"
#include "experiments/harvest/forward.h"
#include "experiments/harvest/harvest.h"
#include "experiments/lora_steer/lora_steer.h"
#include "experiments/model/runtime_env.h"
#include "experiments/pretrain/pretrain.h"
#include "tests/support/file_context.h"

namespace fs = std::filesystem;
using namespace seedgrid;

namespace {

double Now() {
  return std::chrono::duration<double>(std::chrono::steady_clock::now().time_since_epoch()).count();
}

// CPU seconds of this process (all threads): on a shared machine, unlike wall time, it does not
// count the time other processes hold the cores.
double CpuNow() {
  timespec t{};
  clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &t);
  return static_cast<double>(t.tv_sec) + 1e-9 * static_cast<double>(t.tv_nsec);
}

double Median(std::vector<double> v) {
  std::sort(v.begin(), v.end());
  const size_t n = v.size();
  return n % 2 ? v[n / 2] : 0.5 * (v[n / 2 - 1] + v[n / 2]);
}

using BenchContext = testing::FileShardContext;

std::map<std::string, std::string> Flags(int argc, char** argv, int from) {
  std::map<std::string, std::string> f;
  for (int i = from; i + 1 < argc; i += 2) {
    std::string k = argv[i];
    if (k.rfind("--", 0) != 0) throw std::runtime_error("expected --flag value, got " + k);
    f[k.substr(2)] = argv[i + 1];
  }
  return f;
}

int64_t Int(const std::map<std::string, std::string>& f, const std::string& k, int64_t def) {
  auto it = f.find(k);
  return it == f.end() ? def : std::stoll(it->second);
}
std::string Str(const std::map<std::string, std::string>& f, const std::string& k,
                const std::string& def) {
  auto it = f.find(k);
  return it == f.end() ? def : it->second;
}

// ---- speed -------------------------------------------------------------------------------------

// The demo checkpoint to harvest from: --checkpoint, or the demo model pretrained into `dir`.
std::string SpeedCheckpoint(const std::map<std::string, std::string>& f, const fs::path& dir,
                            int threads) {
  std::string checkpoint = Str(f, "checkpoint", "");
  if (!checkpoint.empty()) return checkpoint;
  Json params = PretrainKindConfig().defaults;
  params["train"]["steps"] = 300;
  ShardTaskView v;
  v.key = ShardKey({.kind = "pretrain"}, std::move(params), Json::object());
  BenchContext ctx(v, dir / "base.h5", dir / "base", threads);
  const double t0 = Now();
  RunPretrain(ctx);
  ctx.Close();
  fmt::print("pretrained the demo model in {:.1f} s (final loss {:.3f})\n", Now() - t0,
             ctx.metrics["final_loss"]);
  return (dir / "base").string();
}

// The variants, each timed over the same batches. "stats only" folds pre-captured activations
// (no forward): the cost of the statistics themselves.
enum class Run { kForward, kHarvest, kStatsOnly };
struct Variant {
  std::string name;
  Run run;
  bool cooc, cv;
};
const std::vector<Variant>& Variants() {
  static const std::vector<Variant> v = {
      {"forward only", Run::kForward, false, false},
      {"harvest: counts, sums, reservoir", Run::kHarvest, false, false},
      {"harvest: + cooc [C,C]", Run::kHarvest, true, false},
      {"harvest: + [C,V] token stats", Run::kHarvest, true, true},
      {"stats only: counts, sums, reservoir", Run::kStatsOnly, false, false},
      {"stats only: + cooc [C,C]", Run::kStatsOnly, true, false}};
  return v;
}

// One model, one set of batches (and their pre-captured activations) and one clock shared by
// every variant, so that the variants run interleaved rep by rep and drifts in machine load
// cancel in the paired ratios.
class SpeedBench {
 public:
  SpeedBench(const std::string& checkpoint, int64_t batches)
      : checkpoint_(checkpoint),
        model_(Model::Load(checkpoint, torch::kCPU)),
        source_(TokenSource::Synthetic(TaskOfCheckpoint(checkpoint), synth::Split::kHarvest)),
        batches_(batches),
        T_(source_.seq_len()) {
    params_ = HarvestKindConfig().defaults;  // configs/harvest.yaml's params
    params_["data"]["batch"] = kRows;
    params_["threshold"] = 0.1;
    Precapture();
  }

  // Per rep and variant: CPU and wall seconds; rep 0 warms up and is not counted.
  void Measure(int64_t reps) {
    const auto& variants = Variants();
    cpu_.assign(variants.size(), {});
    wall_.assign(variants.size(), {});
    for (int64_t rep = 0; rep < reps + 1; ++rep) {
      for (size_t j = 0; j < variants.size(); ++j) {
        const size_t vi = (j + static_cast<size_t>(rep)) % variants.size();
        const auto [c, w] = Time(variants[vi], rep == 0 && vi == 1);
        if (rep == 0) continue;
        cpu_[vi].push_back(c);
        wall_[vi].push_back(w);
      }
    }
  }

  // Tokens/s per variant and the cost over forward: per-rep ratio to the same rep's
  // forward-only time, median over reps (paired, so drifts in machine load cancel).
  void Print(int64_t reps, int threads) const {
    const auto& variants = Variants();
    const int64_t tokens = batches_ * kRows * T_;
    fmt::print(
        "model: {} (C = {} MLP units), {} batches x {} rows x {} tokens = {} tokens per "
        "measurement, {} reps (+1 warm-up), {} thread(s); mean firing density {:.3f}\n",
        checkpoint_, 2 * model_.config().intermediate_size, batches_, kRows, T_, tokens, reps,
        threads, density_);
    fmt::print(
        "| variant | tokens/s (CPU time) | tokens/s (wall) | cost over forward (CPU, median "
        "of per-rep ratios) | (wall) |\n|---|---|---|---|---|\n");
    for (size_t i = 0; i < variants.size(); ++i) {
      std::vector<double> rc, rw;
      for (size_t r = 0; r < cpu_[i].size(); ++r) {
        rc.push_back(cpu_[i][r] / cpu_[0][r]);
        rw.push_back(wall_[i][r] / wall_[0][r]);
      }
      // Harvest variants: the extra time over forward; stats only: its whole time.
      const double off = variants[i].run == Run::kHarvest ? 1.0 : 0.0;
      const auto cost = [&](const std::vector<double>& r) {
        return i == 0 ? std::string("—") : fmt::format("{:+.1f}%", 100.0 * (Median(r) - off));
      };
      fmt::print("| {} | {:.0f} | {:.0f} | {} | {} |\n", variants[i].name,
                 static_cast<double>(tokens) / Median(cpu_[i]),
                 static_cast<double>(tokens) / Median(wall_[i]), cost(rc), cost(rw));
    }
  }

 private:
  static constexpr int64_t kRows = 32;  // rows per batch
  struct Captured {
    std::vector<int32_t> tokens;
    std::vector<int64_t> row_ids;
    torch::Tensor post, pre;
  };

  harvest::Options Options(const Variant& v) const {
    Json p = params_;
    p["stats"] = {{"cooc", v.cooc}, {"input_tokens", v.cv}, {"output_tokens", v.cv}};
    return harvest::MakeOptions(p, model_.config(), T_, batches_ * kRows, 0);
  }

  // Both layers' MLP activations of every batch, for the stats-only variants.
  void Precapture() {
    c10::InferenceMode inference;
    Capture cap;
    cap.Request(CapturePoint::kMlpPost, -1);
    cap.Request(CapturePoint::kMlpPre, -1);
    ForwardOptions fo;
    fo.capture = &cap;
    const int64_t n = kRows * T_, d = model_.config().intermediate_size;
    for (int64_t b = 0; b < batches_; ++b) {
      Captured c;
      c.tokens = source_.Rows(b * kRows, kRows);
      for (int64_t r = 0; r < kRows; ++r) c.row_ids.push_back(b * kRows + r);
      model_.Forward(TokensTensor(c.tokens, kRows, T_, torch::kCPU), fo);
      const auto both = [&](CapturePoint p) {
        return torch::cat({cap.Get(p, 0).reshape({n, d}), cap.Get(p, 1).reshape({n, d})}, 1)
            .contiguous();
      };
      c.post = both(CapturePoint::kMlpPost);
      c.pre = both(CapturePoint::kMlpPre);
      captured_.push_back(std::move(c));
    }
  }

  // Runs one variant over every batch: {CPU seconds, wall seconds}. `note_density`: keep the
  // mean firing density of this run (the printed header's).
  std::pair<double, double> Time(const Variant& v, bool note_density) {
    std::unique_ptr<harvest::Accumulators> acc;
    if (v.run != Run::kForward) acc = std::make_unique<harvest::Accumulators>(Options(v));
    harvest::BatchUpdater updater;
    const double c0 = CpuNow(), w0 = Now();
    if (v.run == Run::kForward) {
      c10::InferenceMode inference;
      for (int64_t b = 0; b < batches_; ++b)
        (void)model_.Forward(TokensTensor(source_.Rows(b * kRows, kRows), kRows, T_, torch::kCPU));
    } else if (v.run == Run::kHarvest) {
      harvest::HarvestBatches(model_, source_, batches_ * kRows, 0, batches_, *acc, updater);
    } else {
      StatsOnly(*acc, updater);
    }
    const double c1 = CpuNow(), w1 = Now();
    if (note_density) {
      double sum = 0;
      for (double x : harvest::Derive(*acc, 1).firing_density) sum += x;
      density_ = sum / static_cast<double>(acc->options.components);
    }
    return {c1 - c0, w1 - w0};
  }

  void StatsOnly(harvest::Accumulators& acc, harvest::BatchUpdater& updater) const {
    const int64_t width = 2 * model_.config().intermediate_size;
    for (int64_t b = 0; b < batches_; ++b) {
      const Captured& c = captured_[static_cast<size_t>(b)];
      harvest::BatchView view;
      view.index = b;
      view.rows = kRows;
      view.tokens = c.tokens.data();
      view.row_ids = c.row_ids.data();
      view.post = {{c.post.data_ptr<float>(), width, width}};
      view.pre = {{c.pre.data_ptr<float>(), width, width}};
      updater.Apply(view, acc);
    }
  }

  std::string checkpoint_;
  Model model_;
  TokenSource source_;
  Json params_;
  int64_t batches_, T_;
  std::vector<Captured> captured_;
  std::vector<std::vector<double>> cpu_, wall_;
  double density_ = 0;
};

int Speed(const std::map<std::string, std::string>& f) {
  const int threads = static_cast<int>(Int(f, "threads", 1));
  const int64_t batches = Int(f, "batches", 32), reps = Int(f, "reps", 7);
  ConfigureTorchProcess(threads);
  const fs::path dir = fs::temp_directory_path() / fmt::format("harvest_bench_{}", ::getpid());
  {
    SpeedBench bench(SpeedCheckpoint(f, dir, threads), batches);
    bench.Measure(reps);
    bench.Print(reps, threads);
  }
  fs::remove_all(dir);
  return 0;
}

// ---- rss ---------------------------------------------------------------------------------------

Json RssParams(const std::map<std::string, std::string>& f, const fs::path& dir) {
  Json p = HarvestKindConfig().defaults;
  p["base"] = (dir / "model").string();
  p["data"] = {
      {"source", "file"},    {"rows_kind", "pretrain"},    {"path", (dir / "tokens.h5").string()},
      {"dataset", "tokens"}, {"rows", Int(f, "rows", 64)}, {"batch", Int(f, "batch", 8)}};
  p["threshold"] = std::stod(Str(f, "threshold", "0"));
  return p;
}

// One phase in this process: map shard i of 2, or the reduce.
int RssChild(const std::map<std::string, std::string>& f) {
  ConfigureTorchProcess(static_cast<int>(Int(f, "threads", 1)));
  const fs::path dir = Str(f, "dir", "");
  const std::string phase = Str(f, "phase", "");
  Json p = RssParams(f, dir);
  ShardTaskView v;
  ShardRole role = ShardRole::kMap;
  if (phase == "reduce") {
    p["role"] = "reduce";
    p["shard_count"] = 2;
    role = ShardRole::kReduce;
    for (int s = 0; s < 2; ++s) {
      InputArtifact in;
      in.key = ShardKey({.id = ShardId{fmt::format("map{}", s)}, .kind = "harvest"},
                        Json{{"shard_index", s}}, Json::object());
      in.path = (dir / fmt::format("map{}.h5", s)).string();
      v.inputs.push_back(in);
    }
  } else {
    const int s = std::stoi(phase.substr(3));
    p["shard_index"] = s;
    p["shard_count"] = 2;
  }
  v.key = ShardKey({.kind = "harvest", .seed = 0, .role = role}, p, Json::object());
  BenchContext ctx(v, dir / (phase + ".h5"), dir / phase, 1);
  RunHarvest(ctx);
  ctx.Close();
  return 0;
}

int Rss(const std::map<std::string, std::string>& f, const char* self) {
  const int64_t C = Int(f, "components", 4096), V = Int(f, "vocab", 50000);
  const int64_t rows = Int(f, "rows", 64), T = 24;
  const fs::path dir = Str(
      f, "dir", (fs::temp_directory_path() / fmt::format("harvest_rss_{}", ::getpid())).string());
  fs::create_directories(dir);
  ConfigureTorchProcess(1);
  // The model: 2 layers of C/2 MLP units, random init, saved as safetensors.
  Json mp = ModelConfig::ModelParamDefaults();
  mp["vocab_size"] = V;
  mp["d_mlp"] = C / 2;
  Model model(ModelConfig::FromParams(mp), torch::kCPU);
  model.InitRandom(1, 0.1);
  model.Save((dir / "model").string());
  // Tokens: uniform over the vocabulary.
  std::vector<int32_t> tokens(static_cast<size_t>(rows * T));
  const auto draw = torch::randint(V, {rows * T}, torch::TensorOptions().dtype(torch::kInt));
  std::copy_n(draw.data_ptr<int32_t>(), tokens.size(), tokens.begin());
  {
    H5Writer w((dir / "tokens.h5").string());
    WriteTokenDataset(w, "tokens", tokens, rows, T, V);
    w.Close();
  }
  // Threshold: the 98th percentile of one batch's MLP activations (density about 2%).
  double threshold = 0;
  {
    c10::InferenceMode inference;
    Capture cap;
    cap.Request(CapturePoint::kMlpPost, -1);
    ForwardOptions fo;
    fo.capture = &cap;
    model.Forward(TokensTensor(std::vector<int32_t>(tokens.begin(), tokens.begin() + 8 * T), 8, T,
                               torch::kCPU),
                  fo);
    const auto acts = torch::cat({cap.Get(CapturePoint::kMlpPost, 0).flatten(),
                                  cap.Get(CapturePoint::kMlpPost, 1).flatten()});
    threshold = acts.quantile(0.98).item<double>();
  }
  fmt::print(
      "C = {}, V = {}: [C,V] i64 + f64 = {:.2f} GB, [C,C] i64 = {:.2f} GB; {} rows x {} "
      "tokens, batch {}, threshold {:.4g}\n",
      C, V, 2.0 * C * V * 8 / 1e9, C * C * 8 / 1e9, rows, T, Int(f, "batch", 8), threshold);
  fmt::print("| phase | wall s | peak RSS (GiB) | file (MB) |\n|---|---|---|---|\n");
  for (const std::string phase : {"map0", "map1", "reduce"}) {
    std::vector<std::string> args = {
        self,    "rss-child",  "--phase",     phase,
        "--dir", dir.string(), "--threshold", fmt::format("{:.17g}", threshold)};
    for (const auto& [k, v] : f)
      if (k != "dir" && k != "threshold") args.insert(args.end(), {"--" + k, v});
    std::vector<char*> argv;
    for (auto& a : args) argv.push_back(a.data());
    argv.push_back(nullptr);
    const double t0 = Now();
    const pid_t pid = ::fork();
    if (pid == 0) {
      ::execv("/proc/self/exe", argv.data());
      ::_exit(127);
    }
    int status = 0;
    struct rusage usage {};
    ::wait4(pid, &status, 0, &usage);
    if (!WIFEXITED(status) || WEXITSTATUS(status) != 0) {
      fmt::print(stderr, "phase {} failed (status {})\n", phase, status);
      return 1;
    }
    fmt::print("| {} | {:.1f} | {:.2f} | {:.0f} |\n", phase, Now() - t0,
               static_cast<double>(usage.ru_maxrss) / (1 << 20),
               static_cast<double>(fs::file_size(dir / (phase + ".h5"))) / 1e6);
  }
  if (!f.count("dir")) fs::remove_all(dir);
  return 0;
}

}  // namespace

int main(int argc, char** argv) {
  try {
    const std::string mode = argc > 1 ? argv[1] : "speed";
    const auto flags = Flags(argc, argv, 2);
    if (mode == "speed") return Speed(flags);
    if (mode == "rss") return Rss(flags, argv[0]);
    if (mode == "rss-child") return RssChild(flags);
    fmt::print(stderr, "usage: harvest_bench speed|rss [--flag value ...]\n");
    return 2;
  } catch (const std::exception& e) {
    fmt::print(stderr, "harvest_bench: {}\n", e.what());
    return 1;
  }
}

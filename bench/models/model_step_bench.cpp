// seedgrid's side of bench/models: a LoRA training step (forward, backward, AdamW on the LoRA
// factors) of a real HF checkpoint, through the code lora_steer trains with (Model::Load,
// LoraAdapter, FlatAdamW), and the time Model::Load takes. The PyTorch peer is qwen3_py.py;
// run.py runs both alternately and compares.
//
//   model_step_bench train DIR TOKENS.json STEPS WARMUP RANK LAYER_LO LAYER_HI
//   model_step_bench load DIR [float32|bfloat16]
// TOKENS.json: [[ids...], ...] (B rows of T). LoRA: rank RANK, alpha 2·RANK, on q, k, v, o,
// gate, up, down of layers [LAYER_LO, LAYER_HI). Loss: the next-token cross-entropy over every
// position (HF's CausalLM loss), through Model::ForwardNextTokenLoss (the fused LM head +
// cross-entropy). Threads: OMP_NUM_THREADS (run.py sets it). Prints one JSON line with the
// per-step median (wall; cpu_ms: the median of the steps' process CPU times) and the peak RSS.
// MODEL_STEP_BENCH_PROFILE=N: one more step under LibTorch's profiler, its top N ops on stderr.
#include <sys/resource.h>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <string>
#include <utility>
#include <vector>

#include <torch/csrc/autograd/profiler_legacy.h>

#include <map>

#include "experiments/model/adapters.h"
#include "experiments/model/runtime_env.h"

namespace {

using namespace seedgrid;
using Clock = std::chrono::steady_clock;

double Ms(Clock::time_point t0) {
  return std::chrono::duration<double, std::milli>(Clock::now() - t0).count();
}

// User + system CPU time of the process so far (all threads), in ms: on a shared machine a
// step's CPU time moves less with the load than its wall time.
double CpuMs() {
  rusage u{};
  if (getrusage(RUSAGE_SELF, &u) != 0) return -1;
  const auto ms = [](const timeval& t) { return t.tv_sec * 1e3 + t.tv_usec / 1e3; };
  return ms(u.ru_utime) + ms(u.ru_stime);
}

long PeakRssKb() {
  rusage u{};
  if (getrusage(RUSAGE_SELF, &u) != 0) return -1;
  return u.ru_maxrss;
}

int Threads() {
  const char* v = std::getenv("OMP_NUM_THREADS");
  return v ? std::max(1, std::atoi(v)) : 1;
}

torch::Tensor ReadTokens(const std::string& path) {
  std::ifstream in(path);
  if (!in) throw std::runtime_error(path + ": cannot open");
  const Json j = Json::parse(in);
  std::vector<int64_t> flat;
  for (const auto& row : j)
    for (const auto& t : row) flat.push_back(t.get<int64_t>());
  const auto rows = static_cast<int64_t>(j.size());
  return torch::tensor(flat, torch::kLong).view({rows, -1});
}

// MODEL_STEP_BENCH_PROFILE=N: one more step under LibTorch's legacy profiler after the timed
// ones, and the N ops with the most self time (their time less that of the ops they call) as a
// table on stderr: name, calls, self ms, total ms. Wall-clock times (the profiler's clock).
void PrintProfile(const torch::autograd::profiler::thread_event_lists& lists, int top) {
  struct Row {
    int64_t calls = 0;
    double self_us = 0, total_us = 0;
  };
  std::map<std::string, Row> rows;
  for (const auto& events : lists) {
    struct Open {
      const torch::autograd::profiler::LegacyEvent* push;
      double child_us;
    };
    std::vector<Open> stack;
    for (const auto& e : events) {
      using torch::autograd::profiler::EventKind;
      if (e.kind() == EventKind::PushRange) {
        stack.push_back({&e, 0.0});
      } else if (e.kind() == EventKind::PopRange && !stack.empty()) {
        const Open open = stack.back();
        stack.pop_back();
        const double us = open.push->cpuElapsedUs(e);
        Row& r = rows[open.push->name()];
        ++r.calls;
        r.total_us += us;
        r.self_us += us - open.child_us;
        if (!stack.empty()) stack.back().child_us += us;
      }
    }
  }
  std::vector<std::pair<std::string, Row>> sorted(rows.begin(), rows.end());
  std::sort(sorted.begin(), sorted.end(),
            [](const auto& a, const auto& b) { return a.second.self_us > b.second.self_us; });
  double all = 0;
  for (const auto& [name, r] : sorted) all += r.self_us;
  std::fprintf(stderr, "%-48s %8s %12s %12s %6s\n", "op", "calls", "self_ms", "total_ms", "self%");
  for (int i = 0; i < top && i < static_cast<int>(sorted.size()); ++i) {
    const auto& [name, r] = sorted[static_cast<size_t>(i)];
    std::fprintf(stderr, "%-48s %8lld %12.1f %12.1f %6.1f\n", name.c_str(),
                 static_cast<long long>(r.calls), r.self_us / 1e3, r.total_us / 1e3,
                 100.0 * r.self_us / all);
  }
  std::fprintf(stderr, "%-48s %8s %12.1f\n", "(all ops, self)", "", all / 1e3);
}

// /proc/self/status's RssAnon and RssFile in KiB: the process's own pages and the page cache
// pages it maps (a file-backed model's weights, once touched).
std::pair<long, long> RssAnonFileKb() {
  std::ifstream in("/proc/self/status");
  std::string line;
  long anon = -1, file = -1;
  while (std::getline(in, line)) {
    if (line.rfind("RssAnon:", 0) == 0) anon = std::stol(line.substr(8));
    if (line.rfind("RssFile:", 0) == 0) file = std::stol(line.substr(8));
  }
  return {anon, file};
}

// Model::Load's steps (config.json parsed, the model built: flat storage allocated and norm
// weights set, then LoadWeights: safetensors headers parsed and checked, slots the file holds as
// computed mapped, every other tensor copied into storage), timed one by one through the public
// API Model::Load is made of. load_ms is their sum plus the bookkeeping between them: what
// Model::Load takes on a single-file checkpoint. Then two forwards of one token: the first
// touches every weight page (a file-backed weight's first touch maps a page-cache page), the
// second is the compute alone, so first − second is what the load left for later.
int Load(const std::string& dir, const std::string& dtype_name) {
  ConfigureTorchProcess(Threads());
  const torch::ScalarType dtype = ParseComputeDtype(dtype_name);
  const std::filesystem::path p(dir);
  const auto t0 = Clock::now();
  auto t = t0;
  const auto config = ModelConfig::FromHfFile((p / "config.json").string());
  const double config_ms = Ms(t);
  t = Clock::now();
  Model model(config, torch::kCPU, dtype);
  const double alloc_ms = Ms(t);
  t = Clock::now();
  model.LoadWeights((p / "model.safetensors").string());
  const double weights_ms = Ms(t);
  const double ms = Ms(t0);
  const auto [anon_load, file_load] = RssAnonFileKb();
  torch::InferenceMode inference;
  const auto one = torch::ones({1, 1}, torch::kLong);
  t = Clock::now();
  model.Forward(one);
  const double forward1_ms = Ms(t);
  t = Clock::now();
  model.Forward(one);
  const double forward2_ms = Ms(t);
  const auto [anon_fwd, file_fwd] = RssAnonFileKb();
  std::printf(
      "{\"impl\": \"cpp\", \"dtype\": \"%s\", \"load_ms\": %.3f, \"config_ms\": %.3f, "
      "\"alloc_ms\": %.3f, \"weights_ms\": %.3f, \"params\": %lld, \"file_backed_bytes\": %lld, "
      "\"forward1_ms\": %.3f, \"forward2_ms\": %.3f, \"rss_anon_load_kb\": %ld, "
      "\"rss_file_load_kb\": %ld, \"rss_anon_forward_kb\": %ld, \"rss_file_forward_kb\": %ld, "
      "\"peak_rss_kb\": %ld}\n",
      dtype_name.c_str(), ms, config_ms, alloc_ms, weights_ms,
      static_cast<long long>(model.config().num_params()),
      static_cast<long long>(model.FileBackedBytes()), forward1_ms, forward2_ms, anon_load,
      file_load, anon_fwd, file_fwd, PeakRssKb());
  return 0;
}

int Train(char** argv) {
  const std::string dir = argv[2];
  const int steps = std::atoi(argv[4]), warmup = std::max(1, std::atoi(argv[5]));
  const int64_t rank = std::atoll(argv[6]), lo = std::atoll(argv[7]), hi = std::atoll(argv[8]);
  ConfigureTorchProcess(Threads());
  const auto t_load = Clock::now();
  Model model = Model::Load(dir, torch::kCPU);
  const double load_ms = Ms(t_load);
  const auto L = static_cast<double>(model.config().num_hidden_layers);
  AdapterTargets targets;
  targets.modules.assign(std::begin(kAllModuleKinds), std::end(kAllModuleKinds));
  // Fractions whose floor(·L) are lo and hi (AdapterTargets selects [floor(lo·L), floor(hi·L))).
  targets.layer_lo = (static_cast<double>(lo) + 0.5) / L;
  targets.layer_hi = std::min(1.0, (static_cast<double>(hi) + 0.5) / L);
  LoraOptions lora_opt;
  lora_opt.rank = rank;
  lora_opt.alpha = 2.0 * static_cast<double>(rank);
  LoraAdapter lora(model, lora_opt, targets, 0);
  lora.params().EnableGrad();
  FlatAdamW opt(lora.params(), {.lr = 1e-3, .weight_decay = 0.01});
  const torch::Tensor tokens = ReadTokens(argv[3]);
  ForwardOptions fwd;
  fwd.adapter = &lora;
  const auto step = [&] {
    lora.params().ZeroGrad();
    auto loss = model.ForwardNextTokenLoss(tokens, fwd);
    loss.backward();
    opt.Step();
    return loss.item<double>();
  };
  const double loss0 = step();
  for (int i = 1; i < warmup; ++i) step();
  std::vector<double> ms, cpu_ms;
  for (int i = 0; i < steps; ++i) {
    const auto t0 = Clock::now();
    const double c0 = CpuMs();
    step();
    ms.push_back(Ms(t0));
    cpu_ms.push_back(CpuMs() - c0);
  }
  if (const char* top = std::getenv("MODEL_STEP_BENCH_PROFILE")) {
    using namespace torch::autograd::profiler;
    enableProfilerLegacy(
        torch::profiler::impl::ProfilerConfig(torch::profiler::impl::ProfilerState::CPU));
    step();
    PrintProfile(disableProfilerLegacy(), std::max(1, std::atoi(top)));
  }
  std::sort(ms.begin(), ms.end());
  std::sort(cpu_ms.begin(), cpu_ms.end());
  std::printf(
      "{\"impl\": \"cpp\", \"threads\": %d, \"steps\": %d, \"median_ms\": %.3f, \"min_ms\": %.3f, "
      "\"max_ms\": %.3f, \"cpu_ms\": %.3f, \"loss0\": %.9g, \"lora_params\": %lld, "
      "\"load_ms\": %.3f, \"peak_rss_kb\": %ld}\n",
      at::get_num_threads(), steps, ms[ms.size() / 2], ms.front(), ms.back(),
      cpu_ms[cpu_ms.size() / 2], loss0, static_cast<long long>(lora.params().numel()), load_ms,
      PeakRssKb());
  return 0;
}

}  // namespace

int main(int argc, char** argv) {
  try {
    const std::string mode = argc > 1 ? argv[1] : "";
    if (mode == "load" && (argc == 3 || argc == 4))
      return Load(argv[2], argc == 4 ? argv[3] : "float32");
    if (mode == "train" && argc == 9) return Train(argv);
    std::fprintf(stderr,
                 "usage: %s train DIR TOKENS.json STEPS WARMUP RANK LAYER_LO LAYER_HI\n"
                 "       %s load DIR [float32|bfloat16]\n",
                 argv[0], argv[0]);
    return 2;
  } catch (const std::exception& e) {
    std::fprintf(stderr, "model_step_bench: %s\n", e.what());
    return 1;
  }
}

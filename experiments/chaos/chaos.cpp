#include "experiments/chaos/chaos.h"

#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <chrono>
#include <cmath>
#include <csignal>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <memory>
#include <stdexcept>
#include <thread>
#include <vector>

#include <fmt/format.h>

#include "experiments/chaos/layout.h"

namespace seedgrid {
namespace {

const std::vector<std::string> kModes = {"ok",       "throw", "exit",    "abort",
                                         "segfault", "hang",  "allocate"};

uint64_t SplitMix(uint64_t& x) {
  uint64_t z = (x += 0x9E3779B97F4A7C15ull);
  z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
  z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
  return z ^ (z >> 31);
}

double Gaussian(uint64_t& state) {
  double u1 = (SplitMix(state) >> 11) * 0x1.0p-53;
  double u2 = (SplitMix(state) >> 11) * 0x1.0p-53;
  return std::sqrt(-2.0 * std::log(u1 + 1e-300)) * std::cos(2 * M_PI * u2);
}

bool FileExists(const std::string& p) {
  struct stat st;
  return ::stat(p.c_str(), &st) == 0;
}

// A child process that sleeps until killed: a shard's own subprocess, which must not outlive
// the executor that ran the shard (tests/integration/test_processes.py).
void ForkSleeper() {
  pid_t pid = ::fork();
  if (pid < 0) throw std::runtime_error(fmt::format("chaos: fork: {}", std::strerror(errno)));
  if (pid == 0) {
    for (;;) ::pause();  // async-signal-safe only: the parent may have threads
  }
}

[[noreturn]] void Segfault() {
  volatile int* p = nullptr;
  *p = 42;
  std::abort();
}

void Inject(const std::string& mode, const Json& p, ShardContext& ctx) {
  if (mode == "throw") {
    throw std::runtime_error(p.value("message", std::string("chaos: injected exception")));
  } else if (mode == "exit") {
    std::_Exit(p.value("exit_code", 3));
  } else if (mode == "abort") {
    std::abort();
  } else if (mode == "segfault") {
    Segfault();
  } else if (mode == "hang") {
    for (;;) std::this_thread::sleep_for(std::chrono::seconds(1));
  } else if (mode == "allocate") {
    const int64_t mb = p.value("allocate_mb", int64_t{1024});
    std::vector<std::unique_ptr<char[]>> blocks;
    for (int64_t i = 0; i < mb; ++i) {
      blocks.emplace_back(new char[1 << 20]);
      std::memset(blocks.back().get(), 1, 1 << 20);  // touch: RSS grows
      if (i % 64 == 0) ctx.Progress(i, mb);
    }
    // Held for a while so a memory limit can see it; without a limit the shard succeeds.
    std::this_thread::sleep_for(std::chrono::milliseconds(p.value("hold_ms", 500)));
  }
}

// `stdout` / `stderr`: text the shard prints first (the attempt logs' tests).
void Print(const Json& p) {
  if (const std::string out = p.value("stdout", std::string()); !out.empty()) {
    std::fputs(out.c_str(), stdout);
    std::fflush(stdout);
  }
  if (const std::string err = p.value("stderr", std::string()); !err.empty()) {
    std::fputs(err.c_str(), stderr);
  }
}

void RunChaos(ShardContext& ctx) {
  const Json& p = ctx.params();
  Print(p);
  if (p.value("fork_child", false)) ForkSleeper();
  const int64_t sleep_ms = p.value("sleep_ms", int64_t{0});
  if (sleep_ms > 0) {
    // Sleep in slices so progress is visible on long shards.
    const int64_t slices = std::max<int64_t>(1, sleep_ms / 100);
    for (int64_t i = 0; i < slices; ++i) {
      std::this_thread::sleep_for(std::chrono::microseconds(sleep_ms * 1000 / slices));
      ctx.Progress(i + 1, slices);
    }
  }
  const std::string mode = p.value("mode", std::string("ok"));
  bool inject = mode != "ok";
  const int64_t until = p.value("fail_until_attempt", int64_t{0});
  const std::string file = p.value("fail_while_file_exists", std::string());
  if (until > 0) inject = inject && ctx.task().attempt < until;
  if (!file.empty()) inject = inject && FileExists(file);
  if (inject) Inject(mode, p, ctx);

  if (!p.value("write", true)) return;
  uint64_t state = static_cast<uint64_t>(ctx.seed()) * 0x9E3779B97F4A7C15ull + 17;
  std::vector<double> values(8);
  for (auto& v : values) v = Gaussian(state);
  const double value = p.value("value", 0.0) + p.value("noise", 1.0) * values[0];
  ctx.out().Write(chaos_layout::kValues, values);
  if (const double mb = p.value("write_mb", 0.0); mb > 0) {
    // Pseudo-random bytes: gzip cannot shrink them, so the file takes the space asked for.
    std::vector<uint8_t> blob(static_cast<size_t>(mb * (1 << 20)));
    for (size_t i = 0; i < blob.size(); i += 8) {
      const uint64_t r = SplitMix(state);
      std::memcpy(blob.data() + i, &r, std::min<size_t>(8, blob.size() - i));
    }
    ctx.out().Write(chaos_layout::kBlob, blob);
  }
  ctx.Metric(chaos_layout::kValue, value);
  ctx.Metric(chaos_layout::kSleepMs, static_cast<double>(sleep_ms));
}

std::vector<std::string> ValidateChaos(const Json& p) {
  std::vector<std::string> problems;
  const std::string mode = p.value("mode", std::string("ok"));
  if (std::find(kModes.begin(), kModes.end(), mode) == kModes.end()) {
    problems.push_back(
        fmt::format("mode: '{}' is not one of ok, throw, exit, abort, segfault, "
                    "hang, allocate",
                    mode));
  }
  if (p.value("sleep_ms", int64_t{0}) < 0) problems.push_back("sleep_ms: must be >= 0");
  if (p.value("allocate_mb", int64_t{0}) < 0) problems.push_back("allocate_mb: must be >= 0");
  if (p.value("write_mb", 0.0) < 0) problems.push_back("write_mb: must be >= 0");
  return problems;
}

}  // namespace

void RegisterChaosConfig(KindRegistry& kinds) {
  KindConfig chaos;
  chaos.name = "chaos";
  chaos.summary =
      "fault injection: modes ok, throw, exit, abort, segfault, hang, allocate; sleep_ms; "
      "write_mb; conditions; stdout/stderr text";
  chaos.defaults = {
      {"sleep_ms", 0},
      {"mode", "ok"},
      {"exit_code", 3},
      {"allocate_mb", 1024},
      {"hold_ms", 500},
      {"fail_until_attempt", 0},
      {"fail_while_file_exists", ""},
      {"message", "chaos: injected exception"},
      {"value", 0.0},
      {"noise", 1.0},
      {"write", true},
      {"write_mb", 0.0},
      {"fork_child", false},
      {"stdout", ""},
      {"stderr", ""},
      {"tag", nullptr},
  };
  chaos.validate = ValidateChaos;
  chaos.param_docs = {
      {"sleep_ms", "sleep this long first"},
      {"mode", "ok, throw, exit, abort, segfault, hang or allocate: the fault injected"},
      {"exit_code", "mode exit: the status exited with"},
      {"allocate_mb", "mode allocate: MiB allocated and touched"},
      {"hold_ms", "mode allocate: how long the memory is held"},
      {"fail_until_attempt", "inject only while attempt < this (0: always)"},
      {"fail_while_file_exists", "inject only while this file exists (\"\": always)"},
      {"message", "mode throw: the exception's text"},
      {"value", "the metric value's mean"},
      {"noise", "the metric value's std (a function of seed and params)"},
      {"write", "write chaos/values and the metrics"},
      {"write_mb", "also write this many MiB of incompressible bytes"},
      {"fork_child", "first fork a child that sleeps until killed"},
      {"stdout", "text printed on stdout"},
      {"stderr", "text printed on stderr"},
      {"tag", "anything: a label that changes the shard id"},
  };
  chaos.supports_gang = true;
  chaos.datasets = [](const Json& p, std::string_view) {
    return p.value("write", true) ? std::vector<std::string>{chaos_layout::kValues}
                                  : std::vector<std::string>{};
  };
  kinds.Add(std::move(chaos));

  KindConfig noop;
  noop.name = "noop";
  noop.summary = "does nothing and writes nothing (dispatch benchmarks)";
  noop.defaults = {{"tag", nullptr}};
  noop.param_docs = {{"tag", "anything: a label that changes the shard id"}};
  kinds.Add(std::move(noop));
}

void RegisterChaosRunners(RunnerRegistry& runners) {
  runners.Add("chaos", RunChaos);
  runners.Add("noop", [](ShardContext&) {});
}

}  // namespace seedgrid

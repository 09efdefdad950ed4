// Scheduling at scale, simulated: the real Scheduler (coordinator/scheduler.h) driven by a
// virtual clock. W workers, N shards with random durations; each RunShard reaches its worker
// after a one-way latency, runs for its duration once the worker's previous shard is done, and
// its ShardDone reaches the coordinator after the same latency. Reports the makespan against
// the ideal lower bound max(sum(d)/W, max(d)) and the coordinator's real CPU time per shard.
//
//   scheduler_sim [--workers 10000] [--shards 1000000] [--dist uniform|lognormal|bimodal]
//                 [--latency-us 20] [--window 2] [--seed 1]
#include <sys/resource.h>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <deque>
#include <queue>
#include <random>
#include <string>
#include <vector>

#include <fmt/format.h>

#include "coordinator/scheduler.h"

using namespace seedgrid;

namespace {

double CpuSeconds() {
  rusage ru{};
  getrusage(RUSAGE_SELF, &ru);
  return ru.ru_utime.tv_sec + ru.ru_utime.tv_usec * 1e-6 + ru.ru_stime.tv_sec +
         ru.ru_stime.tv_usec * 1e-6;
}

struct Event {
  double time;
  int kind;  // 0: RunShard arrives at worker, 1: ShardDone arrives at coordinator
  int worker;
  int task;
  int attempt;
  bool operator>(const Event& o) const { return time > o.time; }
};

// The simulated network + workers. Send() is called by the scheduler.
class SimComm final : public Comm {
 public:
  SimComm(std::priority_queue<Event, std::vector<Event>, std::greater<>>& q, double latency,
          const std::vector<double>& durations, int n_workers)
      : q_(q), latency_(latency), durations_(durations), free_at_(n_workers + 1, 0.0) {}
  double now = 0;
  void Send(WorkerId to, const ToWorker& msg) override {
    if (auto* r = std::get_if<RunShard>(&msg)) Send(to, *r);
  }
  void Send(WorkerId to, const RunShard& r) override {
    int task = std::stoi(r.key.id().hex);
    // Arrives after `latency`; runs when the worker is free; result travels back.
    double arrive = now + latency_;
    double start = std::max(arrive, free_at_[to.rank]);
    double end = start + durations_[task];
    free_at_[to.rank] = end;
    q_.push(Event{end + latency_, 1, to.rank, task, r.attempt});
  }

 private:
  std::priority_queue<Event, std::vector<Event>, std::greater<>>& q_;
  double latency_;
  const std::vector<double>& durations_;
  std::vector<double> free_at_;
};

// Makespan of greedy list scheduling of `d` in the given order onto `workers` (each shard to
// the worker free first), with no latency: the reference for a pull scheduler that knows no
// durations (in plan order) or knows them all (sorted longest first: LPT).
double ListSchedule(const std::vector<double>& d, int workers) {
  std::priority_queue<double, std::vector<double>, std::greater<>> free_at;
  for (int w = 0; w < workers; ++w) free_at.push(0.0);
  double makespan = 0;
  for (double x : d) {
    double t = free_at.top() + x;
    free_at.pop();
    free_at.push(t);
    makespan = std::max(makespan, t);
  }
  return makespan;
}

}  // namespace

int main(int argc, char** argv) {
  int workers = 10000;
  int shards = 1000000;
  std::string dist = "uniform";
  double latency_us = 20;
  int window = 2;
  unsigned seed = 1;
  for (int i = 1; i + 1 < argc; i += 2) {
    std::string k = argv[i];
    if (k == "--workers")
      workers = std::atoi(argv[i + 1]);
    else if (k == "--shards")
      shards = std::atoi(argv[i + 1]);
    else if (k == "--dist")
      dist = argv[i + 1];
    else if (k == "--latency-us")
      latency_us = std::atof(argv[i + 1]);
    else if (k == "--window")
      window = std::atoi(argv[i + 1]);
    else if (k == "--seed")
      seed = std::atoi(argv[i + 1]);
    else {
      fmt::print(stderr, "unknown option {}\n", k);
      return 2;
    }
  }
  std::mt19937_64 rng(seed);
  std::vector<double> d(shards);
  if (dist == "uniform") {
    std::uniform_real_distribution<double> u(0.5, 1.5);  // seconds
    for (auto& x : d) x = u(rng);
  } else if (dist == "lognormal") {
    std::lognormal_distribution<double> ln(0.0, 0.5);
    for (auto& x : d) x = ln(rng);
  } else if (dist == "bimodal") {  // many short shards, some 10x longer
    std::uniform_real_distribution<double> u(0, 1);
    for (auto& x : d) x = u(rng) < 0.9 ? 0.5 + u(rng) : 5 + 10 * u(rng);
  } else {
    fmt::print(stderr, "unknown --dist {}\n", dist);
    return 2;
  }
  double sum = 0, mx = 0;
  for (double x : d) sum += x, mx = std::max(mx, x);
  const double lower_bound = std::max(sum / workers, mx);

  std::vector<SchedTask> tasks(shards);
  for (int i = 0; i < shards; ++i) {
    tasks[i].msg.key = ShardKey({.id = ShardId{std::to_string(i)}});
    tasks[i].max_attempts = 1;
  }
  std::priority_queue<Event, std::vector<Event>, std::greater<>> q;
  SimComm comm(q, latency_us * 1e-6, d, workers);

  double cpu0 = CpuSeconds();
  auto wall0 = std::chrono::steady_clock::now();
  Scheduler sched(std::move(tasks), SchedulerOptions{window, 64});
  for (int w = 1; w <= workers; ++w) {
    sched.OnMessage(WorkerId{w}, Hello{"sim", w, "", w, 1, ""}, 0, comm);
    sched.TakeEvents();
  }
  double makespan = 0;
  int64_t messages = 0;
  while (!q.empty()) {
    Event e = q.top();
    q.pop();
    comm.now = e.time;
    ShardDone done;
    done.id = ShardId{std::to_string(e.task)};
    done.attempt = e.attempt;
    done.end = e.time - latency_us * 1e-6;  // as the worker measures it
    done.start = done.end - d[e.task];
    sched.OnMessage(WorkerId{e.worker}, done, e.time, comm);
    sched.TakeEvents();
    makespan = e.time;
    ++messages;
  }
  double cpu = CpuSeconds() - cpu0;
  double wall = std::chrono::duration<double>(std::chrono::steady_clock::now() - wall0).count();
  const auto& c = sched.counts();
  double gap = (makespan - lower_bound) / lower_bound * 100;
  fmt::print(
      "workers {}  shards {}  durations {} (mean {:.3f} s, max {:.3f} s)  latency {} us  window "
      "{}\n",
      workers, shards, dist, sum / shards, mx, latency_us, window);
  fmt::print("done {}  makespan {:.3f} s  lower bound {:.3f} s  gap {:+.3f}%  (goal <= 1%)\n",
             c.done, makespan, lower_bound, gap);
  fmt::print(
      "coordinator CPU {:.3f} s = {:.2f} us/shard (wall {:.3f} s, incl. the simulator's event "
      "queue)\n",
      cpu, cpu / shards * 1e6, wall);
  // References, without the reactor or latency: the best a scheduler that does not know
  // durations can do in this order, and what one that knows them all would do.
  const double greedy = ListSchedule(d, workers);
  std::vector<double> sorted = d;
  std::sort(sorted.begin(), sorted.end(), std::greater<>());
  const double lpt = ListSchedule(sorted, workers);
  auto pct = [&](double m) { return (m - lower_bound) / lower_bound * 100; };
  fmt::print(
      "references: greedy in plan order (durations unknown) {:.3f} s ({:+.3f}%), "
      "longest-first knowing every duration {:.3f} s ({:+.3f}%)\n",
      greedy, pct(greedy), lpt, pct(lpt));
  fmt::print(
      "{{\"workers\":{},\"shards\":{},\"dist\":\"{}\",\"makespan\":{:.6f},\"lower_bound\":{:.6f},"
      "\"gap_pct\":{:.4f},\"greedy_gap_pct\":{:.4f},\"lpt_gap_pct\":{:.4f},"
      "\"cpu_us_per_shard\":{:.3f}}}\n",
      workers, shards, dist, makespan, lower_bound, gap, pct(greedy), pct(lpt), cpu / shards * 1e6);
  return c.done == shards ? 0 : 1;
}

#!/usr/bin/env python3
"""kind: command overhead: `/bin/true` as each shard's command, 1 worker, the registry on,
side by side with GNU parallel (`parallel -j1 --joblog`) running the same command line, same
machine, alternating repetitions in one run.

  bench/command/run.py [--seedgrid build/seedgrid] [--shards 2000] [--reps 3] [--json out.json]

seedgrid: a real `seedgrid run` of a `kind: command` sweep of N seeds (one shard per seed,
argv [/bin/true]) with a fresh registry and out dir; figures from the coordinator's
`--stats-json`: shards/s in steady state (from the 1,000th result on) and over the whole run,
and the round trip per shard (dispatch -> result at rank 0: the executor spawns /bin/true,
waits, publishes; p50). Wall: the whole `seedgrid run`, mpirun start and the registry's final
commit included.
GNU parallel: `parallel -j1 --joblog <file> /bin/true ::: 1..N` (each job a fork+exec of
/bin/true, as seedgrid's). Shards/s over the whole run (its wall) and in steady state (jobs
1,000.. from the joblog's start times); per job: p50 of the start-to-start interval."""
import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(os.path.dirname(HERE))
WARMUP = 1000


def seedgrid_run(binary, n, tmp, rep):
    spec = os.path.join(tmp, f"true-{rep}.yaml")
    with open(spec, "w") as f:
        f.write(f"name: true_{rep}\nkind: command\nseeds: {n}\nparams: {{argv: [/bin/true]}}\n")
    out = os.path.join(tmp, f"runs-{rep}")
    stats = os.path.join(tmp, "stats.json")
    env = dict(os.environ, OMPI_ALLOW_RUN_AS_ROOT="1", OMPI_ALLOW_RUN_AS_ROOT_CONFIRM="1")
    t0 = time.perf_counter()
    subprocess.run([binary, "run", spec, "--workers", "1", "--out", out, "-q",
                    "--stats-json", stats], check=True, env=env, stdout=subprocess.DEVNULL)
    wall = time.perf_counter() - t0
    subprocess.run(["rm", "-rf", out])
    with open(stats) as f:
        s = json.load(f)
    return {"wall_s": wall, "wall_per_s": n / wall, "steady_per_s": s["shards_per_s"],
            "whole_per_s": s["all"]["shards_per_s"], "p50_ms": s["rtt_us"]["p50"] / 1000,
            "p99_ms": s["rtt_us"]["p99"] / 1000}


def parallel_run(n, tmp):
    log = os.path.join(tmp, "joblog.txt")
    args = os.path.join(tmp, "args.txt")
    with open(args, "w") as f:
        f.writelines(f"{i}\n" for i in range(n))
    t0 = time.perf_counter()
    # The argument goes nowhere (`/bin/true {}` would pass it: the same exec either way).
    subprocess.run(["parallel", "-j1", "--joblog", log, "/bin/true", "::::", args], check=True,
                   stdout=subprocess.DEVNULL)
    wall = time.perf_counter() - t0
    starts = []
    with open(log) as f:
        next(f)
        for line in f:
            starts.append(float(line.split("\t")[2]))
    starts.sort()
    gaps = [b - a for a, b in zip(starts, starts[1:])]
    steady = (len(starts) - 1 - WARMUP) / (starts[-1] - starts[WARMUP]) if len(starts) > WARMUP + 1 else None
    return {"wall_s": wall, "wall_per_s": n / wall, "steady_per_s": steady,
            "whole_per_s": (len(starts) - 1) / (starts[-1] - starts[0]),
            "p50_ms": statistics.median(gaps) * 1000,
            "p99_ms": sorted(gaps)[int(0.99 * (len(gaps) - 1))] * 1000}


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--seedgrid", default=os.path.join(ROOT, "build", "seedgrid"))
    ap.add_argument("--shards", type=int, default=2000)
    ap.add_argument("--reps", type=int, default=3)
    ap.add_argument("--json")
    a = ap.parse_args()
    load = os.getloadavg()
    print(f"load average before: {load[0]:.2f} {load[1]:.2f} {load[2]:.2f}; {os.cpu_count()} CPUs",
          flush=True)
    results = {"seedgrid": [], "GNU parallel": []}
    with tempfile.TemporaryDirectory() as tmp:
        for rep in range(a.reps):
            r = seedgrid_run(a.seedgrid, a.shards, tmp, rep)
            results["seedgrid"].append(r)
            print(f"rep {rep} seedgrid: {r}", flush=True)
            r = parallel_run(a.shards, tmp)
            results["GNU parallel"].append(r)
            print(f"rep {rep} GNU parallel: {r}", flush=True)
    load_after = os.getloadavg()
    med = lambda xs: statistics.median(xs)
    print()
    print(f"{a.shards} × /bin/true, 1 worker / -j1, median of {a.reps} alternating runs; load "
          f"average {load[0]:.2f} before, {load_after[0]:.2f} after")
    print()
    print("| runner | shards/s (wall, launch included) | shards/s (whole run) | shards/s (steady) "
          "| p50 per shard ms | p99 ms |")
    print("|---|---|---|---|---|---|")
    summary = {}
    for name, rs in results.items():
        m = {k: med([r[k] for r in rs if r[k] is not None]) for k in rs[0]}
        summary[name] = m
        print(f"| {name} | {m['wall_per_s']:,.0f} | {m['whole_per_s']:,.0f} | "
              f"{m['steady_per_s']:,.0f} | {m['p50_ms']:.2f} | {m['p99_ms']:.2f} |")
    if a.json:
        with open(a.json, "w") as f:
            json.dump({"load": [load, load_after], "median": summary, "runs": results}, f, indent=2)


if __name__ == "__main__":
    sys.exit(main())

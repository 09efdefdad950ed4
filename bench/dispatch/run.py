#!/usr/bin/env python3
"""Dispatch benchmark: no-op shard throughput and round trip through seedgrid's coordinator,
registry and executor, side by side with mpi4py.futures, same ranks (1 coordinator + 1 worker),
same machine, alternating repetitions in one run.

  bench/dispatch/run.py [--seedgrid build/seedgrid] [--shards 20000] [--reps 3] [--json out.json]
                       [--baseline OTHER/seedgrid]   # an older build, the same variants, interleaved

Variants (each a real `seedgrid run` of a `noop` sweep with a fresh registry):
  executor w2   isolation in the executor child, 2 shards in flight (the default)
  executor w1   the same, 1 in flight (round trip = one shard's full path)
  inline w2     isolation: inline (no pipe hop), 2 in flight
  inline w1
  mpi4py.futures  submit().result() (1 in flight) and map(chunksize=1)
Figures, measured by the coordinator (`--stats-json`): shards/s in steady state (from the
1,000th result to the last; the first 1,000 are a warm-up, as the peer's first 200 tasks are)
and over the whole run, and round trip (dispatch -> result received at rank 0) percentiles
after the warm-up. Both systems get the same Open MPI transport (shared memory: seedgrid's
local launches set OMPI_MCA_btl=self,vader, so the peer runs with it too)."""
import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(os.path.dirname(HERE))


def seedgrid_variant(binary, n, isolation, window, tmp):
    spec = os.path.join(tmp, f"noop-{isolation}.yaml")
    with open(spec, "w") as f:
        f.write(f"name: noop_{isolation}\nkind: noop\nseeds: {n}\n"
                f"resources: {{isolation: {isolation}}}\n")
    out = os.path.join(tmp, f"runs-{isolation}-{window}")
    stats = os.path.join(tmp, "stats.json")
    env = dict(os.environ, OMPI_ALLOW_RUN_AS_ROOT="1", OMPI_ALLOW_RUN_AS_ROOT_CONFIRM="1")
    subprocess.run([binary, "run", spec, "--workers", "1", "--window", str(window), "--out", out,
                    "-q", "--stats-json", stats], check=True, env=env)
    subprocess.run(["rm", "-rf", out])
    with open(stats) as f:
        return json.load(f)


def futures_variant(n, tmp):
    out = os.path.join(tmp, "futures.json")
    env = dict(os.environ, OMPI_ALLOW_RUN_AS_ROOT="1", OMPI_ALLOW_RUN_AS_ROOT_CONFIRM="1",
               OMPI_MCA_btl="self,vader")
    subprocess.run(["mpirun", "-n", "2", "--oversubscribe", "/usr/bin/python3", "-m", "mpi4py.futures",
                    os.path.join(HERE, "futures_peer.py"), str(n), out], check=True, env=env,
                   cwd=HERE)
    with open(out) as f:
        return json.load(f)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--seedgrid", default=os.path.join(ROOT, "build", "seedgrid"))
    ap.add_argument("--shards", type=int, default=50000)
    ap.add_argument("--futures-shards", type=int, default=5000)
    ap.add_argument("--reps", type=int, default=3)
    ap.add_argument("--baseline", help="another seedgrid binary, run the same way, interleaved")
    ap.add_argument("--json")
    a = ap.parse_args()
    variants = [("executor", 2), ("executor", 1), ("inline", 2), ("inline", 1)]
    binaries = [("", a.seedgrid)] + ([("baseline ", a.baseline)] if a.baseline else [])
    results = {f"{label}{i} w{w}": [] for label, _ in binaries for i, w in variants}
    results["mpi4py.futures"] = []
    with tempfile.TemporaryDirectory() as tmp:
        for rep in range(a.reps):
            for iso, w in variants:
                for label, binary in binaries:
                    r = seedgrid_variant(binary, a.shards, iso, w, tmp)
                    results[f"{label}{iso} w{w}"].append(r)
                    print(f"rep {rep} {label}{iso} w{w}: {r['shards_per_s']:.0f}/s (whole run "
                          f"{r['all']['shards_per_s']:.0f}/s) p50 {r['rtt_us']['p50']:.1f} us "
                          f"p99 {r['rtt_us']['p99']:.1f} us", flush=True)
            r = futures_variant(a.futures_shards, tmp)
            results["mpi4py.futures"].append(r)
            print(f"rep {rep} mpi4py.futures: sync {r['sync_per_s']:.0f}/s map {r['map_per_s']:.0f}/s "
                  f"p50 {r['rtt_us']['p50']:.1f} us p99 {r['rtt_us']['p99']:.1f} us", flush=True)
    med = lambda xs: statistics.median(xs)
    fut = results["mpi4py.futures"]
    fut_rate = med([max(r["sync_per_s"], r["map_per_s"]) for r in fut])
    fut_p50 = med([r["rtt_us"]["p50"] for r in fut])
    print()
    print(f"| variant | shards/s (steady) | shards/s (whole run) | p50 µs | p99 µs | vs mpi4py.futures (rate) | coordinator CPU µs/shard |")
    print(f"|---|---|---|---|---|---|---|")
    summary = {}
    for name, rs in results.items():
        if name == "mpi4py.futures":
            rate = whole = fut_rate
        else:
            rate = med([r["shards_per_s"] for r in rs])
            whole = med([r["all"]["shards_per_s"] for r in rs])
        p50 = med([r["rtt_us"]["p50"] for r in rs])
        p99 = med([r["rtt_us"]["p99"] for r in rs])
        cpus = [r["coordinator_cpu_us_per_shard"] for r in rs if "coordinator_cpu_us_per_shard" in r]
        cpu = med(cpus) if cpus else None
        summary[name] = {"shards_per_s": rate, "whole_run_shards_per_s": whole, "p50_us": p50,
                         "p99_us": p99, "coordinator_cpu_us_per_shard": cpu}
        print(f"| {name} | {rate:,.0f} | {whole:,.0f} | {p50:.1f} | {p99:.1f} | {rate / fut_rate:.1f}× | "
              f"{'–' if cpu is None else f'{cpu:.2f}'} |")
    if a.json:
        with open(a.json, "w") as f:
            json.dump({"median": summary, "runs": results}, f, indent=2)


if __name__ == "__main__":
    sys.exit(main())

#!/usr/bin/env python3
"""Start-up cost of checking done shards' files (issue 13): `seedgrid run` of a sweep whose
shards are all done, which records the plan, reads the states back, checks every done shard's
file and exits, timed end to end, side by side with an older build, alternating repetitions
in one run.

  bench/integrity/run.py --baseline OLD/seedgrid [--seedgrid build/seedgrid] [--shards 100000]
                         [--reps 5] [--json out.json]

Each build computes its own copy of the sweep first (small `chaos` shards, inline, one ~10 KiB
HDF5 file each; the chaos kind's default params may differ between builds, and so its shard
ids: a copy made by one build is not the other's sweep). Then each relaunch of either build is
timed, alternating. Also timed once: a relaunch of this build after `touch` of every file
(every stamp changed: each file is opened and checked in full, the cost of the first launch
after an upgrade from a registry without stamps, or after the out dir was copied)."""
import argparse
import json
import os
import resource
import shutil
import statistics
import subprocess
import tempfile
import time

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(os.path.dirname(HERE))
ENV = dict(os.environ, OMPI_ALLOW_RUN_AS_ROOT="1", OMPI_ALLOW_RUN_AS_ROOT_CONFIRM="1",
           OMP_WAIT_POLICY="PASSIVE")


def launch(binary, spec, out, workers=1):
    """Wall seconds and CPU seconds (user + system of the launcher, mpirun and every rank:
    all are waited for) of one `seedgrid run`."""
    ru = resource.getrusage(resource.RUSAGE_CHILDREN)
    t = time.perf_counter()
    p = subprocess.run([binary, "run", spec, "--workers", str(workers), "--out", out], env=ENV,
                       capture_output=True, text=True)
    dt = time.perf_counter() - t
    ru2 = resource.getrusage(resource.RUSAGE_CHILDREN)
    if p.returncode != 0:
        raise SystemExit(f"{binary} run failed ({p.returncode}):\n{p.stdout}\n{p.stderr}")
    return dt, ru2.ru_utime - ru.ru_utime + ru2.ru_stime - ru.ru_stime


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--seedgrid", default=os.path.join(ROOT, "build", "seedgrid"))
    ap.add_argument("--baseline", required=True)
    ap.add_argument("--shards", type=int, default=100000)
    ap.add_argument("--reps", type=int, default=5)
    ap.add_argument("--json")
    a = ap.parse_args()
    tmp = tempfile.mkdtemp(prefix="seedgrid-integrity-bench-")
    spec = os.path.join(tmp, "files.yaml")
    with open(spec, "w") as f:
        f.write(f"name: files\nkind: chaos\nseeds: {a.shards}\nresources: {{isolation: inline}}\n")
    builds = {"this build": a.seedgrid, "baseline": a.baseline}
    outs = {k: os.path.join(tmp, k.replace(" ", "_")) for k in builds}
    for k, b in builds.items():
        dt, _ = launch(b, spec, outs[k], workers=3)
        print(f"{k}: computed {a.shards} shards in {dt:.1f} s", flush=True)
    times = {k: [] for k in builds}
    cpu = {k: [] for k in builds}
    for r in range(a.reps):
        for k in (builds if r % 2 == 0 else reversed(list(builds))):
            dt, c = launch(builds[k], spec, outs[k])
            times[k].append(dt)
            cpu[k].append(c)
        print(f"rep {r + 1}: " + ", ".join(f"{k} {times[k][-1]:.3f} s ({cpu[k][-1]:.3f} s CPU)"
                                           for k in builds), flush=True)
    for root, _, files in os.walk(os.path.join(outs["this build"], "files")):
        for f in files:
            os.utime(os.path.join(root, f))
    touched, touched_cpu = launch(a.seedgrid, spec, outs["this build"])
    med = {k: statistics.median(v) for k, v in times.items()}
    med_cpu = {k: statistics.median(v) for k, v in cpu.items()}
    res = {"shards": a.shards, "reps": a.reps, "relaunch_s": times, "median_s": med,
           "overhead_frac": med["this build"] / med["baseline"] - 1,
           "relaunch_cpu_s": cpu, "median_cpu_s": med_cpu,
           "overhead_cpu_frac": med_cpu["this build"] / med_cpu["baseline"] - 1,
           "relaunch_after_touch_all_cpu_s": touched_cpu,
           "relaunch_after_touch_all_s": touched}
    print(json.dumps(res, indent=2))
    if a.json:
        with open(a.json, "w") as f:
            json.dump(res, f, indent=2)
    shutil.rmtree(tmp)


if __name__ == "__main__":
    main()

#!/usr/bin/env python3
"""Start-up cost of checking done shards' files (issue 13): `seedgrid run` of a sweep whose
shards are all done, which records the plan, reads the states back, checks every done shard's
file and exits, timed end to end, side by side with an older build, alternating repetitions
in one run.

  bench/integrity/run.py --baseline OLD/seedgrid [--seedgrid build/seedgrid] [--shards 100000]
                         [--reps 5] [--json out.json]

The older build computes the sweep once (small `chaos` shards, inline, one ~10 KiB HDF5 file
each; ~5 ms a shard here, most of it the publish's fsyncs) and each build gets a copy. This
build's first launch on its copy migrates the registry and, with no stamps recorded yet,
opens and checks every file in full (a one-time cost after an upgrade, timed and reported);
from then on each relaunch of either build is timed, alternating. Also timed once: a relaunch
after `touch` of every file (every stamp changed: the full check again)."""
import argparse
import json
import os
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
    t = time.perf_counter()
    p = subprocess.run([binary, "run", spec, "--workers", str(workers), "--out", out], env=ENV,
                       capture_output=True, text=True)
    dt = time.perf_counter() - t
    if p.returncode != 0:
        raise SystemExit(f"{binary} run failed ({p.returncode}):\n{p.stdout}\n{p.stderr}")
    return dt, p.stdout


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
    dt, _ = launch(a.baseline, spec, outs["baseline"], workers=3)
    print(f"baseline: computed {a.shards} shards in {dt:.1f} s", flush=True)
    shutil.copytree(outs["baseline"], outs["this build"])
    first, text = launch(a.seedgrid, spec, outs["this build"])
    print(f"this build: first launch on the baseline's sweep {first:.3f} s", flush=True)
    times = {k: [] for k in builds}
    for r in range(a.reps):
        for k in (builds if r % 2 == 0 else reversed(list(builds))):
            dt, _ = launch(builds[k], spec, outs[k])
            times[k].append(dt)
        print(f"rep {r + 1}: " + ", ".join(f"{k} {times[k][-1]:.3f} s" for k in builds), flush=True)
    for root, _, files in os.walk(os.path.join(outs["this build"], "files")):
        for f in files:
            os.utime(os.path.join(root, f))
    touched, _ = launch(a.seedgrid, spec, outs["this build"])
    med = {k: statistics.median(v) for k, v in times.items()}
    res = {"shards": a.shards, "reps": a.reps, "relaunch_s": times, "median_s": med,
           "overhead_frac": med["this build"] / med["baseline"] - 1,
           "first_launch_after_upgrade_s": first, "relaunch_after_touch_all_s": touched}
    print(json.dumps(res, indent=2))
    if a.json:
        with open(a.json, "w") as f:
            json.dump(res, f, indent=2)
    shutil.rmtree(tmp)


if __name__ == "__main__":
    main()

#!/usr/bin/python3
"""LoRA training step: seedgrid (LibTorch C++) vs PyTorch, same model, same weights, same run.

  bench/lora/run.py --cpp BUILD/bench/lora/lora_step_bench [--sizes small,large]
                    [--reps-small 7] [--reps-large 3] [--threads-small 1] [--threads-large 2]

For each size: lora_py.py dumps one set of initial weights + tokens; then the two
implementations run alternately (order flipped every repetition), each a fresh process doing
WARMUP + STEPS steps and reporting its per-step median. Both processes get the same
environment: OMP_NUM_THREADS = OPENBLAS_NUM_THREADS = threads, OMP_WAIT_POLICY=passive and
glibc malloc tuned (mmap threshold 64 MiB, trim threshold 1 GiB) through GLIBC_TUNABLES, as in
research/calibration.md. Reports the median of each side, the median of the per-repetition
ratios cpp/py, and fails if the step-0 losses differ (relative 1e-5).
"""
import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile

HERE = os.path.dirname(os.path.abspath(__file__))


def env_for(threads):
    env = dict(os.environ)
    env.update({
        "OMP_NUM_THREADS": str(threads),
        "OPENBLAS_NUM_THREADS": str(threads),
        "MKL_NUM_THREADS": str(threads),
        "OMP_WAIT_POLICY": "passive",
        "GLIBC_TUNABLES": "glibc.malloc.mmap_threshold=67108864:glibc.malloc.trim_threshold=1073741824",
    })
    return env


def run_one(cmd, env):
    out = subprocess.run(cmd, env=env, check=True, capture_output=True, text=True)
    return json.loads(out.stdout.strip().splitlines()[-1])


def bench(size, cpp, reps, steps, warmup, threads, workdir):
    init = os.path.join(workdir, f"init_{size}.safetensors")
    subprocess.run([sys.executable, os.path.join(HERE, "lora_py.py"), "dump", size, init], check=True)
    env = env_for(threads)
    py_cmd = [sys.executable, os.path.join(HERE, "lora_py.py"), "run", size, init, str(steps), str(warmup)]
    cpp_cmd = [cpp, size, init, str(steps), str(warmup), str(threads)]
    rows = []
    for rep in range(reps):
        order = [("py", py_cmd), ("cpp", cpp_cmd)]
        if rep % 2:
            order.reverse()
        got = {name: run_one(cmd, env) for name, cmd in order}
        got["ratio"] = got["cpp"]["median_ms"] / got["py"]["median_ms"]
        rows.append(got)
        print(f"  {size} rep {rep}: py {got['py']['median_ms']:.2f} ms  cpp {got['cpp']['median_ms']:.2f} ms"
              f"  ratio {got['ratio']:.3f}", flush=True)
    l_py, l_cpp = rows[0]["py"]["loss0"], rows[0]["cpp"]["loss0"]
    same = abs(l_py - l_cpp) <= 1e-5 * abs(l_py)
    return {
        "size": size, "threads": threads, "reps": reps, "steps": steps, "warmup": warmup,
        "py_median_ms": statistics.median(r["py"]["median_ms"] for r in rows),
        "cpp_median_ms": statistics.median(r["cpp"]["median_ms"] for r in rows),
        "ratio_median": statistics.median(r["ratio"] for r in rows),
        "ratio_min": min(r["ratio"] for r in rows), "ratio_max": max(r["ratio"] for r in rows),
        "loss0_py": l_py, "loss0_cpp": l_cpp, "same_loss0": same,
    }


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--cpp", required=True, help="path of the lora_step_bench binary")
    ap.add_argument("--sizes", default="small,large")
    ap.add_argument("--reps-small", type=int, default=7)
    ap.add_argument("--reps-large", type=int, default=3)
    ap.add_argument("--steps-small", type=int, default=50)
    ap.add_argument("--steps-large", type=int, default=10)
    ap.add_argument("--threads-small", type=int, default=1)
    ap.add_argument("--threads-large", type=int, default=2)
    ap.add_argument("--json", help="also write the results here")
    a = ap.parse_args()
    results = []
    with tempfile.TemporaryDirectory() as work:
        for size in a.sizes.split(","):
            small = size == "small"
            results.append(bench(size, a.cpp, a.reps_small if small else a.reps_large,
                                 a.steps_small if small else a.steps_large, 5 if small else 2,
                                 a.threads_small if small else a.threads_large, work))
    print()
    print("| model | threads | reps | PyTorch ms/step | seedgrid ms/step | ratio (median, range) | step-0 loss |")
    print("|---|---|---|---|---|---|---|")
    for r in results:
        print(f"| {r['size']} | {r['threads']} | {r['reps']} | {r['py_median_ms']:.2f} | {r['cpp_median_ms']:.2f} "
              f"| {r['ratio_median']:.3f} ({r['ratio_min']:.3f}–{r['ratio_max']:.3f}) "
              f"| {r['loss0_py']:.7f} / {r['loss0_cpp']:.7f} {'same' if r['same_loss0'] else 'DIFFERENT'} |")
    if a.json:
        with open(a.json, "w") as f:
            json.dump(results, f, indent=1)
    if not all(r["same_loss0"] for r in results):
        sys.exit("step-0 losses differ: the two implementations do not compute the same step")


if __name__ == "__main__":
    main()

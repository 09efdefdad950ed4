#!/usr/bin/python3
"""bench/models: a Qwen3-0.6B-shaped checkpoint (28 layers, d 1024, 16 q / 8 kv heads of 128,
d_mlp 3072, vocab 151,936, tied embeddings; random bf16 weights written by qwen3_py.py).

  bench/models/run.py --cpp build/bench/models/model_step_bench --seedgrid build/seedgrid
                      [--dir /tmp/qwen3-0.6b-bench] [--only train,load] [--reps 2] [--steps 3]
                      [--warmup 1] [--threads 2] [--rank 32] [--layers 8,22] [--batch 4]
                      [--load-reps 5] [--dtype float32|bfloat16]

train: LoRA rank 32 on q, k, v, o, gate, up, down of layers 8-21, batch 4 x 256 tokens, one
step = forward + next-token loss over every position + backward + AdamW on the LoRA factors.
seedgrid (model_step_bench: Model::Load, LoraAdapter, FlatAdamW, the code lora_steer trains
with) and PyTorch eager (qwen3_py.py train) run alternately, a fresh process each, order
flipped every repetition, the same environment (OMP/OPENBLAS threads, OMP_WAIT_POLICY=passive,
the glibc malloc thresholds seedgrid's workers use). Reports each side's median step, the
per-repetition ratios, step-0 losses (must agree: B = 0, so both are the base model's loss) and
each process's peak RSS (getrusage).

load: with the file in the page cache (read once first), alternately: `cat FILE > /dev/null`,
a 16 MiB read loop (qwen3_py.py read), the file read into one fresh buffer of its size
(qwen3_py.py read-whole: the pages a loader must own, touched once), Model::Load in-process (model_step_bench load DIR DTYPE,
DTYPE the compute dtype: its phases config / storage allocation / weights mapped or read and
copied are reported apart, then two one-token forwards, whose difference is the first touch of
file-backed weights: "load + first touch"), and `seedgrid model logits DIR --dtype DTYPE` on one token end to end (process
start, load, one forward). /proc/loadavg is recorded before and after, since the machine is
shared.
"""
import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time

HERE = os.path.dirname(os.path.abspath(__file__))
PY = "/usr/bin/python3"


def env_for(threads):
    env = dict(os.environ)
    env.update({
        "OMP_NUM_THREADS": str(threads), "OPENBLAS_NUM_THREADS": str(threads),
        "MKL_NUM_THREADS": str(threads), "OMP_WAIT_POLICY": "passive",
        "GLIBC_TUNABLES": "glibc.malloc.mmap_threshold=67108864:glibc.malloc.trim_threshold=1073741824",
    })
    return env


def uptime():
    with open("/proc/loadavg") as f:
        return " ".join(f.read().split()[:3])


def run_json(cmd, env):
    out = subprocess.run(cmd, env=env, check=True, capture_output=True, text=True)
    return json.loads(out.stdout.strip().splitlines()[-1])


def spread(xs):
    return {"median": statistics.median(xs), "min": min(xs), "max": max(xs), "n": len(xs)}


def bench_train(a, env):
    lo, hi = a.layers.split(",")
    with open(os.path.join(a.dir, "tokens.json")) as f:
        rows = json.load(f)[:a.batch]
    tokens = os.path.join(a.dir, f"tokens_b{a.batch}.json")
    with open(tokens, "w") as f:
        json.dump(rows, f)
    py = [PY, os.path.join(HERE, "qwen3_py.py"), "train", a.dir, str(a.steps), str(a.warmup),
          str(a.rank), lo, hi, tokens]
    cpp = [a.cpp, "train", a.dir, tokens, str(a.steps), str(a.warmup), str(a.rank), lo, hi]
    rows = []
    for rep in range(a.reps):
        order = [("py", py), ("cpp", cpp)] if rep % 2 == 0 else [("cpp", cpp), ("py", py)]
        got = {}
        for name, cmd in order:
            before = uptime()
            got[name] = run_json(cmd, env)
            got[name]["load_before"], got[name]["load_after"] = before, uptime()
            print(f"  train rep {rep} {name}: {json.dumps(got[name])}", flush=True)
        got["ratio"] = got["cpp"]["median_ms"] / got["py"]["median_ms"]
        got["rss_ratio"] = got["cpp"]["peak_rss_kb"] / got["py"]["peak_rss_kb"]
        rows.append(got)
    l_py, l_cpp = rows[0]["py"]["loss0"], rows[0]["cpp"]["loss0"]
    return {
        "py_ms": spread([r["py"]["median_ms"] for r in rows]),
        "cpp_ms": spread([r["cpp"]["median_ms"] for r in rows]),
        "ratio": spread([r["ratio"] for r in rows]),
        "py_rss_mib": spread([r["py"]["peak_rss_kb"] / 1024 for r in rows]),
        "cpp_rss_mib": spread([r["cpp"]["peak_rss_kb"] / 1024 for r in rows]),
        "rss_ratio": spread([r["rss_ratio"] for r in rows]),
        "loss0_py": l_py, "loss0_cpp": l_cpp, "same_loss0": abs(l_py - l_cpp) <= 1e-4 * abs(l_py),
        "lora_params": rows[0]["cpp"]["lora_params"], "rows": rows,
    }


def timed(cmd, env):
    t = time.perf_counter()
    subprocess.run(cmd, env=env, check=True, capture_output=True)
    return (time.perf_counter() - t) * 1e3


def bench_load(a, env):
    path = os.path.join(a.dir, "model.safetensors")
    size = os.path.getsize(path)
    subprocess.run(["cat", path], stdout=subprocess.DEVNULL, check=True)  # warm the page cache
    with tempfile.TemporaryDirectory() as tmp:
        tokens = os.path.join(tmp, "one.json")
        with open(tokens, "w") as f:
            json.dump([1], f)
        cli = [a.seedgrid, "model", "logits", a.dir, "--tokens", tokens, "--out",
               os.path.join(tmp, "x.h5"), "--dtype", a.dtype]
        probe = subprocess.run(cli, env=env, capture_output=True, text=True)
        cli_ok = probe.returncode == 0
        if not cli_ok:
            print(f"  seedgrid model logits --dtype {a.dtype}: exit {probe.returncode}: "
                  f"{probe.stderr.strip()[:200]}", flush=True)
        cat, loop, whole, load, e2e, rss, ready = [], [], [], [], [], [], []
        phases = {"config_ms": [], "alloc_ms": [], "weights_ms": [], "forward1_ms": [],
                  "forward2_ms": [], "rss_anon_load_kb": [], "rss_file_load_kb": [],
                  "rss_anon_forward_kb": [], "rss_file_forward_kb": []}
        backed = []

        def model_load():
            j = run_json([a.cpp, "load", a.dir, a.dtype], env)
            load.append(j["load_ms"])
            # Load plus what it left for the first forward: the first touch of file-backed pages.
            ready.append(j["load_ms"] + max(0.0, j["forward1_ms"] - j["forward2_ms"]))
            rss.append(j["peak_rss_kb"] / 1024)
            backed.append(j["file_backed_bytes"])
            for k, v in phases.items():
                v.append(j[k])
        for rep in range(a.load_reps):
            before = uptime()
            steps = [("cat", lambda: cat.append(
                         timed(["sh", "-c", f"cat '{path}' > /dev/null"], env))),
                     ("loop", lambda: loop.append(
                         run_json([PY, os.path.join(HERE, "qwen3_py.py"), "read", path], env)["ms"])),
                     ("whole", lambda: whole.append(run_json(
                         [PY, os.path.join(HERE, "qwen3_py.py"), "read-whole", path], env)["ms"])),
                     ("load", model_load)]
            if cli_ok:
                steps.append(("cli", lambda: e2e.append(timed(cli, env))))
            if rep % 2:
                steps.reverse()
            for _, fn in steps:
                fn()
            print(f"  load rep {rep}: cat {cat[-1]:.0f} ms, read loop {loop[-1]:.0f} ms, "
                  f"read whole {whole[-1]:.0f} ms, "
                  f"Model::Load {load[-1]:.0f} ms (alloc {phases['alloc_ms'][-1]:.0f}, weights "
                  f"{phases['weights_ms'][-1]:.0f}; forwards {phases['forward1_ms'][-1]:.0f} then "
                  f"{phases['forward2_ms'][-1]:.0f}; file-backed {backed[-1] / 2**20:.0f} MiB)"
                  + (f", CLI {e2e[-1]:.0f} ms" if cli_ok else "")
                  + f" (load {before} -> {uptime()})", flush=True)
    return {"bytes": size, "dtype": a.dtype, "cat_ms": spread(cat), "read_loop_ms": spread(loop),
            "read_whole_ms": spread(whole),
            "model_load_ms": spread(load), "model_load_rss_mib": spread(rss),
            **{k: spread(v) for k, v in phases.items()},
            "cli_ms": spread(e2e) if e2e else None,
            "file_backed_mib": backed[0] / 2**20, "load_plus_first_touch_ms": spread(ready),
            "ratio_load_vs_cat": spread([l / c for l, c in zip(load, cat)]),
            "ratio_load_plus_first_touch_vs_cat": spread([r / c for r, c in zip(ready, cat)]),
            "ratio_load_vs_loop": spread([l / c for l, c in zip(load, loop)]),
            "ratio_load_vs_whole": spread([l / c for l, c in zip(load, whole)]),
            "per_rep": [{"cat": c, "loop": lp, "whole": w, "load": l, "ready": r}
                        for c, lp, w, l, r in zip(cat, loop, whole, load, ready)]}


def main():
    ap = argparse.ArgumentParser(description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--cpp", required=True)
    ap.add_argument("--seedgrid", required=True)
    ap.add_argument("--dir", default="/tmp/qwen3-0.6b-bench")
    ap.add_argument("--only", default="train,load")
    ap.add_argument("--reps", type=int, default=2)
    ap.add_argument("--steps", type=int, default=3)
    ap.add_argument("--warmup", type=int, default=1)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--rank", type=int, default=32)
    ap.add_argument("--batch", type=int, default=4, help="rows of the 4 x 256 tokens used")
    ap.add_argument("--layers", default="8,22", help="LoRA on layers [lo, hi)")
    ap.add_argument("--load-reps", type=int, default=5)
    ap.add_argument("--dtype", default="float32", choices=["float32", "bfloat16"])
    a = ap.parse_args()
    if not os.path.exists(os.path.join(a.dir, "model.safetensors")):
        subprocess.run([PY, os.path.join(HERE, "qwen3_py.py"), "write", a.dir, "--dtype",
                        "bfloat16"], check=True)
    env = env_for(a.threads)
    result = {"machine_load_start": uptime(), "threads": a.threads}
    if "train" in a.only:
        result["train"] = bench_train(a, env)
    if "load" in a.only:
        result["load"] = bench_load(a, env)
    result["machine_load_end"] = uptime()
    print(json.dumps(result, indent=1))


if __name__ == "__main__":
    sys.exit(main())

"""Issue 16 point 3: peak RSS and time of `seedgrid model logits` on a ~200 MB bf16 checkpoint
with float32 against bfloat16 compute, and the bf16 GEMM speed of this CPU's LibTorch.

Run (from the repository root, after scripts/build):
  /usr/bin/python3 bench/model_dtype/measure.py [--bin build/seedgrid] [--reps 3]
Prints a markdown table (the figures in docs/models.md came from it).
"""
import argparse
import json
import os
import subprocess
import sys
import tempfile
import time

import torch

sys.path.insert(0, os.path.join(os.path.dirname(__file__), "../../tests/models"))
import test_families as tf  # noqa: E402  (the checkpoint writer of the family tests)

# Llama-layout, Qwen3-0.6B-like widths, 6 layers: 108.5 M parameters, 217 MB in bf16.
CFG = tf.cut(tf.LLAMA_32_1B, hidden_size=1024, head_dim=64, num_attention_heads=16,
             num_key_value_heads=8, intermediate_size=3072, num_hidden_layers=6,
             vocab_size=32000)


def timed(cmd):
    """(wall seconds, peak RSS MiB) of one run, from GNU time."""
    r = subprocess.run(["/usr/bin/time", "-f", "%e %M", *cmd], capture_output=True, text=True)
    if r.returncode != 0:
        raise SystemExit(f"{' '.join(cmd)}: exit {r.returncode}\n{r.stderr}")
    wall, kib = r.stderr.strip().splitlines()[-1].split()
    return float(wall), int(kib) / 1024


def gemm_gflops(n, dtype, threads, reps=5):
    torch.set_num_threads(threads)
    a, b = torch.randn(n, n).to(dtype), torch.randn(n, n).to(dtype)
    a @ b
    t = time.perf_counter()
    for _ in range(reps):
        a @ b
    return 2 * n ** 3 * reps / (time.perf_counter() - t) / 1e9


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--bin", default="build/seedgrid")
    ap.add_argument("--reps", type=int, default=3)
    args = ap.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        ckpt = os.path.join(tmp, "ckpt")
        W = tf.random_weights(CFG, 1, 0.02)
        tf.write_checkpoint(ckpt, CFG, W, torch.bfloat16)
        del W
        size = os.path.getsize(os.path.join(ckpt, "model.safetensors")) / 2 ** 20
        short, long_ = os.path.join(tmp, "short.json"), os.path.join(tmp, "long.json")
        g = torch.Generator().manual_seed(0)
        with open(short, "w") as f:
            json.dump(torch.randint(0, 32000, (1, 8), generator=g).tolist(), f)
        with open(long_, "w") as f:
            json.dump(torch.randint(0, 32000, (4, 256), generator=g).tolist(), f)
        out = os.path.join(tmp, "o.h5")
        base = min(timed([args.bin, "model", "inspect", ckpt])[1] for _ in range(args.reps))
        print(f"checkpoint: {size:.0f} MiB bf16, "
              f"`seedgrid model inspect` peak RSS {base:.0f} MiB (LibTorch, no weights)\n")
        print("| compute dtype | peak RSS, load + [1, 8] forward | over inspect | wall, [1, 8] "
              "| wall, [4, 256] | [4, 256] forward alone |")
        print("|---|---|---|---|---|---|")
        for dt in ("float32", "bfloat16"):
            s = [timed([args.bin, "model", "logits", ckpt, "--tokens", short, "--out", out,
                        "--dtype", dt]) for _ in range(args.reps)]
            l = [timed([args.bin, "model", "logits", ckpt, "--tokens", long_, "--out", out,
                        "--dtype", dt]) for _ in range(args.reps)]
            rss = min(x[1] for x in s)
            ws, wl = min(x[0] for x in s), min(x[0] for x in l)
            print(f"| {dt} | {rss:.0f} MiB | +{rss - base:.0f} MiB | {ws:.2f} s | {wl:.2f} s "
                  f"| {wl - ws:.2f} s |")
    print("\nGEMM (torch.mm, n x n), GFLOP/s:\n")
    print("| n | threads | float32 | bfloat16 | bf16 / f32 |")
    print("|---|---|---|---|---|")
    for n in (1024, 2048):
        for th in (1, 2):
            f32 = gemm_gflops(n, torch.float32, th)
            bf = gemm_gflops(n, torch.bfloat16, th)
            print(f"| {n} | {th} | {f32:.1f} | {bf:.1f} | {bf / f32:.2f} |")


if __name__ == "__main__":
    main()

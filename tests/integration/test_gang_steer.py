"""MPI integration test of data-parallel lora_steer (issue: `ranks: k > 1` trains through a
`Collective`, MPI backend here, and gives the `ranks: 1` dW within float tolerance). The real
binary under real mpirun: the gang's two workers build an MPI sub-communicator and all-reduce
their gradients; tests/experiments/runners_test.cpp checks the same over an in-process fake.

Content addressing: resources do not enter a shard's id, so a `ranks: 2` stage with the same
kind, params, seed and needs as a `ranks: 1` stage IS the same shard (spec expansion rejects two
such stages, and a second sweep of the same registry shares the done shard instead of running
it). The honest way to run the computation twice is therefore two sweeps in one registry whose
steer params differ only in how they name the same checkpoint: the first finds the base through
`needs: base`, the second names the directory explicitly (`base: DIR`, the `base_checkpoint`
the first recorded). Both read the identical files; everything else is the same.
"""
import json
import os
import signal
import subprocess
import unittest

import numpy as np

from harness import SweepTest, seedgrid_pids

# Small enough for a 2-core machine (the whole test runs in ~20-30 s): a d_model 32 base
# pretrained for 150 steps (~2 s), then adapters trained for 12 AdamW steps (lr 3e-3) on global
# batches of 16 rows, 8 per rank; enough for a dW far from zero and from float noise.
BASE = """
  - name: base
    kind: pretrain
    params:
      model: {d_model: 32, n_heads: 2, d_mlp: 64}
      train: {steps: 150, batch: 32}
      eval: {rows: 64}
"""
STEER_PARAMS = """
      lora: {{rank: 2, dropout: {dropout}}}
      train: {{steps: 12, batch: 16, lr: 3e-3}}
      data: {{n_train: 64, n_eval: 32, n_kl: 8}}
      eval: {{alphas: [0.0, 1.0]}}"""

# Tolerance. Data-parallel training changes only the float summation order (each rank sums
# the cross-entropy over its 8 rows, the all-reduce adds the two partial gradients; the LoRA
# dropout masks are bit-identical, see TrainableAdapter::set_batch_slice). Over 12 AdamW steps
# that gave max |dW(ranks 2) - dW(ranks 1)| of ~3e-7 against max |dW| ~5e-2, i.e. float32
# rounding (eps 6e-8 times the dW scale, grown over the steps). atol 1e-5 (2e-4 of the dW scale)
# with rtol 1e-4 leaves >= 20x headroom over that noise and is still ~3 orders of magnitude below
# a real difference: one rank using the wrong dropout mask gave |ΔdW| ~3e-2 (a missing
# all-reduce or a wrong batch slice would change the update itself, not its rounding).
RTOL, ATOL = 1e-4, 1e-5


class GangSteer(SweepTest):
    def launch(self, spec, workers, timeout=120):
        """`seedgrid run` in its own session, so that a hang (a gang rank stuck in a collective)
        fails the test in bounded time and leaves no mpirun or rank behind."""
        proc = self.start_seedgrid("run", spec, "--workers", str(workers))
        try:
            out, _ = proc.communicate(timeout=timeout)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)  # the launcher and mpirun
            for pid in seedgrid_pids(self.dir) + seedgrid_pids(self.dir, executor=True):
                try:
                    os.kill(pid, signal.SIGKILL)  # ranks and executors working in our dir
                except ProcessLookupError:
                    pass
            out, _ = proc.communicate()
            self.fail(f"seedgrid run {os.path.basename(spec)} hung for {timeout} s:\n{out}")
        self.assertEqual(proc.returncode, 0, out)
        return out

    def steer_file(self, sweep):
        rows = self.query("select id, status, artifact from shards where sweep=? and stage='steer'",
                          sweep)
        self.assertEqual(len(rows), 1, rows)
        shard, status, artifact = rows[0]
        self.assertEqual(status, "done", f"{sweep}: {self.attempts(sweep)}")
        path = os.path.join(self.dir, "runs", artifact)
        self.assertTrue(os.path.exists(path), path)
        return shard, path

    def run_pair(self, dropout):
        import h5py
        params = STEER_PARAMS.format(dropout=dropout)
        # ranks 1: base + steer in one sweep (2 workers; the steer shard runs in an executor).
        one = self.spec("one.yaml", f"""
name: one
out: runs
stages:{BASE}
  - name: steer
    kind: lora_steer
    needs: base
    seeds: [7]
    params:{params}
    resources: {{ranks: 1, timeout: 2m, max_attempts: 1}}
""")
        self.launch(one, workers=2)
        id1, path1 = self.steer_file("one")
        with h5py.File(path1, "r") as f:
            base_dir = f.attrs["base_checkpoint"]
        self.assertTrue(os.path.exists(os.path.join(base_dir, "model.safetensors")), base_dir)

        # ranks 2: the same steer shard over a gang of both workers (same seed, same params but
        # the explicit base directory, so a shard of its own).
        two = self.spec("two.yaml", f"""
name: two
out: runs
stages:
  - name: steer
    kind: lora_steer
    seeds: [7]
    params:
      base: {json.dumps(base_dir)}{params}
    resources: {{ranks: 2, timeout: 2m, max_attempts: 1}}
""")
        out = self.launch(two, workers=2)
        self.assertNotIn("shared with another sweep", out)
        id2, path2 = self.steer_file("two")
        self.assertNotEqual(id1, id2)
        # One charged attempt each; the gang's attempt is reported by its lead (a worker rank).
        self.assertEqual([a[2] for a in self.attempts("two")], ["ok"])
        return path1, path2

    def compare(self, path1, path2):
        import h5py
        with h5py.File(path1, "r") as a, h5py.File(path2, "r") as b:
            # Provenance: ranks 1 trained alone, ranks 2 as a real 2-rank MPI gang.
            self.assertEqual((a.attrs["gang_size"], a.attrs["collective_backend"]), (1, "none"))
            self.assertEqual((b.attrs["gang_size"], b.attrs["collective_backend"]), (2, "mpi"))
            self.assertEqual(a.attrs["base_checkpoint"], b.attrs["base_checkpoint"])
            names = sorted(a["dW"])
            self.assertEqual(names, sorted(b["dW"]))
            self.assertEqual(len(names), 14)  # q, k, v, o, gate, up, down of 2 layers
            max_diff = max_abs = 0.0
            for name in names:
                x, y = a["dW"][name][()], b["dW"][name][()]
                self.assertEqual(x.shape, y.shape, name)
                self.assertTrue(np.allclose(y, x, rtol=RTOL, atol=ATOL),
                                f"dW/{name}: max |diff| {np.abs(x - y).max():.3g}, "
                                f"max |dW| {np.abs(x).max():.3g}")
                max_diff = max(max_diff, float(np.abs(x - y).max()))
                max_abs = max(max_abs, float(np.abs(x).max()))
            # The test can fail: the adapters did train, dW is far from zero.
            self.assertGreater(max_abs, 1e-3)
            self.assertGreater(max_abs, 1000 * max(max_diff, 1e-9))
            # The LoRA factors themselves (not only their products).
            factors = []
            a["adapter"].visititems(lambda n, o: factors.append(n) if hasattr(o, "shape") else None)
            self.assertEqual(len(factors), 2 * 14 * 2)  # pos/neg × weights × A, B
            for name in factors:
                x, y = a["adapter"][name][()], b["adapter"][name][()]
                self.assertTrue(np.allclose(y, x, rtol=RTOL, atol=ATOL),
                                f"adapter/{name}: max |diff| {np.abs(x - y).max():.3g}")
            # The all-reduced per-step losses and the metrics.
            for side in ("loss_pos", "loss_neg"):
                self.assertTrue(np.allclose(b["train"][side][()], a["train"][side][()],
                                            rtol=RTOL, atol=ATOL), side)
            for m in ("steer_delta", "dw_fro", "final_loss_pos", "final_loss_neg", "kl_at_1"):
                va, vb = a.attrs[f"metric.{m}"], b.attrs[f"metric.{m}"]
                self.assertAlmostEqual(vb, va, delta=RTOL * abs(va) + ATOL, msg=m)
            self.assertGreater(abs(a.attrs["metric.steer_delta"]), 1e-3)
            print(f"\n  max |dW(ranks 2) - dW(ranks 1)| = {max_diff:.3g} (max |dW| {max_abs:.3g})")

    def test_ranks_2_gives_the_ranks_1_dw(self):
        self.compare(*self.run_pair(dropout=0.0))

    def test_ranks_2_gives_the_ranks_1_dw_with_lora_dropout(self):
        # Dropout masks are random draws: each rank must use the masks the ranks:1 run draws for
        # its rows. Before TrainableAdapter::set_batch_slice every rank drew a mask of its local
        # shape from the same generator state, and dW differed by up to ~3e-2.
        self.compare(*self.run_pair(dropout=0.1))


if __name__ == "__main__":
    unittest.main()

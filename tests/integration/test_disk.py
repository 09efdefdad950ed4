"""A full disk (issue 13, point 8): the out dir on a small tmpfs, the registry elsewhere. A shard
that cannot be written fails with the system's reason, rank 0 exits 3 without a crash (HDF5
used to segfault at exit after an H5Fclose that failed to flush), nothing partial is taken for
a result, and the sweep completes once space is freed."""
import os
import re
import subprocess
import unittest

from harness import SEEDGRID, SweepTest

ENOSPC = "No space left on device"
CRASH = re.compile(r"Segmentation fault|signal 11|SIGSEGV|core dumped", re.IGNORECASE)
BASE_SHARDS = 48  # enough links that results.h5 no longer fits in the last free page
MORE_SHARDS = 4


class FullDisk(SweepTest):
    def setUp(self):
        super().setUp()
        self.out = os.path.join(self.dir, "out")
        os.makedirs(self.out)
        os.makedirs(os.path.dirname(self.registry))
        self.mounted = False
        p = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=4m", "tmpfs", self.out],
                           capture_output=True, text=True)
        if p.returncode != 0:
            self._tmp.cleanup()  # tearDown does not run after a skip in setUp
            self.skipTest(f"cannot mount a tmpfs (needs root): {p.stderr.strip()}")
        self.mounted = True
        self.filler = os.path.join(self.out, "filler")

    def tearDown(self):
        if self.mounted:
            if subprocess.run(["umount", self.out], capture_output=True).returncode != 0:
                subprocess.run(["umount", "-l", self.out], capture_output=True)
        super().tearDown()

    @property
    def registry(self):  # on the real disk, not on the tmpfs
        return os.path.join(self.dir, "reg", "registry.sqlite")

    def sweep_spec(self, more=False, inline=False):
        """`base`: small shards that fit. `more`: one shard per seed that writes nothing but its
        header and metrics (fails closing the file) and one that writes 1 MiB (fails writing a
        dataset)."""
        text = f"""
            name: disk
            stages:
              - name: base
                kind: chaos
                seeds: {BASE_SHARDS}
        """
        if more:
            text += f"""
              - name: more
                kind: chaos
                seeds: {MORE_SHARDS // 2}
                params: {{tag: more}}
                grid: {{write_mb: [0.0, 1.0]}}
                resources: {{max_attempts: 2{", isolation: inline" if inline else ""}}}
        """
        return self.spec("more.yaml" if more else "base.yaml", text)

    def fill_leaving_one_page(self):
        """A filler file that leaves one page free: enough for HDF5 to create a file (the
        superblock), not to close one with a few kB of metadata."""
        st = os.statvfs(self.out)
        with open(self.filler, "wb") as f:
            f.write(b"\0" * ((st.f_bavail - 1) * st.f_frsize))
        self.assertEqual(os.statvfs(self.out).f_bavail, 1)

    def launch_base_then_fill(self):
        self.run_seedgrid("run", self.sweep_spec(), "--out", self.out, "--registry", self.registry,
                          "--workers", "2", check=0)
        self.assertEqual(self.count_done("disk"), BASE_SHARDS)
        self.fill_leaving_one_page()

    def assert_no_crash(self, p):
        self.assertIsNone(CRASH.search(p.stdout + p.stderr),
                          f"stdout:\n{p.stdout}\nstderr:\n{p.stderr}")

    def assert_full_disk_outcome(self, p):
        """What a launch on the full disk must leave: exit 3, no crash, every `more` shard failed
        with the reason on its error's first line, base untouched, nothing partial published."""
        self.assertEqual(p.returncode, 3, f"stdout:\n{p.stdout}\nstderr:\n{p.stderr}")
        self.assert_no_crash(p)
        self.assertIn("could not write results.h5", p.stderr)
        rows = self.query("select id, stage, status, attempts, artifact from shards "
                          "where sweep='disk'")
        more = [r for r in rows if r[1] == "more"]
        self.assertEqual(len(more), MORE_SHARDS)
        self.assertEqual({r[2] for r in more}, {"failed"})
        self.assertEqual({r[3] for r in more}, {2})
        self.assertEqual({r[4] or "" for r in more}, {""})
        self.assertEqual(sorted(r[2] for r in rows if r[1] == "base"), ["done"] * BASE_SHARDS)
        attempts = [a for a in self.attempts("disk") if a[0] in {r[0] for r in more}]
        self.assertEqual(len(attempts), 2 * MORE_SHARDS)
        for shard, n, outcome, sig, code, error in attempts:
            self.assertEqual(outcome, "error", error)
            self.assertIn(ENOSPC, error.splitlines()[0])
        launches = self.query("select exit_code from launches order by rowid")
        self.assertEqual([c for (c,) in launches], [0, 3])
        # Nothing partial: no temp file, no file for a failed shard; the last good results.h5
        # (from the first launch) is left as it was.
        names = [os.path.join(d, f) for d, _, fs in os.walk(self.out) for f in fs]
        self.assertEqual([n for n in names if ".tmp-" in n], [])
        more_dir = os.path.join(self.out, "disk", "more")
        self.assertEqual([n for n in names if n.startswith(more_dir)], [])
        self.assertEqual(self.results_links(), BASE_SHARDS)

    def results_links(self):
        """Number of shards results.h5 links, each opened through its link."""
        import h5py
        n = 0
        with h5py.File(os.path.join(self.out, "disk", "results.h5"), "r") as f:
            for stage in f:
                for shard in f[stage]:
                    self.assertEqual(f[stage][shard].attrs["seedgrid_shard_id"], shard)
                    n += 1
        return n

    def test_full_out_dir_fails_shards_with_the_reason_and_resumes_once_freed(self):
        self.launch_base_then_fill()
        more = self.sweep_spec(more=True)
        p = self.run_seedgrid("run", more, "--out", self.out, "--registry", self.registry,
                              "--workers", "2")
        self.assert_full_disk_outcome(p)
        self.assertIn(ENOSPC, p.stderr)
        s = self.run_seedgrid("status", "disk", "--registry", self.registry, check=0)
        self.assertIn(ENOSPC, s.stdout)

        os.unlink(self.filler)
        p = self.run_seedgrid("rerun", "disk", "--failed", "--registry", self.registry,
                              "--workers", "2", check=0)
        self.assert_no_crash(p)
        self.assertEqual(self.count_done("disk"), BASE_SHARDS + MORE_SHARDS)
        self.assertEqual(self.results_links(), BASE_SHARDS + MORE_SHARDS)
        names = [f for _, _, fs in os.walk(self.out) for f in fs]
        self.assertEqual([n for n in names if ".tmp-" in n], [])

    def test_rank_0_under_a_users_own_mpirun_exits_3_not_139(self):
        """Without the self-launcher, which reads the code from a file, rank 0's own exit status
        is what mpirun returns: a crash at exit showed as 139. Inline shards put the failing
        HDF5 writes in the worker rank itself."""
        self.launch_base_then_fill()
        env = dict(self.env, OMPI_MCA_rmaps_base_oversubscribe="1", OMPI_MCA_btl="self,vader",
                   OMP_WAIT_POLICY="PASSIVE")
        env.pop("SEEDGRID_EXIT_FILE", None)
        p = subprocess.run(["mpirun", "-n", "2", SEEDGRID, "run",
                            self.sweep_spec(more=True, inline=True),
                            "--out", self.out, "--registry", self.registry],
                           cwd=self.dir, env=env, capture_output=True, text=True, timeout=120)
        self.assert_full_disk_outcome(p)


if __name__ == "__main__":
    unittest.main()

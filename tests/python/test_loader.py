"""The Python helper's reader side (seedgrid.load, seedgrid.results) against a registry made
by a real `seedgrid run` under mpirun (chaos kind: two stages, grid × seeds, failing shards),
checked against `seedgrid status --json` and the shards' own HDF5 files."""
import hashlib
import json
import os
import subprocess
import sys
import tempfile
import textwrap
import unittest

import h5py

from helper import PYTHON_DIR, REPO

sys.path.insert(0, os.path.join(REPO, "tests", "integration"))
from harness import SEEDGRID, SweepTest  # noqa: E402

import seedgrid  # noqa: E402

SPEC = """
    name: pyload
    out: runs
    stages:
      - name: first
        kind: chaos
        seeds: [0, 1]
        grid: {value: [1.0, 2.5], noise: [0.5]}
      - name: second
        kind: chaos
        needs: first
        zip: {mode: [ok, throw]}
        params: {message: "boom from the test"}
        resources: {max_attempts: 1}
"""


def sha256(path):
    with open(path, "rb") as f:
        return hashlib.sha256(f.read()).hexdigest()


class FinishedSweep(unittest.TestCase):
    """One real sweep, run once for the class: 4 shards in `first` (2 seeds × value 1.0, 2.5),
    8 in `second` (each of them × mode ok, throw; the throw ones fail)."""

    @classmethod
    def setUpClass(cls):
        cls._tmp = tempfile.TemporaryDirectory(prefix="seedgrid-load-")
        cls.dir = cls._tmp.name
        cls.env = dict(os.environ, OMPI_ALLOW_RUN_AS_ROOT="1", OMPI_ALLOW_RUN_AS_ROOT_CONFIRM="1",
                       SEEDGRID_PROGRESS="plain")
        with open(os.path.join(cls.dir, "s.yaml"), "w") as f:
            f.write(textwrap.dedent(SPEC))
        p = cls.seedgrid("run", "s.yaml", "--workers", "2")
        if p.returncode != 3:  # 3: some shards failed (the mode=throw ones), as planned
            raise AssertionError(f"seedgrid run exited {p.returncode}\n{p.stdout}\n{p.stderr}")
        cls.registry = os.path.join(cls.dir, "runs", "registry.sqlite")
        p = cls.seedgrid("status", "pyload", "--json", "--registry", cls.registry)
        cls.status = json.loads(p.stdout)

    @classmethod
    def tearDownClass(cls):
        cls._tmp.cleanup()

    @classmethod
    def seedgrid(cls, *args):
        return subprocess.run([SEEDGRID, *args], cwd=cls.dir, env=cls.env, capture_output=True,
                              text=True, timeout=240)

    def test_one_row_per_shard_with_counts_as_seedgrid_status(self):
        df = seedgrid.load(self.registry, "pyload")
        self.assertEqual(len(df), self.status["total"])
        self.assertEqual(len(df), 12)
        self.assertEqual(df["id"].nunique(), 12)
        counts = df.groupby(["stage", "status"]).size().to_dict()
        for st in self.status["stages"]:
            for status in ("done", "failed", "pending", "running", "preempted"):
                self.assertEqual(counts.get((st["name"], status), 0), st[status],
                                 f"{st['name']} {status}")
            self.assertEqual((df["kind"][df["stage"] == st["name"]] == st["kind"]).all(), True)

    def test_failed_shards_carry_seed_axes_and_error_as_status_shows_them(self):
        df = seedgrid.load(self.registry, "pyload")
        failed = df[df["status"] == "failed"].set_index("id")
        self.assertEqual(sorted(failed.index), sorted(f["id"] for f in self.status["failed"]))
        for f in self.status["failed"]:
            row = failed.loc[f["id"]]
            self.assertEqual((row["stage"], row["seed"], row["error"], row["attempts"]),
                             (f["stage"], f["seed"], f["error"], f["attempts"]))
            self.assertEqual({"mode": row["mode"], "noise": row["noise"], "value": row["value"]},
                             f["axes"])
            self.assertIn("boom from the test", row["error"])

    def test_axes_are_columns_and_stages_without_an_axis_have_none(self):
        df = seedgrid.load(self.registry, "pyload")
        self.assertEqual(list(df.columns[:7]),
                         ["id", "stage", "kind", "seed", "status", "attempts", "error"])
        first = df[df["stage"] == "first"]
        second = df[df["stage"] == "second"]
        self.assertEqual(sorted(zip(first["seed"], first["value"])),
                         [(0, 1.0), (0, 2.5), (1, 1.0), (1, 2.5)])
        self.assertTrue(first["mode"].isna().all())  # `first` has no mode axis
        self.assertEqual(sorted(second["mode"]), ["ok"] * 4 + ["throw"] * 4)
        self.assertEqual(set(df["noise"]), {0.5})

    def test_metrics_are_columns_equal_to_the_registry_and_the_shard_files(self):
        # The chaos metric `value` collides with the axis `value`: it becomes metric.value.
        df = seedgrid.load(self.registry, "pyload")
        self.assertIn("metric.value", df.columns)
        self.assertIn("sleep_ms", df.columns)
        done = df[df["status"] == "done"]
        self.assertEqual(len(done), 8)
        self.assertTrue(df[df["status"] == "failed"]["metric.value"].isna().all())
        import sqlite3
        con = sqlite3.connect(self.registry)
        stored = {(s, n): v for s, n, v in con.execute("select shard, name, value from metrics")}
        con.close()
        with seedgrid.results(self.registry, "pyload") as files:
            for _, row in done.iterrows():
                self.assertEqual(row["metric.value"], stored[(row["id"], "value")])
                f = files[row["id"]]
                # The shard file's own record, and the chaos kind's formula over its params
                # (a `second` shard shows its need's axes but runs the default value, noise).
                self.assertEqual(f.attrs["metric.value"], row["metric.value"])
                params = json.loads(f.attrs["seedgrid_params"])
                if row["stage"] == "first":
                    self.assertEqual((params["value"], params["noise"]), (row["value"], 0.5))
                expected = params["value"] + params["noise"] * f["chaos/values"][0]
                self.assertAlmostEqual(row["metric.value"], expected, places=12)

    def test_a_list_of_dicts_without_pandas(self):
        rows = seedgrid.load(self.registry, "pyload", as_frame=False)
        df = seedgrid.load(self.registry, "pyload", as_frame=True)
        self.assertIsInstance(rows, list)
        self.assertEqual(len(rows), len(df))
        self.assertEqual(list(rows[0]), list(df.columns))
        self.assertEqual([r["id"] for r in rows], list(df["id"]))
        self.assertEqual(rows[0]["mode"], None)
        # Where pandas cannot be imported, the default is the list.
        code = ("import sys; sys.modules['pandas'] = None; import seedgrid; "
                f"r = seedgrid.load({self.registry!r}, 'pyload'); print(type(r).__name__, len(r))"
                f"\ntry: seedgrid.load({self.registry!r}, 'pyload', as_frame=True)"
                "\nexcept ImportError as e: print(e)")
        p = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                           env=dict(os.environ, PYTHONPATH=PYTHON_DIR), timeout=60)
        lines = p.stdout.splitlines()
        self.assertEqual(lines[0].split(), ["list", "12"], p.stderr)
        self.assertIn("needs pandas (Debian: python3-pandas", lines[1])

    def test_a_stage_a_directory_and_clear_errors(self):
        df = seedgrid.load(os.path.join(self.dir, "runs"), "pyload", stage="second")
        self.assertEqual(set(df["stage"]), {"second"})
        self.assertEqual(len(df), 8)
        with self.assertRaisesRegex(KeyError, "no sweep 'nope' .*its sweeps: pyload"):
            seedgrid.load(self.registry, "nope")
        with self.assertRaisesRegex(KeyError, "has no stage 'third'"):
            seedgrid.load(self.registry, "pyload", stage="third")
        with self.assertRaisesRegex(FileNotFoundError, "no registry at"):
            seedgrid.load(os.path.join(self.dir, "missing"), "pyload")
        junk = os.path.join(self.dir, "junk.sqlite")
        with open(junk, "wb") as f:
            f.write(b"not a database at all" * 100)
        with self.assertRaisesRegex(ValueError, "junk.sqlite is not a seedgrid registry"):
            seedgrid.load(junk, "pyload")

    def test_reading_changes_nothing(self):
        before = {n: sha256(os.path.join(self.dir, "runs", n))
                  for n in os.listdir(os.path.join(self.dir, "runs"))
                  if n.startswith("registry.sqlite")}
        seedgrid.load(self.registry, "pyload")
        with seedgrid.results(self.registry, "pyload") as files:
            for f in files.values():
                f.attrs["seedgrid_shard_id"]
        after = {n: sha256(os.path.join(self.dir, "runs", n))
                 for n in os.listdir(os.path.join(self.dir, "runs"))
                 if n.startswith("registry.sqlite")}
        self.assertIn("registry.sqlite", before)
        for name in before:  # the database and its WAL, if any (-shm is an index in memory)
            if not name.endswith("-shm"):
                self.assertEqual(after.get(name), before[name], name)

    def test_results_are_the_done_shards_files_opened_read_only_and_closed(self):
        df = seedgrid.load(self.registry, "pyload")
        done = set(df["id"][df["status"] == "done"])
        with seedgrid.results(self.registry, "pyload") as files:
            self.assertEqual(set(files), done)
            self.assertEqual(len(files), 8)
            opened = []
            for sid, f in files.items():
                self.assertIsInstance(f, h5py.File)
                self.assertEqual(f.mode, "r")
                self.assertEqual(f.attrs["seedgrid_shard_id"], sid)
                self.assertEqual(f["chaos/values"].shape, (8,))
                self.assertEqual(files.rows[sid]["seed"], f.attrs["seedgrid_seed"])
                self.assertTrue(os.path.isabs(files.paths[sid]))
                opened.append(f)
        self.assertFalse(any(f.id.valid for f in opened))  # closed by the with block
        second = seedgrid.results(self.registry, "pyload", stage="second")
        self.assertEqual(set(second), set(df["id"][(df["status"] == "done") &
                                                   (df["stage"] == "second")]))
        second.close()

    def test_a_missing_file_is_named(self):
        files = seedgrid.results(self.registry, "pyload", stage="first")
        sid = next(iter(files))
        moved = files.paths[sid] + ".away"
        os.rename(files.paths[sid], moved)
        try:
            with self.assertRaisesRegex(FileNotFoundError, f"shard {sid} is done but its file"):
                files[sid]
        finally:
            os.rename(moved, files.paths[sid])
            files.close()


class RunningSweep(SweepTest):
    """The registry read while `seedgrid run` writes it: read-only, no lock taken, no error."""

    def test_load_during_a_run(self):
        spec = self.spec("slow.yaml", """
            name: slow
            kind: chaos
            seeds: 6
            params: {sleep_ms: 700}
        """)
        proc = self.start_seedgrid("run", spec, "--workers", "1")
        try:
            self.wait_for(lambda: self.count_done("slow") >= 1, timeout=120, what="a done shard")
            df = seedgrid.load(self.registry, "slow")
            self.assertEqual(len(df), 6)
            self.assertTrue(set(df["status"]) <= {"done", "running", "pending"})
            self.assertGreaterEqual((df["status"] == "done").sum(), 1)
            self.assertLess((df["status"] == "done").sum(), 6)
            out, _ = proc.communicate(timeout=180)
        finally:
            if proc.poll() is None:
                proc.kill()
                proc.communicate()
        self.assertEqual(proc.returncode, 0, out)  # the run was not disturbed
        df = seedgrid.load(self.registry, "slow")
        self.assertEqual(list(df["status"]), ["done"] * 6)
        self.assertFalse(df["value"].isna().any())


if __name__ == "__main__":
    unittest.main()

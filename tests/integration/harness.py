"""Helpers for the MPI integration tests: run the real `seedgrid` binary (which starts itself
under mpirun), find its processes by MPI rank, read the registry and the HDF5 files."""
import json
import os
import signal
import sqlite3
import subprocess
import tempfile
import textwrap
import time
import unittest

SEEDGRID = os.environ.get("SEEDGRID_BIN", "seedgrid")


class SweepTest(unittest.TestCase):
    def setUp(self):
        self._tmp = tempfile.TemporaryDirectory(prefix="seedgrid-it-")
        self.dir = self._tmp.name
        self.env = dict(os.environ)
        self.env.update(OMPI_ALLOW_RUN_AS_ROOT="1", OMPI_ALLOW_RUN_AS_ROOT_CONFIRM="1",
                        SEEDGRID_PROGRESS="plain", SEEDGRID_PROGRESS_INTERVAL="1")

    def tearDown(self):
        self._tmp.cleanup()

    # ---- files ----
    def spec(self, name, text):
        path = os.path.join(self.dir, name)
        with open(path, "w") as f:
            f.write(textwrap.dedent(text))
        return path

    @property
    def registry(self):
        return os.path.join(self.dir, "runs", "registry.sqlite")

    # ---- processes ----
    def run_seedgrid(self, *args, timeout=240, check=None):
        p = subprocess.run([SEEDGRID, *args], cwd=self.dir, env=self.env, capture_output=True,
                           text=True, timeout=timeout)
        if check is not None:
            self.assertEqual(p.returncode, check, f"stdout:\n{p.stdout}\nstderr:\n{p.stderr}")
        return p

    def start_seedgrid(self, *args):
        return subprocess.Popen([SEEDGRID, *args], cwd=self.dir, env=self.env,
                                stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                                start_new_session=True)

    def wait_for(self, predicate, timeout=60, what="condition"):
        end = time.time() + timeout
        while time.time() < end:
            if predicate():
                return
            time.sleep(0.1)
        self.fail(f"timed out waiting for {what}")

    # ---- registry ----
    def query(self, sql, *params):
        if not os.path.exists(self.registry):
            return []
        try:
            con = sqlite3.connect(f"file:{self.registry}?mode=ro", uri=True, timeout=10)
        except sqlite3.OperationalError:
            return []
        try:
            return con.execute(sql, params).fetchall()
        except sqlite3.OperationalError as e:
            if "no such table" in str(e):
                return []
            raise
        finally:
            con.close()

    def statuses(self, sweep):
        return dict(self.query("select id, status from shards where sweep=?", sweep))

    def count_done(self, sweep):
        rows = self.query("select count(*) from shards where sweep=? and status='done'", sweep)
        return rows[0][0] if rows else 0

    def attempts(self, sweep):
        return self.query("select a.shard, a.n, a.outcome, a.signal, a.exit_code, a.error from attempts a "
                          "join shards s on s.id=a.shard where s.sweep=? order by a.shard, a.n", sweep)

    def snapshot(self, sweep):
        """What must be identical between an interrupted-then-resumed and a clean run."""
        shards = self.query("select id, stage, kind, seed, params, axes, status from shards "
                            "where sweep=? order by id", sweep)
        metrics = self.query("select m.shard, m.name, m.value from metrics m join shards s on "
                             "s.id=m.shard where s.sweep=? order by m.shard, m.name", sweep)
        return shards, metrics


def processes_in(cwd):
    """(pid, argv) of every process whose working directory is `cwd`."""
    out = []
    for pid in os.listdir("/proc"):
        if not pid.isdigit():
            continue
        try:
            if os.path.realpath(os.readlink(f"/proc/{pid}/cwd")) != os.path.realpath(cwd):
                continue
            with open(f"/proc/{pid}/cmdline", "rb") as f:
                argv = f.read().split(b"\0")
            out.append((int(pid), argv))
        except (FileNotFoundError, ProcessLookupError, PermissionError, NotADirectoryError):
            continue
    return out


def mpirun_pids(cwd):
    """PIDs of Open MPI launchers working in `cwd`."""
    return [pid for pid, argv in processes_in(cwd)
            if argv[0].endswith((b"mpirun", b"orterun", b"orted", b"prterun"))]


def seedgrid_pids(cwd, rank=None, executor=False):
    """PIDs of seedgrid processes working in `cwd`: MPI rank `rank` (OMPI_COMM_WORLD_RANK) or
    executors."""
    out = []
    for pid, argv in processes_in(cwd):
        if not argv[0].endswith(b"seedgrid"):
            continue
        is_exec = len(argv) > 1 and argv[1] == b"exec"
        if executor or is_exec:
            if executor and is_exec:
                out.append(pid)
            continue
        try:
            with open(f"/proc/{pid}/environ", "rb") as f:
                env = dict(kv.split(b"=", 1) for kv in f.read().split(b"\0") if b"=" in kv)
        except (FileNotFoundError, ProcessLookupError, PermissionError):
            continue
        r = env.get(b"OMPI_COMM_WORLD_RANK")
        if r is not None and (rank is None or int(r) == rank):
            out.append(pid)
    return out


def h5_values(path, dataset):
    import h5py
    with h5py.File(path, "r") as f:
        return f[dataset][()].tolist()

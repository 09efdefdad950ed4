"""MPI integration tests of process lifetimes and exit codes under damage (issue 13, points
4-7): an executor and what its shard started die with their worker; a lost rank is exit code 3
with its rank and host, not a preemption; a memory limit counts what the shard adds, not the
executor's runtime; a launcher killed with SIGKILL leaves no exit file behind. Each test runs the
real `seedgrid` binary, which starts itself under mpirun."""
import os
import re
import signal
import socket
import time
import unittest

from harness import SweepTest, mpirun_pids, seedgrid_pids


def alive(pid):
    """The process exists and has not ended (a zombie has)."""
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().rsplit(")", 1)[1].split()[0] not in ("Z", "X")
    except (FileNotFoundError, ProcessLookupError, IndexError):
        return False


class ProcessTest(SweepTest):
    """Every test here kills processes on purpose: whatever of its launch is left is killed."""

    def leftovers(self):
        pids = seedgrid_pids(self.dir) + seedgrid_pids(self.dir, executor=True) + mpirun_pids(self.dir)
        return [p for p in pids if alive(p)]

    def tearDown(self):
        for pid in self.leftovers():
            try:
                os.kill(pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
        super().tearDown()

    def wait_until_gone(self, pids, timeout, what):
        try:
            self.wait_for(lambda: not any(alive(p) for p in pids), timeout=timeout, what=what)
        except AssertionError:
            self.fail(f"{what}: still running after {timeout} s: {[p for p in pids if alive(p)]}")

    def running_shards(self):
        rows = self.query("select count(*) from shards where status='running'")
        return rows[0][0] if rows else 0


class ExecutorLifetime(ProcessTest):
    """Point 4: a hung shard's executor, and the process the shard forked, die with the worker."""

    HUNG = """
        name: hung
        kind: chaos
        params: {mode: hang, fork_child: true}
        resources: {max_attempts: 1}
    """

    def start_hung_shard(self):
        proc = self.start_seedgrid("run", self.spec("hung.yaml", self.HUNG), "--workers", "1")
        # The executor and the child the shard forked: both are `seedgrid exec` in self.dir.
        self.wait_for(lambda: len(seedgrid_pids(self.dir, executor=True)) >= 2, timeout=60,
                      what="the hung shard's executor and its child")
        execs = seedgrid_pids(self.dir, executor=True)
        self.assertTrue(all(alive(p) for p in execs))
        return proc, execs

    def test_executor_and_the_shards_child_die_with_a_killed_worker(self):
        proc, execs = self.start_hung_shard()
        worker, = seedgrid_pids(self.dir, rank=1)
        os.kill(worker, signal.SIGKILL)
        self.wait_until_gone(execs, 10, "the executor and the shard's child after kill -9 of their worker")
        proc.communicate(timeout=60)

    def test_executor_and_the_shards_child_die_with_a_killed_mpirun(self):
        proc, execs = self.start_hung_shard()
        mpirun = [p for p in mpirun_pids(self.dir) if alive(p)]
        self.assertEqual(len(mpirun), 1, mpirun)
        os.kill(mpirun[0], signal.SIGKILL)
        self.wait_until_gone(execs, 20, "the executor and the shard's child after kill -9 of mpirun")
        proc.communicate(timeout=60)


class LostRank(ProcessTest):
    """Point 5: a rank killed with SIGKILL is a lost rank, exit code 3 naming it, every time;
    its shards in flight are not charged, and a resume completes."""

    SPEC = """
        name: lost
        kind: chaos
        seeds: 12
        params: {sleep_ms: 600}
        resources: {max_attempts: 1}
    """

    def kill_rank_during_the_sweep(self, spec, rank):
        proc = self.start_seedgrid("run", spec, "--workers", "2")
        self.wait_for(lambda: self.running_shards() > 0 and seedgrid_pids(self.dir, rank=rank),
                      timeout=60, what="a shard running")
        os.kill(seedgrid_pids(self.dir, rank=rank)[0], signal.SIGKILL)
        out, _ = proc.communicate(timeout=60)
        return proc.returncode, out

    def test_kill9_worker_exits_3_naming_the_rank_and_host_then_resume_completes(self):
        spec = self.spec("lost.yaml", self.SPEC)
        host = re.escape(socket.gethostname())
        for rank in (1, 2, 1):  # the same answer every time
            code, out = self.kill_rank_during_the_sweep(spec, rank)
            self.assertEqual(code, 3, out)
            self.assertRegex(out, rf"lost worker rank {rank} on host {host} \(pid \d+\)")
            self.assertNotIn("preempted by signal", out)
            self.wait_for(lambda: not self.leftovers(), timeout=20, what="the launch's processes to end")
        p = self.run_seedgrid("run", spec, "--workers", "2", check=0)
        self.assertEqual(self.count_done("lost"), 12, p.stdout)
        # Killed ranks charged nothing: every shard's only charged attempt is its successful one.
        self.assertEqual(self.query("select max(attempts) from shards")[0][0], 1)

    def test_kill9_coordinator_exits_3_naming_rank_0(self):
        code, out = self.kill_rank_during_the_sweep(self.spec("lost.yaml", self.SPEC), 0)
        self.assertEqual(code, 3, out)
        self.assertRegex(out, rf"lost rank 0 \(the coordinator\) on host {re.escape(socket.gethostname())}")

    def test_preemption_of_the_launcher_still_exits_4(self):
        spec = self.spec("lost.yaml", self.SPEC)
        proc = self.start_seedgrid("run", spec, "--workers", "2")
        self.wait_for(lambda: self.running_shards() > 0, timeout=60, what="a shard running")
        proc.send_signal(signal.SIGTERM)
        out, _ = proc.communicate(timeout=60)
        self.assertEqual(proc.returncode, 4, out)
        self.assertNotRegex(out, r"lost (worker )?rank")


class MemoryLimit(ProcessTest):
    """Point 6: `memory` limits what the shard adds above the executor's own resident set."""

    def test_a_limit_below_the_runtime_passes_an_idle_shard_and_stops_a_hungry_one(self):
        spec = self.spec("mem.yaml", """
            name: mem
            stages:
              - name: idle
                kind: chaos
                seeds: 2
                params: {sleep_ms: 300}
                resources: {memory: 32M, max_attempts: 1}
              - name: hungry
                kind: chaos
                params: {mode: allocate, allocate_mb: 300, hold_ms: 3000}
                resources: {memory: 32M, max_attempts: 1}
        """)
        p = self.run_seedgrid("run", spec, "--workers", "1", check=3)
        st = dict(self.query("select stage || ':' || seed, status from shards"))
        self.assertEqual(st, {"idle:0": "done", "idle:1": "done", "hungry:0": "failed"}, p.stdout + p.stderr)
        (outcome, error), = self.query(
            "select a.outcome, a.error from attempts a join shards s on s.id=a.shard "
            "where s.stage='hungry'")
        self.assertEqual(outcome, "memory")
        self.assertIn("memory limit exceeded", error)
        m = re.search(r"by (\d+) MiB \(from (\d+) to (\d+) MiB\), limit 32 MiB", error)
        self.assertTrue(m, error)
        grew, baseline, rss = map(int, m.groups())
        self.assertGreaterEqual(grew, 32)  # MiB, rounded down: the limit is checked in KiB
        # The executor's own resident set is above the limit: a limit on the total would have
        # failed the idle shards too.
        self.assertGreater(baseline, 32, error)


class LaunchRecord(ProcessTest):
    """Point 7: `seedgrid run` killed with SIGKILL leaves neither an exit file nor a job."""

    def test_launcher_killed_with_sigkill_leaves_no_exit_file_and_no_process(self):
        spec = self.spec("slow.yaml", """
            name: slow
            kind: chaos
            seeds: 4
            params: {sleep_ms: 3000}
        """)
        proc = self.start_seedgrid("run", spec, "--workers", "1")
        self.wait_for(lambda: self.running_shards() > 0, timeout=60, what="a shard running")
        rank0, = seedgrid_pids(self.dir, rank=0)
        with open(f"/proc/{rank0}/environ", "rb") as f:
            env = dict(kv.split(b"=", 1) for kv in f.read().split(b"\0") if b"=" in kv)
        exit_file = env[b"SEEDGRID_EXIT_FILE"].decode()
        os.kill(proc.pid, signal.SIGKILL)
        proc.communicate(timeout=60)  # EOF: every process that held its output has ended
        self.wait_for(lambda: not self.leftovers(), timeout=20, what="the job to end with its launcher")
        self.assertFalse(os.path.exists(exit_file), f"{exit_file} left behind")

if __name__ == "__main__":
    unittest.main()

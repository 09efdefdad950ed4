"""MPI integration tests of `kind: command`'s process guard (issue 15, point 4, for gangs as
for single-rank commands): the memory limit covers each gang rank's process tree, and kill -9 of
a worker leaves no process of the command behind, children that left the command's process
group (setsid) included. Real Python scripts, the real `seedgrid` binary under real mpirun.

Every command process here carries a marker in its argv, so "nothing is left" is checked twice:
by the pids the script wrote and by a scan of /proc for the marker (which also finds the
command's guard process, seedgrid-guard, whose argv ends with the command's: it must be gone
too)."""
import os
import signal
import time

from harness import seedgrid_pids
from test_command import cmd_spec, read_text, script
from test_processes import ProcessTest, alive

# Forks a child that stays in the command's process group and one that leaves it (setsid),
# both sleeping with the marker in their argv, writes "<own pid> <child> <setsid child>" to
# <name><RANK>.pids and then sleeps (or exits at once with "exit").
FORKS = """
    import os, subprocess, sys, time
    marker, name = sys.argv[1], sys.argv[2] + os.environ.get("RANK", "")
    sleeper = [sys.executable, "-c", "import time; time.sleep(300)", marker]
    child = subprocess.Popen(sleeper)
    escaped = subprocess.Popen(sleeper, start_new_session=True)
    with open(name + ".pids.tmp", "w") as f:
        f.write(f"{os.getpid()} {child.pid} {escaped.pid}")
    os.replace(name + ".pids.tmp", name + ".pids")
    if sys.argv[3] != "exit":
        time.sleep(300)
"""


def marked(marker, guards=True):
    """PIDs of the live processes whose argv holds `marker`: the command's, and its guard's
    (`seedgrid-guard ... -- <command>`) unless `guards` is false."""
    out = []
    for pid in os.listdir("/proc"):
        if not pid.isdigit():
            continue
        try:
            with open(f"/proc/{pid}/cmdline", "rb") as f:
                argv = f.read().split(b"\0")
            if not guards and argv[0].endswith(b"seedgrid-guard"):
                continue
            if marker.encode() in argv and alive(int(pid)):
                out.append(int(pid))
        except (FileNotFoundError, ProcessLookupError, PermissionError):
            continue
    return out


class CommandGuard(ProcessTest):
    def setUp(self):
        super().setUp()
        self.marker = "seedgrid-guard-test-" + os.path.basename(self.dir)

    def tearDown(self):
        for pid in marked(self.marker):  # a failed test's leftovers
            try:
                os.kill(pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
        super().tearDown()

    def pids(self, name):
        path = os.path.join(self.dir, name + ".pids")
        return [int(p) for p in read_text(path).split()] if os.path.exists(path) else []

    def assert_nothing_left(self, pids, what):
        # The commands die at once; their guards exit after reaping the last child, and under a
        # loaded machine (or a gang rank handed SIGTERM and its grace by the launch's teardown)
        # that can take seconds: poll for the guards too rather than look once.
        self.wait_until_gone(pids, 30, what)
        try:
            self.wait_for(lambda: marked(self.marker) == [], timeout=30, what=what)
        except AssertionError:
            self.assertEqual(marked(self.marker), [], what)

    def kill9_worker_while_running(self, spec, names):
        """Runs `spec` (FORKS, writing <name>.pids for each of `names`), kills worker rank 1
        with SIGKILL once every command has forked, and checks that no command process is left.
        Returns the launch's exit code and output."""
        proc = self.start_seedgrid("run", spec, "--workers", str(len(names)))
        self.wait_for(lambda: all(len(self.pids(n)) == 3 for n in names), timeout=60,
                      what="the commands' pids")
        pids = [p for n in names for p in self.pids(n)]
        self.assertTrue(all(alive(p) for p in pids))
        # Each command and its two children (not their guards, whose argv ends with the command's).
        self.assertEqual(len(marked(self.marker, guards=False)), len(pids))
        worker, = seedgrid_pids(self.dir, rank=1)
        os.kill(worker, signal.SIGKILL)
        self.assert_nothing_left(pids, "the commands and their children after kill -9 of a worker")
        out, _ = proc.communicate(timeout=60)
        return proc.returncode, out

    def test_kill9_of_the_worker_leaves_no_command_process_setsid_included(self):
        script(self, "forks.py", FORKS)
        spec = cmd_spec(self, "single.yaml", f"""
            name: single
            kind: command
            params: {{argv: [python3, forks.py, {self.marker}, single, sleep]}}
            resources: {{max_attempts: 1}}
        """)
        self.kill9_worker_while_running(spec, ["single"])

    def test_a_setsid_child_that_outlives_the_command_is_killed_when_it_ends(self):
        script(self, "forks.py", FORKS)
        spec = cmd_spec(self, "ends.yaml", f"""
            name: ends
            kind: command
            params: {{argv: [python3, forks.py, {self.marker}, ends, exit]}}
        """)
        self.run_seedgrid("run", spec, "--workers", "1", timeout=120, check=0)
        self.assertEqual(self.count_done("ends"), 1)
        pids = self.pids("ends")
        self.assertEqual(len(pids), 3)
        self.assert_nothing_left(pids, "the children the command left")

    def test_kill9_of_a_gang_worker_leaves_no_command_process_on_any_rank(self):
        script(self, "forks.py", FORKS)
        spec = cmd_spec(self, "gang.yaml", f"""
            name: gang
            kind: command
            params: {{argv: [python3, forks.py, {self.marker}, rank, sleep]}}
            resources: {{ranks: 2, max_attempts: 1, timeout: 300s}}
        """)
        code, out = self.kill9_worker_while_running(spec, ["rank0", "rank1"])
        self.assertEqual(code, 3, out)  # a lost rank

    def test_a_gang_rank_over_the_memory_limit_fails_the_gang_as_memory(self):
        # Rank 1's child holds the memory (the rank's worker and the command itself do not
        # grow); rank 0 is well within the limit and would run on for 40 s.
        script(self, "hungry.py", """
            import os, subprocess, sys, time
            open("rank" + os.environ["RANK"] + ".pid", "w").write(str(os.getpid()))
            if os.environ["RANK"] == "1":
                subprocess.run([sys.executable, "-c",
                                "import time; b = b'x' * (400 << 20); time.sleep(40)"])
            else:
                time.sleep(40)
        """)
        spec = cmd_spec(self, "hungry.yaml", """
            name: hungry
            kind: command
            params: {argv: [python3, hungry.py]}
            resources: {ranks: 2, memory: 200M, max_attempts: 1, timeout: 300s}
        """)
        start = time.time()
        p = self.run_seedgrid("run", spec, "--workers", "2", timeout=120, check=3)
        self.assertLess(time.time() - start, 35, p.stdout)  # stopped, not left to run its 40 s
        (att,) = self.attempts("hungry")
        self.assertEqual(att[2], "memory", att)
        self.assertIn("memory limit exceeded: the command's processes hold", att[5])
        self.assertIn("limit 200 MiB", att[5])
        for rank in ("rank0", "rank1"):
            self.assertFalse(alive(int(read_text(os.path.join(self.dir, rank + ".pid")))), rank)

    def run_gang(self, name, resources, check):
        """Runs <name>.py as the 2-rank gang stage <name> with `resources`, checks that the
        coordinator took no rank for stuck (which aborts the launch) and returns the attempts."""
        spec = cmd_spec(self, name + ".yaml", f"""
            name: {name}
            kind: command
            params: {{argv: [python3, {name}.py]}}
            resources: {{ranks: 2, {resources}}}
        """)
        p = self.run_seedgrid("run", spec, "--workers", "2", timeout=120, check=check)
        self.assertNotIn("stuck in a shard past its timeout", p.stdout + p.stderr)
        return self.attempts(name)

    def test_a_gang_past_its_timeout_gets_sigterm_and_is_retried(self):
        # Attempt 1 hangs: each rank's SIGTERM handler writes term<RANK>.<attempt> and exits.
        # Attempt 2 ends at once. Each rank, not the coordinator, must stop its command (the
        # coordinator's own deadline, at 6 s + 5 s, would retire both ranks and abort). 6 s:
        # time for Python to start and install its handler on a loaded machine.
        script(self, "hang.py", """
            import os, signal, sys, time
            rank, attempt = os.environ["RANK"], os.environ["SEEDGRID_ATTEMPT"]
            def on_term(*_):
                open(f"term{rank}.{attempt}", "w").write("x")
                sys.exit(0)
            signal.signal(signal.SIGTERM, on_term)
            if attempt == "1":
                time.sleep(120)
        """)
        first, second = self.run_gang("hang", "timeout: 6s, grace: 3s, max_attempts: 2", check=0)
        self.assertEqual((first[1], first[2]), (1, "timeout"), first)
        self.assertIn("command timeout after 6 s (SIGTERM, 3 s grace)", first[5])
        self.assertNotIn("cannot be stopped alone", first[5])
        self.assertEqual((second[1], second[2]), (2, "ok"), second)
        for rank in ("0", "1"):  # SIGTERM reached both ranks' commands in attempt 1 only
            self.assertTrue(os.path.exists(os.path.join(self.dir, f"term{rank}.1")), rank)
            self.assertFalse(os.path.exists(os.path.join(self.dir, f"term{rank}.2")), rank)

    def test_a_gang_ignoring_sigterm_is_killed_after_its_grace(self):
        # The handler notes the SIGTERM and returns: the script sleeps on until SIGKILL.
        script(self, "deaf.py", f"""
            import os, signal, sys, time
            rank = os.environ["RANK"]
            open(f"rank{{rank}}.pid", "w").write(str(os.getpid()))
            signal.signal(signal.SIGTERM, lambda *_: open(f"term{{rank}}", "w").write("x"))
            time.sleep(120)
        """)
        (att,) = self.run_gang("deaf", "timeout: 6s, grace: 1s, max_attempts: 1", check=3)
        self.assertEqual(att[2], "timeout", att)
        self.assertIn("command timeout after 6 s (SIGTERM, 1 s grace)", att[5])
        self.assertIn("killed by signal 9 (SIGKILL)", att[5])
        for rank in ("0", "1"):
            self.assertTrue(os.path.exists(os.path.join(self.dir, "term" + rank)), rank)
            self.assertFalse(alive(int(read_text(os.path.join(self.dir, f"rank{rank}.pid")))))

    def test_a_preempted_gang_gets_sigterm_and_its_grace_and_is_not_charged(self):
        # Each rank's SIGTERM handler writes term<RANK> and exits; the next launch finds both
        # markers and ends at once. The gang's workers must see the coordinator's Shutdown
        # while their commands run (else the launch waits for the 120 s sleep).
        script(self, "long.py", """
            import os, signal, sys, time
            rank = os.environ["RANK"]
            if os.path.exists("term0") and os.path.exists("term1"):
                sys.exit(0)
            def on_term(*_):
                time.sleep(0.5)  # a slow save, well inside the grace
                open(f"term{rank}", "w").write("x")
                sys.exit(0)
            signal.signal(signal.SIGTERM, on_term)
            open(f"rank{rank}.pid", "w").write(str(os.getpid()))
            time.sleep(120)
        """)
        spec = cmd_spec(self, "long.yaml", f"""
            name: long
            kind: command
            params: {{argv: [python3, long.py, {self.marker}]}}
            resources: {{ranks: 2, grace: 10s, timeout: 300s}}
        """)
        proc = self.start_seedgrid("run", spec, "--workers", "2")
        pid_files = [os.path.join(self.dir, f"rank{r}.pid") for r in (0, 1)]
        self.wait_for(lambda: all(os.path.exists(p) for p in pid_files), timeout=60,
                      what="both ranks' commands")
        start = time.time()
        proc.send_signal(signal.SIGTERM)
        out, _ = proc.communicate(timeout=60)
        self.assertEqual(proc.returncode, 4, out)
        self.assertLess(time.time() - start, 30, out)
        for rank in ("0", "1"):
            self.assertTrue(os.path.exists(os.path.join(self.dir, "term" + rank)), out)
        self.assert_nothing_left([int(read_text(p)) for p in pid_files], "the preempted gang")
        self.run_seedgrid("run", spec, "--workers", "2", timeout=120, check=0)
        self.assertEqual(self.query("select status, attempts from shards where sweep='long'"),
                         [("done", 1)])


if __name__ == "__main__":
    import unittest
    unittest.main()

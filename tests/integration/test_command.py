"""MPI integration tests of `kind: command` (issue 15, points 1, 2, 4 and 5): real Python
scripts run by the real `seedgrid` binary under real mpirun. Scripts that log metrics and save
arrays, one that fails, one killed by a signal, one that hangs past its timeout, one that
ignores SIGTERM, one that leaves a child behind, a preempted command resuming from its
checkpoint dir, an edited script changing the shard id, and a torch.distributed (gloo) gang."""
import glob
import json
import os
import signal
import sys
import textwrap
import time
import unittest

from harness import SweepTest, h5_values, seedgrid_pids
from test_processes import ProcessTest, alive


def script(test, name, body):
    path = os.path.join(test.dir, name)
    with open(path, "w") as f:
        f.write(textwrap.dedent(body))
    return path


def cmd_spec(test, name, text):
    """A spec whose `python3` is the interpreter running the tests (the one with numpy, h5py and
    torch: under ctest, /usr/bin/python3), not whatever `python3` PATH finds first."""
    return test.spec(name, text.replace("python3", sys.executable))


def read_pid(path):
    with open(path) as f:
        return int(f.read().strip())


def read_text(path):
    with open(path) as f:
        return f.read()


class CommandResults(SweepTest):
    """Point 2: metrics.json / metrics.jsonl, *.h5 and other files, published with the shard."""

    def test_metrics_curves_arrays_and_files_are_published(self):
        script(self, "train.py", """
            import json, os, sys
            import h5py, numpy as np
            out = os.environ["SEEDGRID_OUT"]
            params = json.load(open(os.environ["SEEDGRID_PARAMS"]))
            lr, seed = float(sys.argv[2]), int(sys.argv[4])
            assert params["lr"] == lr and int(os.environ["SEEDGRID_SEED"]) == seed
            assert os.environ["SEEDGRID_ATTEMPT"] == "1"
            assert os.path.isdir(os.environ["SEEDGRID_CHECKPOINT_DIR"])
            assert os.environ["TOKENIZERS_PARALLELISM"] == "false"
            assert os.getcwd() == os.path.dirname(os.path.abspath(__file__))
            with open(os.path.join(out, "metrics.jsonl"), "w") as f:
                for step in range(5):
                    f.write(json.dumps({"name": "loss", "value": lr * (5 - step), "step": step}) + "\\n")
            json.dump({"final_loss": lr, "seed_echo": seed}, open(os.path.join(out, "metrics.json"), "w"))
            with h5py.File(os.path.join(out, "arrays.h5"), "w") as f:
                f["weights"] = np.arange(6, dtype=np.float32).reshape(2, 3) * seed
            open(os.path.join(out, "notes.txt"), "w").write(os.environ["SEEDGRID_SHARD_ID"])
            print("stdout line", flush=True)
        """)
        spec = cmd_spec(self, "cmd.yaml", """
            name: cmd
            kind: command
            seeds: [1, 2]
            grid: {lr: [0.5, 0.25]}
            params:
              argv: [python3, train.py, --lr, "{lr}", --seed, "{seed}"]
              env: {TOKENIZERS_PARALLELISM: "false"}
              code: [train.py]
        """)
        self.run_seedgrid("run", spec, "--workers", "2", check=0)
        self.assertEqual(self.count_done("cmd"), 4)
        rows = self.query("select s.id, s.seed, json_extract(s.params, '$.lr'), m.name, m.value "
                          "from shards s join metrics m on m.shard = s.id where s.sweep = 'cmd'")
        by = {}
        for sid, seed, lr, name, value in rows:
            by.setdefault(sid, {"seed": seed, "lr": lr})[name] = value
        self.assertEqual(len(by), 4)
        for sid, m in by.items():
            self.assertEqual(m["final_loss"], m["lr"])
            self.assertEqual(m["seed_echo"], m["seed"])
            self.assertEqual(m["loss"], m["lr"])  # the last logged value
            h5 = os.path.join(self.dir, "runs", "cmd", "cmd", f"{sid}.h5")
            self.assertEqual(h5_values(h5, "weights"), [[0.0, m["seed"], 2.0 * m["seed"]],
                                                        [3.0 * m["seed"], 4.0 * m["seed"], 5.0 * m["seed"]]])
            self.assertEqual(h5_values(h5, "curves/loss/step"), [0, 1, 2, 3, 4])
            self.assertEqual(h5_values(h5, "curves/loss/value")[0], 5 * m["lr"])
            files = os.path.join(self.dir, "runs", "cmd", "cmd", f"{sid}.files")
            with open(os.path.join(files, "notes.txt")) as f:
                self.assertEqual(f.read(), sid)
            self.assertFalse(os.path.exists(os.path.join(files, "arrays.h5")))  # now in the shard's HDF5
            self.assertFalse(os.path.exists(os.path.join(self.dir, "runs", "cmd", "cmd", f"{sid}.checkpoint")))
        # No scratch dir or params file is left behind.
        self.assertEqual(glob.glob(os.path.join(self.dir, "runs", "cmd", "cmd", "*.scratch-*")), [])
        # results.h5 reaches the arrays through its links.
        import h5py
        with h5py.File(os.path.join(self.dir, "runs", "cmd", "results.h5"), "r") as f:
            self.assertEqual(len(f["cmd"]), 4)
            for sid in by:
                self.assertEqual(f["cmd"][sid]["weights"].shape, (2, 3))
        # The report draws the logged curves (figure metric_curves), a line per lr.
        self.run_seedgrid("report", "cmd", "--registry", self.registry, check=0)
        dat = os.path.join(self.dir, "runs", "cmd", "report", "figures", "cmd-metric_curves.dat")
        self.assertIn("lr=0.5", read_text(dat))
        self.assertIn("lr=0.25", read_text(dat))
        sid = next(iter(by))
        show = self.run_seedgrid("show", sid, "--registry", self.registry, check=0)
        self.assertIn(f"artifact cmd/cmd/{sid}.h5", show.stdout)
        self.assertRegex(show.stdout, r"final_loss\s+0\.5|final_loss\s+0\.25")

    def test_an_unknown_placeholder_exits_2_with_file_and_line(self):
        spec = cmd_spec(self, "bad.yaml", """
            name: bad
            kind: command
            params:
              argv: [python3, train.py, --lr, "{lrr}"]
        """)
        p = self.run_seedgrid("run", spec, "--workers", "1", check=2)
        self.assertIn(f"{spec}:5:", p.stderr + p.stdout)
        self.assertIn("unknown placeholder '{lrr}'", p.stderr + p.stdout)

    def test_a_need_s_files_reach_the_next_stage(self):
        script(self, "make.py", """
            import os
            open(os.path.join(os.environ["SEEDGRID_OUT"], "data.txt"), "w").write("41")
        """)
        script(self, "use.py", """
            import json, os, sys
            inputs = json.load(open(os.environ["SEEDGRID_INPUTS"]))
            (base,) = inputs["base"]
            assert base["dir"] == sys.argv[1], (base, sys.argv)
            (path,) = base["files"]
            value = int(open(path).read()) + 1
            json.dump({"value": value}, open(os.path.join(os.environ["SEEDGRID_OUT"], "metrics.json"), "w"))
        """)
        spec = cmd_spec(self, "two.yaml", """
            name: two
            stages:
              - name: base
                kind: command
                params: {argv: [python3, make.py]}
              - name: use
                kind: command
                needs: base
                params: {argv: [python3, use.py, "{needs.base.dir}"]}
        """)
        self.run_seedgrid("run", spec, "--workers", "1", check=0)
        self.assertEqual(self.query("select m.value from metrics m join shards s on s.id = m.shard "
                                    "where s.stage = 'use' and m.name = 'value'"), [(42.0,)])


class CommandFailures(ProcessTest):
    """Points 2 and 4: exit codes, signals, timeouts, SIGTERM ignored, children left behind."""

    def test_exit_code_and_last_stderr_lines_become_the_error(self):
        script(self, "fail.py", """
            import sys
            print("loading data", file=sys.stderr)
            print("ValueError: lr must be positive", file=sys.stderr)
            sys.exit(3)
        """)
        script(self, "abort.py", """
            import os
            os.abort()
        """)
        spec = cmd_spec(self, "fail.yaml", """
            name: fail
            kind: command
            zip: {script: [fail.py, abort.py]}
            params: {argv: [python3, "{script}"]}
            resources: {max_attempts: 2}
        """)
        self.run_seedgrid("run", spec, "--workers", "1", check=3)
        errors = {}
        for shard, n, outcome, sig, code, error in self.attempts("fail"):
            name = self.query("select json_extract(params, '$.script') from shards where id=?", shard)[0][0]
            errors.setdefault(name, []).append((n, outcome, error))
        self.assertEqual([e[:2] for e in errors["fail.py"]], [(1, "error"), (2, "error")])
        self.assertIn("command exited with code 3", errors["fail.py"][0][2])
        self.assertIn("loading data | ValueError: lr must be positive", errors["fail.py"][0][2])
        self.assertIn("killed by signal 6 (SIGABRT)", errors["abort.py"][0][2])
        s = self.run_seedgrid("status", "fail", "--registry", self.registry, check=0)
        self.assertIn("lr must be positive", s.stdout)

    def test_a_hang_past_its_timeout_and_a_command_ignoring_sigterm_are_killed(self):
        script(self, "hang.py", """
            import os, signal, sys, time
            if sys.argv[1] == "ignore":
                signal.signal(signal.SIGTERM, signal.SIG_IGN)
            else:
                def on_term(*_):
                    open(os.path.join(os.environ["SEEDGRID_CHECKPOINT_DIR"], "saved"), "w").write("x")
                    sys.exit(0)
                signal.signal(signal.SIGTERM, on_term)
            open(sys.argv[1] + ".pid", "w").write(str(os.getpid()))
            while True:
                time.sleep(1)
        """)
        spec = cmd_spec(self, "hang.yaml", """
            name: hang
            kind: command
            zip: {how: [polite, ignore]}
            params: {argv: [python3, hang.py, "{how}"]}
            resources: {timeout: 2s, max_attempts: 1}
        """)
        start = time.time()
        self.run_seedgrid("run", spec, "--workers", "1", timeout=120, check=3)
        outcomes = [(a[2], a[5]) for a in self.attempts("hang")]
        self.assertEqual(sorted(o for o, _ in outcomes), ["timeout", "timeout"], outcomes)
        for _, error in outcomes:
            self.assertIn("timeout after", error)
        for how in ("polite", "ignore"):
            self.assertFalse(alive(read_pid(os.path.join(self.dir, how + ".pid"))), how)
        # The polite one had its grace: its SIGTERM handler saved to the checkpoint dir.
        saved = glob.glob(os.path.join(self.dir, "runs", "hang", "hang", "*.checkpoint", "saved"))
        self.assertEqual(len(saved), 1, saved)
        self.assertLess(time.time() - start, 60)

    def test_the_memory_limit_covers_the_command_s_children(self):
        script(self, "hungry.py", """
            import subprocess, sys, time
            # The child holds the memory: the executor's own RSS does not grow at all.
            subprocess.run([sys.executable, "-c",
                            "import time; b = b'x' * (400 << 20); time.sleep(30)"])
        """)
        spec = cmd_spec(self, "hungry.yaml", """
            name: hungry
            kind: command
            params: {argv: [python3, hungry.py]}
            resources: {memory: 200M, max_attempts: 1}
        """)
        start = time.time()
        self.run_seedgrid("run", spec, "--workers", "1", timeout=120, check=3)
        (att,) = self.attempts("hungry")
        self.assertEqual(att[2], "memory", att)
        self.assertIn("memory limit exceeded", att[5])
        self.assertLess(time.time() - start, 25)

    def test_a_child_that_outlives_the_command_is_killed_when_it_ends(self):
        script(self, "forks.py", """
            import subprocess
            child = subprocess.Popen(["sleep", "300"])
            open("child.pid", "w").write(str(child.pid))
        """)
        spec = cmd_spec(self, "forks.yaml", """
            name: forks
            kind: command
            params: {argv: [python3, forks.py]}
        """)
        self.run_seedgrid("run", spec, "--workers", "1", check=0)
        self.assertFalse(alive(read_pid(os.path.join(self.dir, "child.pid"))))

    def test_kill9_of_the_worker_leaves_no_command_process(self):
        script(self, "tree.py", """
            import os, subprocess, time
            child = subprocess.Popen(["sleep", "300"])
            open("tree.pid", "w").write(f"{os.getpid()} {child.pid}")
            time.sleep(300)
        """)
        spec = cmd_spec(self, "tree.yaml", """
            name: tree
            kind: command
            params: {argv: [python3, tree.py]}
            resources: {max_attempts: 1}
        """)
        proc = self.start_seedgrid("run", spec, "--workers", "1")
        pid_file = os.path.join(self.dir, "tree.pid")
        self.wait_for(lambda: os.path.exists(pid_file) and len(read_text(pid_file).split()) == 2,
                      timeout=60, what="the command and its child")
        pids = [int(p) for p in read_text(pid_file).split()]
        self.assertTrue(all(alive(p) for p in pids))
        worker, = seedgrid_pids(self.dir, rank=1)
        os.kill(worker, signal.SIGKILL)
        self.wait_until_gone(pids, 10, "the command and its child after kill -9 of the worker")
        proc.communicate(timeout=60)


class CommandResume(ProcessTest):
    """Point 4: the checkpoint dir outlives attempts; a retry gets a fresh scratch dir; a
    preempted command is not charged and resumes."""

    COUNTER = """
        import json, os, sys, time
        ckpt = os.path.join(os.environ["SEEDGRID_CHECKPOINT_DIR"], "step")
        out = os.environ["SEEDGRID_OUT"]
        assert os.listdir(out) == [], os.listdir(out)  # fresh scratch dir every attempt
        open(os.path.join(out, "junk-" + os.environ["SEEDGRID_ATTEMPT"]), "w").write("x")
        start = int(open(ckpt).read()) if os.path.exists(ckpt) else 0
        for step in range(start, 10):
            with open(ckpt + ".tmp", "w") as f:
                f.write(str(step + 1))
            os.replace(ckpt + ".tmp", ckpt)
            if sys.argv[1] == "fail" and step == 4 and os.environ["SEEDGRID_ATTEMPT"] == "1":
                sys.exit(1)
            time.sleep(float(sys.argv[2]))
        json.dump({"resumed_from": start, "attempt": int(os.environ["SEEDGRID_ATTEMPT"])},
                  open(os.path.join(out, "metrics.json"), "w"))
    """

    def metrics(self, sweep):
        return dict(self.query("select m.name, m.value from metrics m join shards s on "
                               "s.id = m.shard where s.sweep = ?", sweep))

    def test_a_retry_resumes_from_the_checkpoint_dir_with_a_fresh_scratch_dir(self):
        script(self, "counter.py", self.COUNTER)
        spec = cmd_spec(self, "retry.yaml", """
            name: retry
            kind: command
            params: {argv: [python3, counter.py, fail, "0"]}
            resources: {max_attempts: 2}
        """)
        self.run_seedgrid("run", spec, "--workers", "1", check=0)
        self.assertEqual(self.metrics("retry"), {"resumed_from": 5.0, "attempt": 2.0})
        files = glob.glob(os.path.join(self.dir, "runs", "retry", "retry", "*.files", "*"))
        # Attempt 1's junk-1 went with its scratch dir; the metrics files are kept as written.
        self.assertEqual(sorted(os.path.basename(f) for f in files), ["junk-2", "metrics.json"])

    def test_a_preempted_command_is_not_charged_and_resumes_from_its_checkpoint(self):
        script(self, "counter.py", self.COUNTER)
        spec = cmd_spec(self, "pre.yaml", """
            name: pre
            kind: command
            params: {argv: [python3, counter.py, run, "0.5"]}
        """)
        proc = self.start_seedgrid("run", spec, "--workers", "1")
        ckpt = glob.glob
        self.wait_for(lambda: any(int(read_text(p) or 0) >= 3 for p in
                                  ckpt(os.path.join(self.dir, "runs", "pre", "pre", "*.checkpoint", "step"))),
                      timeout=60, what="three checkpointed steps")
        proc.send_signal(signal.SIGTERM)
        out, _ = proc.communicate(timeout=60)
        self.assertEqual(proc.returncode, 4, out)
        self.run_seedgrid("run", spec, "--workers", "1", check=0)
        m = self.metrics("pre")
        self.assertGreaterEqual(m["resumed_from"], 3)
        self.assertEqual(self.query("select status, attempts from shards where sweep='pre'"), [("done", 1)])


    def test_preemption_forwards_sigterm_and_the_command_saves_in_its_grace(self):
        # Saves only when told to stop: the checkpoint exists only if SIGTERM reached it and it
        # had the time to write before SIGKILL.
        script(self, "on_term.py", """
            import json, os, signal, sys, time
            ckpt = os.path.join(os.environ["SEEDGRID_CHECKPOINT_DIR"], "step")
            start = int(open(ckpt).read()) if os.path.exists(ckpt) else 0
            step = start
            def save(*_):
                time.sleep(0.5)  # a slow save, well inside the grace
                open(ckpt, "w").write(str(step))
                sys.exit(0)
            signal.signal(signal.SIGTERM, save)
            while step < 40:
                step += 1
                open("progress", "w").write(str(step))
                time.sleep(0.1)
            json.dump({"resumed_from": start}, open(os.path.join(os.environ["SEEDGRID_OUT"], "metrics.json"), "w"))
        """)
        spec = cmd_spec(self, "term.yaml", """
            name: term
            kind: command
            params: {argv: [python3, on_term.py]}
        """)
        proc = self.start_seedgrid("run", spec, "--workers", "1")
        progress = os.path.join(self.dir, "progress")
        self.wait_for(lambda: os.path.exists(progress) and int(read_text(progress) or 0) >= 5,
                      timeout=60, what="five steps")
        proc.send_signal(signal.SIGTERM)
        out, _ = proc.communicate(timeout=60)
        self.assertEqual(proc.returncode, 4, out)
        saved = glob.glob(os.path.join(self.dir, "runs", "term", "term", "*.checkpoint", "step"))
        self.assertEqual(len(saved), 1, out)
        self.assertGreaterEqual(int(read_text(saved[0])), 5)
        self.run_seedgrid("run", spec, "--workers", "1", check=0)
        self.assertGreaterEqual(self.metrics("term")["resumed_from"], 5)
        self.assertEqual(self.query("select status, attempts from shards where sweep='term'"), [("done", 1)])


class CommandCode(SweepTest):
    """Point 1: `code:` puts the script's content into the shard id."""

    def test_an_edited_script_is_recomputed_and_an_unchanged_one_is_not(self):
        body = """
            import json, os
            json.dump({{"version": {v}}}, open(os.path.join(os.environ["SEEDGRID_OUT"], "metrics.json"), "w"))
        """
        script(self, "v.py", body.format(v=1))
        spec = cmd_spec(self, "code.yaml", """
            name: code
            kind: command
            params: {argv: [python3, v.py], code: ["*.py"]}
        """)
        self.run_seedgrid("run", spec, "--workers", "1", check=0)
        first = self.query("select id from shards where sweep='code'")
        p = self.run_seedgrid("run", spec, "--workers", "1", check=0)
        self.assertEqual(self.query("select id from shards where sweep='code'"), first)
        script(self, "v.py", body.format(v=2))
        self.run_seedgrid("run", spec, "--workers", "1", check=0)
        ids = self.query("select id from shards where sweep='code' and status='done'")
        self.assertEqual(len(ids), 2)
        values = sorted(v for (v,) in self.query("select value from metrics where name='version'"))
        self.assertEqual(values, [1.0, 2.0])


@unittest.skipUnless(__import__("importlib").util.find_spec("torch"), "python3-torch is not installed")
class CommandGang(ProcessTest):
    """Point 5: `ranks: 2` runs an unchanged torch.distributed (gloo) script on two worker ranks."""

    DDP = """
        import json, os, sys
        import torch
        import torch.distributed as dist
        if sys.argv[1] == "fail" and os.environ["RANK"] == "1":
            sys.exit(5)
        dist.init_process_group("gloo")
        rank, world = dist.get_rank(), dist.get_world_size()
        assert rank == int(os.environ["RANK"]) and world == int(os.environ["WORLD_SIZE"]) == 2
        assert int(os.environ["LOCAL_WORLD_SIZE"]) == 2 and os.environ["LOCAL_RANK"] == str(rank)
        t = torch.tensor([float(rank + 1)])
        dist.all_reduce(t)
        assert t.item() == 3.0, t
        out = os.environ["SEEDGRID_OUT"]
        open(os.path.join(out, f"rank{rank}.txt"), "w").write(os.environ["MASTER_PORT"])
        if rank == 0:
            json.dump({"sum": t.item(), "world": world}, open(os.path.join(out, "metrics.json"), "w"))
        dist.destroy_process_group()
    """

    def test_a_gloo_gang_all_reduces_and_only_rank_0_publishes(self):
        script(self, "ddp.py", self.DDP)
        spec = cmd_spec(self, "ddp.yaml", """
            name: ddp
            kind: command
            params: {argv: [python3, ddp.py, ok]}
            resources: {ranks: 2, timeout: 120s}
        """)
        self.run_seedgrid("run", spec, "--workers", "2", timeout=300, check=0)
        m = dict(self.query("select name, value from metrics"))
        self.assertEqual(m, {"sum": 3.0, "world": 2.0})
        files = glob.glob(os.path.join(self.dir, "runs", "ddp", "ddp", "*.files", "*"))
        self.assertEqual(sorted(os.path.basename(f) for f in files), ["metrics.json", "rank0.txt"])

    def test_one_rank_failing_fails_and_stops_the_gang(self):
        script(self, "ddp.py", self.DDP)
        spec = cmd_spec(self, "ddp.yaml", """
            name: ddpfail
            kind: command
            params: {argv: [python3, ddp.py, fail]}
            resources: {ranks: 2, max_attempts: 1, timeout: 300s}
        """)
        start = time.time()
        self.run_seedgrid("run", spec, "--workers", "2", timeout=300, check=3)
        self.assertLess(time.time() - start, 60)  # stopped, not left to its 300 s timeout
        errors = " ".join(a[5] or "" for a in self.attempts("ddpfail"))
        self.assertIn("exited with code 5", errors)


if __name__ == "__main__":
    unittest.main()

"""Per-attempt logs (issue 15, point 6) under real mpirun: every attempt's stdout and stderr in
<out>/<sweep>/<stage>/<id>.logs/attempt-<n>.{out,err}, for executor and inline shards, read
back with `seedgrid logs`, pointed to by `status` and `show`."""
import os
import subprocess
import time
import unittest

from harness import SweepTest, SEEDGRID


class AttemptLogs(SweepTest):
    def shard_of(self, sweep, stage):
        rows = self.query("select id from shards where sweep=? and stage=?", sweep, stage)
        self.assertEqual(len(rows), 1, rows)
        return rows[0][0]

    def log_path(self, sweep, stage, shard, name):
        return os.path.join(self.dir, "runs", sweep, stage, shard + ".logs", name)

    def read(self, path):
        with open(path) as f:
            return f.read()

    def test_prints_and_failing_stderr_land_in_attempt_files(self):
        spec = self.spec("logs.yaml", """
            name: logs
            stages:
              - name: prints
                kind: chaos
                params: {stdout: "hello from the shard\\n", stderr: "a warning\\n"}
              - name: flaky
                kind: chaos
                params: {stdout: "trying\\n", stderr: "loading data\\nattempt failed badly\\n",
                         mode: exit, exit_code: 5, fail_until_attempt: 2}
                resources: {max_attempts: 2}
              - name: broken
                kind: chaos
                params: {stderr: "ValueError: lr must be positive\\n", mode: throw}
                resources: {max_attempts: 1}
              - name: inline
                kind: chaos
                params: {stdout: "inline says hi\\n", stderr: "inline complains\\n", mode: throw}
                resources: {isolation: inline, max_attempts: 1}
        """)
        self.run_seedgrid("run", spec, "--workers", "2", check=3)

        prints = self.shard_of("logs", "prints")
        self.assertEqual(self.read(self.log_path("logs", "prints", prints, "attempt-1.out")),
                         "hello from the shard\n")
        self.assertEqual(self.read(self.log_path("logs", "prints", prints, "attempt-1.err")),
                         "a warning\n")

        flaky = self.shard_of("logs", "flaky")
        for n in (1, 2):
            self.assertEqual(self.read(self.log_path("logs", "flaky", flaky, f"attempt-{n}.out")),
                             "trying\n")
            self.assertEqual(self.read(self.log_path("logs", "flaky", flaky, f"attempt-{n}.err")),
                             "loading data\nattempt failed badly\n")
        att = {row[1]: (row[2], row[5]) for row in self.attempts("logs") if row[0] == flaky}
        self.assertEqual(att[1][0], "crash")
        self.assertIn("exited with code 5", att[1][1])
        self.assertIn("attempt failed badly", att[1][1])  # the last stderr line
        self.assertEqual(att[2][0], "ok")

        broken = self.shard_of("logs", "broken")
        err = self.query("select error from shards where id=?", broken)[0][0]
        self.assertIn("last stderr: ValueError: lr must be positive", err)
        inline = self.shard_of("logs", "inline")
        self.assertEqual(self.read(self.log_path("logs", "inline", inline, "attempt-1.out")),
                         "inline says hi\n")
        self.assertEqual(self.read(self.log_path("logs", "inline", inline, "attempt-1.err")),
                         "inline complains\n")

        # seedgrid logs: stdout by default, --err, --attempt, latest attempt, id prefixes.
        reg = ("--registry", self.registry)
        p = self.run_seedgrid("logs", prints[:8], *reg, check=0)
        self.assertEqual(p.stdout, "hello from the shard\n")
        p = self.run_seedgrid("logs", prints, "--err", *reg, check=0)
        self.assertEqual(p.stdout, "a warning\n")
        p = self.run_seedgrid("logs", flaky, "--err", "--attempt", "1", *reg, check=0)
        self.assertEqual(p.stdout, "loading data\nattempt failed badly\n")
        p = self.run_seedgrid("logs", flaky, *reg, check=0)  # the latest: attempt 2
        self.assertEqual(p.stdout, "trying\n")
        p = self.run_seedgrid("logs", flaky, "--attempt", "3", *reg, check=2)
        self.assertIn("no attempt 3", p.stderr)
        p = self.run_seedgrid("logs", broken, *reg, check=2)  # it printed nothing to stdout
        self.assertIn("no stdout log", p.stderr)
        self.assertIn("attempt-1.out does not exist", p.stderr)
        p = self.run_seedgrid("logs", "ffffffffffff", *reg, check=2)
        self.assertIn("no shard matches", p.stderr)

        # status and show point to the failed shards' logs.
        s = self.run_seedgrid("status", "logs", *reg, check=0)
        self.assertIn(self.log_path("logs", "broken", broken, "attempt-1.err"), s.stdout)
        s = self.run_seedgrid("show", broken, *reg, check=0)
        self.assertIn(self.log_path("logs", "broken", broken, "attempt-1.err"), s.stdout)
        self.assertIn(f"seedgrid logs {broken}", s.stdout)

    def test_cap_from_the_environment_and_gang_ranks_logs(self):
        long_line = "x" * 200
        spec = self.spec("cap.yaml", f"""
            name: cap
            stages:
              - name: big
                kind: chaos
                params: {{stdout: "head line\\n{long_line}\\nlast line\\n"}}
              - name: gang
                kind: chaos
                params: {{stdout: "a gang rank speaks\\n"}}
                resources: {{ranks: 2}}
        """)
        self.env["SEEDGRID_LOG_CAP"] = "16"
        self.run_seedgrid("run", spec, "--workers", "2", check=0)
        big = self.shard_of("cap", "big")
        text = self.read(self.log_path("cap", "big", big, "attempt-1.out"))
        total = len("head line\n") + len(long_line) + 1 + len("last line\n")
        self.assertEqual(text, "head line\nxxxxxx\n"
                         f"[seedgrid: {total - 32} bytes cut here; this log keeps the first 16 "
                         "and the last 16]\nxxxxx\nlast line\n")
        gang = self.shard_of("cap", "gang")
        for name in ("attempt-1.out", "attempt-1.rank1.out"):
            self.assertEqual(self.read(self.log_path("cap", "gang", gang, name)),
                             "a gang rank speaks\n")

    def test_follow_prints_while_the_shard_runs_and_stops_at_its_end(self):
        spec = self.spec("follow.yaml", """
            name: follow
            kind: chaos
            params: {stdout: "started\\n", sleep_ms: 4000}
        """)
        run = self.start_seedgrid("run", spec, "--workers", "1")
        try:
            self.wait_for(lambda: self.query(
                "select count(*) from shards where sweep='follow' and status='running'")[0][0] == 1
                if self.query("select 1 from shards where sweep='follow'") else False,
                timeout=120, what="the shard to run")
            shard = self.shard_of("follow", "follow")
            t0 = time.monotonic()
            p = subprocess.run([SEEDGRID, "logs", shard, "--follow", "--registry", self.registry],
                               cwd=self.dir, env=self.env, capture_output=True, text=True,
                               timeout=120)
            self.assertEqual(p.returncode, 0, p.stderr)
            self.assertEqual(p.stdout, "started\n")
            # It returned when the attempt ended, not before: the shard had ~4 s to go.
            self.assertGreater(time.monotonic() - t0, 1.0)
            self.wait_for(lambda: self.statuses("follow")[shard] == "done", what="done")
        finally:
            out, _ = run.communicate(timeout=120)
        self.assertEqual(run.returncode, 0, out)


if __name__ == "__main__":
    unittest.main()

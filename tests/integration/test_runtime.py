"""MPI integration tests of the runtime core (issue: runtime core). Each test runs the real
`seedgrid` binary, which starts itself under mpirun with one coordinator and N workers."""
import os
import signal
import sqlite3
import time
import unittest

from harness import SweepTest, h5_values, seedgrid_pids


class FailureModes(SweepTest):
    def test_every_chaos_mode_is_recorded_with_its_reason(self):
        spec = self.spec("modes.yaml", """
            name: modes
            kind: chaos
            zip:
              mode: [ok, throw, exit, abort, segfault, hang, allocate]
            params: {allocate_mb: 900, hold_ms: 8000, exit_code: 7, message: "injected for the test"}
            resources: {timeout: 8s, max_attempts: 1, memory: 500M}
        """)
        p = self.run_seedgrid("run", spec, "--workers", "2", check=3)
        self.assertIn("6 shard(s) failed", p.stdout)
        rows = {}
        for shard, n, outcome, sig, code, error in self.attempts("modes"):
            mode = self.query("select json_extract(params, '$.mode') from shards where id=?", shard)[0][0]
            rows[mode] = (outcome, sig, code, error)
        self.assertEqual(rows["ok"][0], "ok")
        self.assertEqual(rows["throw"][0], "error")
        self.assertIn("injected for the test", rows["throw"][3])
        self.assertEqual(rows["exit"][:3], ("crash", 0, 7))
        self.assertIn("exited with code 7", rows["exit"][3])
        self.assertEqual(rows["abort"][:2], ("crash", signal.SIGABRT))
        self.assertIn("SIGABRT", rows["abort"][3])
        self.assertEqual(rows["segfault"][:2], ("crash", signal.SIGSEGV))
        self.assertIn("SIGSEGV", rows["segfault"][3])
        self.assertEqual(rows["hang"][0], "timeout")
        self.assertIn("timeout after", rows["hang"][3])
        self.assertEqual(rows["allocate"][0], "memory")
        self.assertIn("memory limit exceeded", rows["allocate"][3])
        # The sweep went on after every crash: the ok shard is done and published.
        st = self.statuses("modes")
        self.assertEqual(sorted(st.values()).count("done"), 1)
        self.assertEqual(sorted(st.values()).count("failed"), 6)
        # status lists each failed shard with its last error line.
        s = self.run_seedgrid("status", "modes", "--registry", self.registry, check=0)
        for word in ("SIGSEGV", "SIGABRT", "timeout", "memory limit", "injected for the test"):
            self.assertIn(word, s.stdout)

    def test_retries_until_success_and_attempts_are_numbered(self):
        spec = self.spec("retry.yaml", """
            name: retry
            kind: chaos
            params: {mode: segfault, fail_until_attempt: 3}
            resources: {max_attempts: 3}
        """)
        self.run_seedgrid("run", spec, "--workers", "1", check=0)
        att = self.attempts("retry")
        self.assertEqual([(a[1], a[2]) for a in att], [(1, "crash"), (2, "crash"), (3, "ok")])
        self.assertEqual(self.query("select status, attempts from shards")[0], ("done", 3))

    def test_killed_executor_is_a_failed_attempt_and_the_sweep_goes_on(self):
        spec = self.spec("kx.yaml", """
            name: kx
            kind: chaos
            seeds: 4
            params: {sleep_ms: 1500}
            resources: {max_attempts: 2}
        """)
        proc = self.start_seedgrid("run", spec, "--workers", "1")
        self.wait_for(lambda: seedgrid_pids(self.dir, executor=True) and
                      self.query("select count(*) from shards where status='running'") and
                      self.query("select count(*) from shards where status='running'")[0][0] > 0,
                      what="a running shard")
        time.sleep(0.3)
        for pid in seedgrid_pids(self.dir, executor=True):
            os.kill(pid, signal.SIGKILL)
        out, _ = proc.communicate(timeout=120)
        self.assertEqual(proc.returncode, 0, out)
        self.assertEqual(self.count_done("kx"), 4)
        killed = [a for a in self.attempts("kx") if a[2] == "crash"]
        self.assertEqual(len(killed), 1, self.attempts("kx"))
        self.assertEqual(killed[0][3], signal.SIGKILL)
        self.assertIn("SIGKILL", killed[0][5])

    def _no_process_left(self):
        """No rank, executor or mpirun of this test's launch is left (they all run in self.dir)."""
        def left():
            pids = seedgrid_pids(self.dir) + seedgrid_pids(self.dir, executor=True)
            for pid in os.listdir("/proc"):
                try:
                    with open(f"/proc/{pid}/cmdline", "rb") as f:
                        argv0 = f.read().split(b"\0")[0]
                    if (argv0.endswith((b"mpirun", b"orterun", b"orted", b"prterun")) and
                            os.path.realpath(os.readlink(f"/proc/{pid}/cwd")) == os.path.realpath(self.dir)):
                        pids.append(int(pid))
                except (FileNotFoundError, ProcessLookupError, PermissionError, NotADirectoryError):
                    continue
            return pids
        try:
            self.wait_for(lambda: not left(), timeout=10, what="the launch's processes to end")
        except AssertionError:
            pids = left()
            for pid in pids:
                try:
                    os.kill(pid, signal.SIGKILL)
                except ProcessLookupError:
                    pass
            self.fail(f"processes left behind: {pids}")

    def test_hung_inline_shard_times_out_and_its_stuck_worker_is_retired(self):
        # An inline shard runs in the worker's own (MPI) thread: the worker cannot stop it. The
        # coordinator's deadline (2 s + 5 s grace) ends the attempt, retires that rank, lets the
        # other rank finish the sweep, and aborts the job at the end instead of hanging.
        spec = self.spec("inl.yaml", """
            name: inl
            stages:
              - name: stuck
                kind: chaos
                params: {mode: hang}
                resources: {isolation: inline, timeout: 2, max_attempts: 1}
              - name: fine
                kind: chaos
                seeds: 3
                params: {sleep_ms: 300}
                resources: {isolation: inline, timeout: 2, max_attempts: 1}
        """)
        t0 = time.monotonic()
        p = self.run_seedgrid("run", spec, "--workers", "2", timeout=60, check=3)
        elapsed = time.monotonic() - t0
        self.assertLess(elapsed, 30, p.stdout + p.stderr)
        (shard, n, rank, outcome, error), = self.query(
            "select a.shard, a.n, a.rank, a.outcome, a.error from attempts a join shards s on "
            "s.id=a.shard where s.stage='stuck'")
        self.assertEqual((n, outcome), (1, "timeout"))
        self.assertIn("timeout after", error)
        self.assertIn(f"worker rank {rank} (isolation: inline)", error)
        self.assertIn("retired", error)
        self.assertEqual(self.statuses("inl")[shard], "failed")
        fine = self.query("select status from shards where stage='fine'")
        self.assertEqual([s for (s,) in fine], ["done"] * 3)
        # The fine shards ran on the other rank.
        ranks = {r for (r,) in self.query("select a.rank from attempts a join shards s on "
                                          "s.id=a.shard where s.stage='fine'")}
        self.assertEqual(ranks, {3 - rank})
        self.assertIn("1 shard(s) failed", p.stdout)
        self.assertIn(f"worker rank(s) {rank} stuck in a shard past its timeout: aborting", p.stderr)
        self.assertTrue(os.path.exists(os.path.join(self.dir, "runs", "inl", "results.h5")))
        self.assertEqual(self.query("select exit_code from launches")[0][0], 3)
        self._no_process_left()

    def test_when_every_worker_is_stuck_the_rest_stays_pending_and_the_job_ends(self):
        spec = self.spec("all.yaml", """
            name: all
            stages:
              - name: stuck
                kind: chaos
                params: {mode: hang}
                resources: {isolation: inline, timeout: 1, max_attempts: 2}
              - name: later
                kind: chaos
                seeds: 2
        """)
        t0 = time.monotonic()
        p = self.run_seedgrid("run", spec, "--workers", "1", timeout=60, check=3)
        self.assertLess(time.monotonic() - t0, 30, p.stdout + p.stderr)
        self.assertIn("could not run: too few worker ranks were left after retiring rank(s) 1",
                      p.stdout)
        st = self.query("select stage, status, attempts from shards order by stage")
        # One charged timeout of 2 allowed: the stuck shard stays pending, like the ones that
        # never got a worker; the next launch runs them.
        self.assertEqual(st, [("later", "pending", 0), ("later", "pending", 0), ("stuck", "pending", 1)])
        self._no_process_left()


class RerunAndResume(SweepTest):
    def chaos_spec(self, name, extra=""):
        return self.spec(f"{name}.yaml", f"""
            name: {name}
            kind: chaos
            seeds: 6
            grid: {{value: [1.0, 2.0]}}
            params: {{sleep_ms: 150{extra}}}
            resources: {{max_attempts: 2}}
        """)

    def test_rerun_completes_exactly_the_failed_set(self):
        broken = os.path.join(self.dir, "broken")
        open(broken, "w").close()
        spec = self.spec("rr.yaml", f"""
            name: rr
            stages:
              - name: a
                kind: chaos
                seeds: 4
                params: {{mode: throw, fail_while_file_exists: {broken}}}
                zip: {{value: [0.0, 1.0]}}
                resources: {{max_attempts: 1}}
              - name: b
                kind: chaos
                seeds: 2
                params: {{sleep_ms: 10}}
        """)
        # Stage a (4 seeds x 2 values) fails while `broken` exists; stage b is independent.
        self.run_seedgrid("run", spec, "--workers", "2", check=3)
        before = {r[0]: r for r in self.query("select id, stage, status, attempts from shards")}
        failed = {k for k, r in before.items() if r[2] == "failed"}
        done = {k for k, r in before.items() if r[2] == "done"}
        self.assertEqual(len(failed), 8)
        self.assertEqual(len(done), 2)
        done_attempts = {k: self.query("select count(*) from attempts where shard=?", k)[0][0] for k in done}
        os.unlink(broken)  # fix the environment
        p = self.run_seedgrid("rerun", "rr", "--failed", "--registry", self.registry, "--workers", "2", check=0)
        after = dict(self.query("select id, status from shards"))
        self.assertTrue(all(s == "done" for s in after.values()), after)
        for k in done:  # done shards were never recomputed
            self.assertEqual(self.query("select count(*) from attempts where shard=?", k)[0][0], done_attempts[k])
        for k in failed:  # each failed shard ran exactly once more
            self.assertEqual(self.query("select count(*) from attempts where shard=?", k)[0][0], 2)
        self.assertIn("10/10 done", p.stdout)

    def _clean_reference(self, name):
        spec = self.chaos_spec(name)
        self.run_seedgrid("run", spec, "--workers", "2", "--out", os.path.join(self.dir, "ref"),
                          check=0)
        ref = sqlite3.connect(os.path.join(self.dir, "ref", "registry.sqlite"))
        shards = ref.execute("select id, stage, kind, seed, params, axes, status from shards "
                             "where sweep=? order by id", (name,)).fetchall()
        metrics = ref.execute("select m.shard, m.name, m.value from metrics m join shards s on "
                              "s.id=m.shard where s.sweep=? order by m.shard, m.name", (name,)).fetchall()
        ref.close()
        return spec, (shards, metrics)

    def _kill_rank_then_resume(self, rank):
        name = f"kill{rank}"
        spec, reference = self._clean_reference(name)
        proc = self.start_seedgrid("run", spec, "--workers", "2")
        self.wait_for(lambda: self.count_done(name) >= 3, what="a few shards done")
        pids = seedgrid_pids(self.dir, rank=rank)
        self.assertTrue(pids, f"no process for rank {rank}")
        os.kill(pids[0], signal.SIGKILL)
        out, _ = proc.communicate(timeout=120)
        self.assertNotEqual(proc.returncode, 0, out)
        self.assertLess(self.count_done(name), 12)
        # Resume: the same command finishes the sweep.
        p = self.run_seedgrid("run", spec, "--workers", "2", check=0)
        self.assertEqual(self.snapshot(name), reference)
        # The results are the same files: values equal the clean run's.
        for (sid,) in self.query("select id from shards"):
            mine = os.path.join(self.dir, "runs", name, name, sid + ".h5")
            ref = os.path.join(self.dir, "ref", name, name, sid + ".h5")
            self.assertEqual(h5_values(mine, "chaos/values"), h5_values(ref, "chaos/values"))
        return p

    def test_kill9_worker_rank_then_resume_matches_clean_run(self):
        self._kill_rank_then_resume(1)

    def test_kill9_coordinator_then_resume_matches_clean_run(self):
        p = self._kill_rank_then_resume(0)
        self.assertIn("recovered", p.stdout)  # shards left running by the dead launch

    def test_preemption_signal_exits_4_then_resume(self):
        spec = self.spec("pre.yaml", """
            name: pre
            kind: chaos
            seeds: 8
            params: {sleep_ms: 1200}
        """)
        proc = self.start_seedgrid("run", spec, "--workers", "2")
        self.wait_for(lambda: self.count_done("pre") >= 2, what="two shards done")
        proc.send_signal(signal.SIGTERM)
        out, _ = proc.communicate(timeout=60)
        self.assertEqual(proc.returncode, 4, out)
        self.assertIn("resume with: seedgrid run", out)
        pre = self.query("select count(*) from shards where status='preempted'")[0][0]
        self.assertGreaterEqual(pre, 1, out)
        # preempted attempts are not charged: a preempted shard has no charged attempt
        self.assertEqual(self.query("select max(attempts) from shards where status='preempted'")[0][0], 0)
        self.run_seedgrid("run", spec, "--workers", "2", check=0)
        self.assertEqual(self.count_done("pre"), 8)

    def test_published_file_is_not_recomputed(self):
        spec = self.chaos_spec("pub")
        self.run_seedgrid("run", spec, "--workers", "1", check=0)
        # Simulate a crash after publish but before the registry heard of it.
        con = sqlite3.connect(self.registry)
        con.execute("update shards set status='running', artifact='' where seed in (0, 1)")
        con.commit()
        con.close()
        n_attempts = self.query("select count(*) from attempts")[0][0]
        p = self.run_seedgrid("run", spec, "--workers", "1", check=0)
        self.assertIn("published before an interruption", p.stdout)
        self.assertEqual(self.query("select count(*) from attempts")[0][0], n_attempts)
        self.assertEqual(self.count_done("pub"), 12)


class Guards(SweepTest):
    def test_concurrent_launch_on_the_same_registry_is_refused(self):
        spec = self.spec("slow.yaml", """
            name: slow
            kind: chaos
            seeds: 2
            params: {sleep_ms: 60000}
        """)
        # Long shards: the first launch holds the lock however slowly the second one starts
        # (mpirun takes seconds on a loaded machine); SIGTERM ends it below.
        proc = self.start_seedgrid("run", spec, "--workers", "1")
        self.wait_for(lambda: (self.query("select count(*) from shards where status='running'")
                               or [(0,)])[0][0] > 0, what="the first launch running")
        p = self.run_seedgrid("run", spec, "--workers", "1", check=2)
        self.assertIn("in use by seedgrid pid", p.stderr)
        proc.send_signal(signal.SIGTERM)
        proc.communicate(timeout=60)

    def test_bad_specs_exit_2_and_leave_the_registry_untouched(self):
        good = self.spec("good.yaml", """
            name: good
            kind: chaos
            params: {sleep_ms: 1}
        """)
        self.run_seedgrid("run", good, "--workers", "1", check=0)
        with open(self.registry, "rb") as f:
            before = f.read()
        mtime = os.stat(self.registry).st_mtime_ns
        bad = self.spec("bad.yaml", """
            name: good
            kind: chaos
            seeds: []
            grid: {sleep_ms: []}
            zip: {value: [1, 2], noise: [1]}
            params: {mode: explode, nope: 1}
            stages_typo: 1
        """)
        p = self.run_seedgrid("run", bad, "--workers", "1", check=2)
        self.assertIn("bad.yaml:", p.stderr)
        self.assertGreaterEqual(p.stderr.count("bad.yaml:"), 4, p.stderr)
        with open(self.registry, "rb") as f:
            self.assertEqual(f.read(), before)
        self.assertEqual(os.stat(self.registry).st_mtime_ns, mtime)
        # An invalid override is a spec error too, and so is an unknown kind.
        self.run_seedgrid("run", good, "params.nope=1", "--workers", "1", check=2)
        unknown = self.spec("unk.yaml", "name: u\nkind: warp_drive\n")
        p = self.run_seedgrid("run", unknown, "--workers", "1", check=2)
        self.assertIn("chaos", p.stderr)  # says which kinds exist
        self.assertFalse(os.path.exists(os.path.join(self.dir, "runs", "u")))

    def test_dry_run_prints_the_table_and_writes_nothing(self):
        spec = self.spec("dry.yaml", """
            name: dry
            kind: chaos
            seeds: [0, 1]
            grid: {value: [1, 2, 3]}
        """)
        p = self.run_seedgrid("run", spec, "--dry-run", check=0)
        self.assertIn("6 shard(s)", p.stdout)
        self.assertEqual(len([l for l in p.stdout.splitlines() if " chaos " in l]), 6)
        self.assertFalse(os.path.exists(os.path.join(self.dir, "runs")))


class Results(SweepTest):
    def test_results_h5_links_every_done_shard_and_reindex_rebuilds(self):
        spec = self.spec("res.yaml", """
            name: res
            stages:
              - name: first
                kind: chaos
                seeds: 3
              - name: second
                kind: chaos
                needs: first
                params: {value: 5.0}
                resources: {isolation: inline}
        """)
        self.run_seedgrid("run", spec, "--workers", "2", check=0)
        import h5py
        with h5py.File(os.path.join(self.dir, "runs", "res", "results.h5"), "r") as f:
            self.assertEqual(len(f["first"]), 3)
            self.assertEqual(len(f["second"]), 3)  # fan-out: one per needed shard
            for sid in f["second"]:
                g = f["second"][sid]
                self.assertEqual(len(g["chaos/values"]), 8)
                self.assertEqual(g.attrs["seedgrid_stage"], "second")
                self.assertIn("metric.value", g.attrs)
        ref = self.snapshot("res")
        os.unlink(self.registry)
        self.run_seedgrid("reindex", "--out", os.path.join(self.dir, "runs"), check=0)
        shards, metrics = self.snapshot("res")
        self.assertEqual(metrics, ref[1])
        self.assertEqual([s[:4] + s[5:] for s in shards], [s[:4] + s[5:] for s in ref[0]])

    def test_a_done_shard_whose_file_was_lost_is_computed_again(self):
        spec = self.spec("lost.yaml", """
            name: lost
            stages:
              - {name: a, kind: chaos, seeds: 2}
              - {name: b, kind: chaos, needs: a}
        """)
        self.run_seedgrid("run", spec, "--workers", "1", check=0)
        (sid, art), = self.query("select id, artifact from shards where stage='a' and seed=0")
        os.unlink(os.path.join(self.dir, "runs", art))
        p = self.run_seedgrid("run", spec, "--workers", "1", check=0)
        self.assertIn("lost their published file", p.stdout)
        self.assertTrue(os.path.exists(os.path.join(self.dir, "runs", art)))
        self.assertEqual(self.query("select count(*) from attempts where shard=?", sid)[0][0], 2)
        self.assertEqual(self.count_done("lost"), 4)

    def test_gang_shards_run_on_two_workers(self):
        spec = self.spec("gang.yaml", """
            name: gang
            kind: chaos
            seeds: 2
            params: {sleep_ms: 50}
            resources: {ranks: 2}
        """)
        self.run_seedgrid("run", spec, "--workers", "2", check=0)
        self.assertEqual(self.count_done("gang"), 2)

    def test_gang_needing_more_workers_than_launched_is_a_usage_error(self):
        spec = self.spec("gang3.yaml", """
            name: gang3
            kind: chaos
            resources: {ranks: 3}
        """)
        p = self.run_seedgrid("run", spec, "--workers", "2", check=2)
        self.assertIn("ranks: 3", p.stderr)


if __name__ == "__main__":
    unittest.main()

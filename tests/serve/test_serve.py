"""`seedgrid serve` over HTTP, the real binary on a registry made by a real chaos sweep:
the JSON API (docs/serve.md) against the registry itself, and the safety rules (token off
loopback, no path out of a sweep's directory, read-only, text never markup)."""
import glob
import hashlib
import json
import math
import os
import shutil
import sqlite3
import subprocess
import tempfile
import time
import unittest

import h5py
import numpy as np

from serve_harness import (INJECTION, SEEDGRID, Server, curves_spec, make_sweep,
                           registry_ready, sweep_env)


def registry_rows(registry, sql, *params):
    con = sqlite3.connect(f"file:{registry}?mode=ro", uri=True)
    try:
        return con.execute(sql, params).fetchall()
    finally:
        con.close()


class Api(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.dir, cls.registry = make_sweep("webtest")
        subprocess.run([SEEDGRID, "report", "webtest", "--registry", cls.registry, "--no-figures"],
                       cwd=cls.dir, check=True, capture_output=True, timeout=120)
        cls.server = Server(cls.registry)

    @classmethod
    def tearDownClass(cls):
        cls.server.stop()
        shutil.rmtree(cls.dir, ignore_errors=True)

    def test_sweeps_list_matches_the_registry(self):
        d = self.server.json("/api/sweeps")
        self.assertEqual([s["name"] for s in d["sweeps"]], ["webtest"])
        s = d["sweeps"][0]
        (created, spec_hash), = registry_rows(self.registry,
                                             "select created, spec_hash from sweeps")
        self.assertEqual((s["created"], s["spec_hash"]), (created, spec_hash))
        counts = dict(registry_rows(self.registry, "select status, count(*) from shards "
                                                   "where sweep='webtest' group by status"))
        self.assertEqual(counts, {"done": 3, "failed": 3})
        self.assertEqual(s["totals"], {"done": 3, "failed": 3, "pending": 0, "running": 0,
                                       "preempted": 0})
        self.assertEqual(s["stages"][0]["stage"], "warmup")
        self.assertEqual(s["stages"][0]["kind"], "chaos")
        self.assertEqual(s["stages"][0]["total"], 6)
        self.assertEqual(s["eta_s"], 0)  # nothing left
        self.assertGreater(s["throughput"], 0)  # finished within the last minute
        launches = registry_rows(self.registry, "select host, pid, exit_code from launches")
        self.assertEqual([(l["host"], l["pid"], l["exit_code"]) for l in s["launches"]], launches)
        self.assertEqual(s["launches"][0]["exit_code"], 3)
        self.assertFalse(s["running"])
        # The counts come from an aggregate pass made after the sweep finished.
        (ended,), = registry_rows(self.registry, "select max(updated) from shard_states")
        self.assertGreaterEqual(s["counts_at"], ended)

    def test_sweep_detail_lists_failed_shards_with_their_error_and_the_report(self):
        s = self.server.json("/api/sweeps/webtest")
        failed = registry_rows(self.registry, "select id, error from shards "
                                              "where sweep='webtest' and status='failed'")
        self.assertEqual(sorted((f["id"], f["error"]) for f in s["failed"]), sorted(failed))
        self.assertTrue(all(f["error"] == INJECTION for f in s["failed"]))
        self.assertIn("name: webtest", s["spec_text"])
        tables = {t["name"]: t for t in s["report"]["tables"]}
        self.assertIn("tables/warmup.csv", tables)
        with open(os.path.join(self.dir, "runs/webtest/report/tables/warmup.csv"),
                  newline="") as f:
            self.assertEqual(tables["tables/warmup.csv"]["text"], f.read())
        docs = [d["url"] for d in s["report"]["documents"]]
        self.assertIn("/files/webtest/report/report.md", docs)
        status, headers, body = self.server.request("/files/webtest/report/report.md")
        self.assertEqual(status, 200)
        self.assertTrue(headers["content-type"].startswith("text/plain"))
        self.assertIn("sandbox", headers["content-security-policy"])

    def test_shard_pages_cover_the_sweep_once_in_plan_order(self):
        seen, after = [], 0
        while after is not None:
            page = self.server.json(f"/api/sweeps/webtest/shards?limit=2&after={after}")
            self.assertLessEqual(len(page["shards"]), 2)
            seen += [s["id"] for s in page["shards"]]
            after = page["next_after"]
        planned = [r[0] for r in registry_rows(self.registry,
                                               "select id from shards where sweep='webtest' "
                                               "order by seq")]
        self.assertEqual(seen, planned)
        failed = self.server.json("/api/sweeps/webtest/shards?status=failed")["shards"]
        self.assertEqual(len(failed), 3)
        self.assertTrue(all(s["status"] == "failed" and s["axes"]["mode"] == "throw"
                            for s in failed))
        self.assertEqual(self.server.request("/api/sweeps/webtest/shards?status=bogus")[0], 400)
        self.assertEqual(self.server.request("/api/sweeps/nosuch/shards")[0], 404)

    def test_shard_detail_has_params_attempts_metrics_files_and_logs(self):
        (sid, artifact), = registry_rows(
            self.registry, "select id, artifact from shards where sweep='webtest' and "
                           "status='done' order by seq limit 1")
        # Per-attempt logs: <out>/<sweep>/<stage>/<id>.logs/attempt-<n>.out|.err, written by the
        # worker beside the shard's file (another change); the server reads what is there.
        log_dir = os.path.join(self.dir, "runs/webtest/warmup", sid + ".logs")
        os.makedirs(log_dir, exist_ok=True)
        with open(os.path.join(log_dir, "attempt-1.out"), "w") as f:
            f.write("".join(f"step {i} loss {1.0 / (i + 1):.4f}\n" for i in range(3000)))
        s = self.server.json(f"/api/shards/{sid}")
        self.assertEqual(s["id"], sid)
        self.assertEqual(s["status"], "done")
        self.assertEqual(s["params"]["message"], INJECTION)
        self.assertEqual(s["axes"]["mode"], "ok")
        attempts = registry_rows(self.registry, "select n, host, outcome from attempts "
                                                "where shard=? order by n", sid)
        self.assertEqual([(a["n"], a["host"], a["outcome"]) for a in s["attempts"]], attempts)
        metrics = dict(registry_rows(self.registry, "select name, value from metrics "
                                                    "where shard=?", sid))
        self.assertTrue(metrics)
        self.assertEqual(s["metrics"], metrics)
        self.assertEqual(len(s["files"]), 1)
        status, _, body = self.server.request(s["files"][0]["url"])
        self.assertEqual(status, 200)
        with open(os.path.join(os.path.dirname(self.registry), artifact), "rb") as f:
            self.assertEqual(body, f.read())
        self.assertEqual([l["name"] for l in s["logs"]], ["attempt-1.out"])
        log = s["logs"][0]
        self.assertTrue(log["truncated"])
        self.assertTrue(log["tail"].startswith("step "))  # cut at a line start
        self.assertTrue(log["tail"].endswith("step 2999 loss 0.0003\n"))
        self.assertLessEqual(len(log["tail"]), 16 * 1024)
        status, _, body = self.server.request(log["url"])
        self.assertEqual(status, 200)
        self.assertEqual(body.count(b"\n"), 3000)
        # A unique prefix finds the shard; an unknown one is 404.
        self.assertEqual(self.server.json(f"/api/shards/{sid[:10]}")["id"], sid)
        self.assertEqual(self.server.request("/api/shards/ffffffffffffffff")[0], 404)

    def test_done_shards_show_the_training_curves_their_file_holds(self):
        rows = registry_rows(self.registry, "select id, artifact from shards where "
                                            "sweep='webtest' and status='done' order by seq")
        (plain, _), (trained, artifact) = rows[1], rows[2]
        self.assertEqual(self.server.json(f"/api/shards/{plain}")["curves"], [])
        # A chaos file has no train/ group: give this one the loss curve a training kind
        # writes (pretrain's train/loss, 1,000 steps).
        loss = np.exp(-np.arange(1000) / 300.0).astype(np.float32)
        with h5py.File(os.path.join(os.path.dirname(self.registry), artifact), "a") as f:
            f.create_dataset("train/loss", data=loss)
        curves = self.server.json(f"/api/shards/{trained}")["curves"]
        self.assertEqual([c["name"] for c in curves], ["train/loss"])
        c = curves[0]
        self.assertEqual(c["length"], 1000)
        self.assertLessEqual(len(c["steps"]), 401)
        self.assertEqual((c["steps"][0], c["steps"][-1]), (0, 999))
        for step, value in zip(c["steps"], c["values"]):
            self.assertAlmostEqual(value, float(loss[step]), places=6)

    def test_version_changes_when_the_registry_is_written(self):
        v1 = self.server.json("/api/version")["version"]
        self.assertEqual(self.server.json("/api/version")["version"], v1)
        con = sqlite3.connect(self.registry)
        # A real change: SQLite skips pages an UPDATE leaves as they were (no commit, no new
        # version), as the coordinator never does.
        con.execute("insert or replace into provenance(sweep, key, value) "
                    "values('webtest', 'test.touch', ?)", (str(v1),))
        con.commit()
        con.close()
        self.assertNotEqual(self.server.json("/api/version")["version"], v1)


class Live(unittest.TestCase):
    """Live curves end to end: a `kind: command` script logs a loss per step with
    seedgrid.log(name, value, step); the worker tails its metrics.jsonl, the points go up at
    most once a second, the coordinator records them, and the API serves them while it runs."""

    MAX_PER_MESSAGE = 64  # kLiveMaxPoints (core/protocol.h)

    @staticmethod
    def loss(step):
        return math.exp(-step / 20.0) + 0.1  # slow_train.py's

    def test_running_shards_curves_grow_then_go_when_done(self):
        d = tempfile.mkdtemp(prefix="seedgrid-live-")
        self.addCleanup(shutil.rmtree, d, True)
        # A fast logger (3,000 steps in a few seconds) that fails at the end, so its points
        # stay; a slow one (4 steps a second for ~12 s) that succeeds.
        spec = curves_spec(d, "curves", [(3000, 0.001, 1), (48, 0.25, 0)])
        run = subprocess.Popen([SEEDGRID, "run", spec, "--workers", "2"], cwd=d, env=sweep_env(),
                               stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                               start_new_session=True)
        self.addCleanup(lambda: run.poll() is None and run.kill())
        registry = os.path.join(d, "runs", "registry.sqlite")
        end = time.time() + 60
        while time.time() < end and not registry_ready(registry):
            time.sleep(0.1)
        server = Server(registry)
        self.addCleanup(server.stop)
        slow_id, = [i for i, p in registry_rows(registry, "select id, params from shards")
                    if json.loads(p)["steps"] == 48]

        # The slow shard's curve, seen three times while it runs: it grew, its values are the
        # script's.
        seen = []
        end = time.time() + 90
        while time.time() < end and run.poll() is None:
            live = server.json("/api/sweeps/curves/live")["shards"]
            for sh in live:
                for c in sh["curves"]:
                    if sh["id"] == slow_id and c["name"] == "loss":
                        seen.append((sh["id"], c["latest"]["step"], c))
            if len({s for _, s, _ in seen}) >= 3:
                break
            time.sleep(0.5)
        self.assertGreaterEqual(len({s for _, s, _ in seen}), 3, seen)
        steps = [s for _, s, _ in seen]
        self.assertEqual(steps, sorted(steps))
        _, _, curve = seen[-1]
        self.assertEqual(curve["steps"], sorted(curve["steps"]))
        for step, value in zip(curve["steps"], curve["values"]):
            self.assertAlmostEqual(value, self.loss(step), places=9)
        shard = server.json(f"/api/shards/{slow_id}/live")
        self.assertEqual(shard["status"], "running")
        self.assertEqual([(c["name"], c["attempt"]) for c in shard["curves"]], [("loss", 1)])

        out, _ = run.communicate(timeout=120)
        self.assertEqual(run.returncode, 3, out)  # the fast shard failed, as planned
        # Done: the slow shard's live points are gone (its final curves are in its file).
        self.assertEqual(server.json(f"/api/shards/{slow_id}/live")["curves"], [])
        self.assertEqual(server.json("/api/sweeps/curves/live")["shards"], [])
        # The failed fast shard's stay, bounded: at most one message a second (one `t` each,
        # the coordinator's receive time), at most MAX_PER_MESSAGE points in each, the
        # newest step sent before its end.
        (fast_id, seq), = registry_rows(registry, "select id, seq from shards where "
                                                  "status = 'failed'")
        rows = registry_rows(registry, "select step, value, t from live_points where "
                                       "shard_seq = ? order by step", seq)
        self.assertTrue(rows)
        self.assertEqual(rows[-1][0], 2999)
        by_t = {}
        for step, value, t in rows:
            self.assertAlmostEqual(value, self.loss(step), places=9)
            by_t.setdefault(t, []).append(step)
        (start, end), = registry_rows(registry, 'select start, "end" from attempts where '
                                                 "shard = ?", fast_id)
        # One message a second while it ran (the first at once), plus the one at its end.
        self.assertLessEqual(len(by_t), (end - start) / 1.0 + 2, sorted(by_t))
        self.assertGreaterEqual(len(by_t), 2, sorted(by_t))
        self.assertLessEqual(max(len(v) for v in by_t.values()), self.MAX_PER_MESSAGE)
        fast = server.json(f"/api/shards/{fast_id}/live")
        self.assertEqual(fast["status"], "failed")
        self.assertEqual(fast["curves"][0]["latest"]["step"], 2999)
        self.assertLessEqual(len(fast["curves"][0]["steps"]), 300)  # Api::kLivePoints


class Security(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.dir, cls.registry = make_sweep("sectest", seeds=1)

    @classmethod
    def tearDownClass(cls):
        shutil.rmtree(cls.dir, ignore_errors=True)

    def serve(self, *args):
        s = Server(self.registry, *args)
        self.addCleanup(s.stop)
        return s

    def test_binds_loopback_without_token_by_default(self):
        s = self.serve()
        self.assertTrue(s.banner.startswith("seedgrid serve: http://127.0.0.1:"), s.banner)
        self.assertIsNone(s.token)
        self.assertEqual(s.request("/api/sweeps")[0], 200)

    def test_off_loopback_every_request_needs_the_token(self):
        s = self.serve("--bind", "0.0.0.0")
        self.assertRegex(s.token or "", r"^[0-9a-f]{32}$", s.banner)
        paths = ["/", "/app.js", "/api/sweeps", "/api/version", "/files/sectest/report/x"]
        for p in paths:
            self.assertEqual(s.request(p)[0], 401, p)
            self.assertEqual(s.request(p + "?token=wrong")[0], 401, p)
            self.assertEqual(s.request(p, headers={"Authorization": "Bearer " + s.token[:-1]})[0],
                             401, p)
        status, headers, _ = s.request("/?token=" + s.token)
        self.assertEqual(status, 200)
        self.assertIn("HttpOnly", headers["set-cookie"])
        cookie = headers["set-cookie"].split(";")[0]
        self.assertEqual(s.request("/api/sweeps", headers={"Cookie": cookie})[0], 200)
        self.assertEqual(s.request("/api/sweeps",
                                   headers={"Authorization": "Bearer " + s.token})[0], 200)
        given = self.serve("--bind", "0.0.0.0", "--token", "s3cret-token")
        self.assertEqual(given.token, "s3cret-token")
        self.assertEqual(given.request("/api/sweeps")[0], 401)
        self.assertEqual(given.request("/api/sweeps?token=s3cret-token")[0], 200)

    def test_paths_cannot_leave_the_sweep_directory(self):
        s = self.serve()
        link = os.path.join(self.dir, "runs/sectest/escape")
        os.symlink(self.registry, link)
        self.addCleanup(os.remove, link)
        refused = ["/files/sectest/../registry.sqlite",
                   "/files/sectest/%2e%2e/registry.sqlite",
                   "/files/sectest/%2E%2E%2Fregistry.sqlite",
                   "/files/sectest/warmup/..%2f..%2fregistry.sqlite",
                   "/files/sectest/./../registry.sqlite",
                   "/files/sectest//etc/passwd",
                   "/files/sectest/%2fetc%2fpasswd",
                   "/files/sectest/escape"]
        for p in refused:
            status, _, body = s.request(p)
            self.assertEqual(status, 403, p)
            self.assertNotIn(b"SQLite format 3", body, p)
        # Encoded twice: decoded once it is a literal name "%2e%2e", which does not exist.
        self.assertEqual(s.request("/files/sectest/%252e%252e/registry.sqlite")[0], 404)
        # The sweep segment itself: only names in the registry.
        for p in ["/files/../registry.sqlite", "/files/%2e%2e/runs/registry.sqlite",
                  "/files/nosuch/x"]:
            status, _, body = s.request(p)
            self.assertIn(status, (403, 404), p)
            self.assertNotIn(b"SQLite format 3", body, p)
        for p in ["/api/shards/ABC", "/api/shards/x%20y", "/api/shards/%2e%2e"]:
            self.assertEqual(s.request(p)[0], 400, p)
        # Decoded, this one has more path segments than any route: no route, 404.
        self.assertEqual(s.request("/api/shards/..%2f..%2fetc")[0], 404)
        # Something inside is served.
        h5 = glob.glob(os.path.join(self.dir, "runs/sectest/warmup/*.h5"))[0]
        self.assertEqual(s.request("/files/sectest/warmup/" + os.path.basename(h5))[0], 200)

    def test_read_only(self):
        s = self.serve()
        with open(self.registry, "rb") as f:
            before = hashlib.sha256(f.read()).hexdigest()
        for method in ["POST", "PUT", "DELETE", "PATCH"]:
            status, _, _ = s.request("/api/sweeps", method=method, body="{}")
            self.assertEqual(status, 405, method)
        s.json("/api/sweeps/sectest")
        with open(self.registry, "rb") as f:
            self.assertEqual(hashlib.sha256(f.read()).hexdigest(), before)

    def test_text_is_never_markup(self):
        s = self.serve()
        status, headers, body = s.request("/api/sweeps/sectest")
        self.assertEqual(headers["content-type"], "application/json")
        self.assertEqual(headers["x-content-type-options"], "nosniff")
        # The error text travels as JSON data (the page puts it in with textContent; the browser
        # test checks the rendered page).
        self.assertIn(b"<img src=x", body)
        status, headers, page = s.request("/")
        csp = headers["content-security-policy"]
        self.assertIn("default-src 'self'", csp)  # no inline script runs, even if injected
        self.assertNotIn("unsafe-inline", csp)
        _, _, script = s.request("/app.js")
        self.assertNotIn(b"innerHTML", script)
        self.assertNotIn(b"insertAdjacentHTML", script)
        self.assertNotIn(b"document.write", script)
        # A file of the sweep is data: sandboxed, so an HTML or SVG file cannot run script.
        report = os.path.join(self.dir, "runs/sectest/report")
        os.makedirs(report, exist_ok=True)
        with open(os.path.join(report, "evil.html"), "w") as f:
            f.write("<script>alert(1)</script>")
        _, headers, _ = s.request("/files/sectest/report/evil.html")
        self.assertTrue(headers["content-security-policy"].startswith("sandbox"))


if __name__ == "__main__":
    unittest.main()

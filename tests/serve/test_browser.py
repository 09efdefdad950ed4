"""The page in a real headless Chromium (Debian's /usr/bin/chromium, driven over the DevTools
protocol by puppeteer-core, installed by `npm ci` from tests/serve/package-lock.json) while a
real chaos sweep runs: counts change and failed shards appear without a reload, within about a
second of the events; a failed shard's logs open; error texts with markup stay text. Screenshots
go to $SEEDGRID_SERVE_ARTIFACTS (the build dir's tests/serve/artifacts under ctest)."""
import json
import os
import shutil
import subprocess
import tempfile
import time
import unittest

from serve_harness import (INJECTION, SEEDGRID, Server, chaos_spec, curves_spec, registry_ready,
                           sweep_env)

HERE = os.path.dirname(os.path.abspath(__file__))
CHROMIUM = os.environ.get("CHROMIUM", "/usr/bin/chromium")


def npm_ci():
    """puppeteer-core from the lockfile (from npm's cache when offline)."""
    subprocess.run(["npm", "ci", "--prefer-offline", "--no-audit", "--no-fund",
                    "--ignore-scripts"], cwd=HERE, check=True, capture_output=True, timeout=300)


class Browser(unittest.TestCase):
    def setUp(self):
        if not shutil.which("node") or not shutil.which("npm") or not os.path.exists(CHROMIUM):
            self.skipTest("needs node, npm and chromium (scripts/install-deps)")
        npm_ci()
        self.dir = tempfile.mkdtemp(prefix="seedgrid-browser-")
        self.addCleanup(shutil.rmtree, self.dir, True)
        self.artifacts = os.environ.get("SEEDGRID_SERVE_ARTIFACTS",
                                        os.path.join(self.dir, "artifacts"))

    def test_live_page_during_a_chaos_sweep(self):
        # 24 shards of ~0.6 s on 2 workers: ~10 s of events; the `throw` half fail twice each.
        run, server = self._run_and_serve(chaos_spec(self.dir, "live", seeds=12, sleep_ms=600))
        b = subprocess.run(["node", os.path.join(HERE, "browser_test.js"), server.url, "live",
                            self.artifacts], cwd=HERE, capture_output=True, text=True,
                           timeout=300)
        self.assertEqual(b.returncode, 0, b.stderr)
        seen = json.loads(b.stdout.strip().splitlines()[-1])
        out, _ = run.communicate(timeout=240)
        self.assertEqual(run.returncode, 3, out)  # shards failed, as planned

        # The count changed at least twice on the open page, never by a reload.
        self.assertGreaterEqual(len(seen["doneSeen"]), 3, seen)
        self.assertEqual(seen["doneSeen"], sorted(seen["doneSeen"]))
        self.assertFalse(seen["reloaded"], seen)
        self.assertEqual(seen["live"], "live")
        # Each change showed up about a second after the shard's event at most.
        lat = sorted(seen["latencies"])
        self.assertTrue(lat, seen)
        print(f"\nupdate latency (s): median {lat[len(lat) // 2]:.3f}, max {lat[-1]:.3f}, "
              f"n={len(lat)}")
        self.assertLessEqual(lat[len(lat) // 2], 1.0, lat)
        self.assertLessEqual(lat[-1], 2.0, lat)
        # A failed shard appeared with its error as text, no markup, no script run.
        self.assertGreaterEqual(seen["failedRows"], 1)
        self.assertEqual(seen["errorText"], INJECTION)
        self.assertEqual(seen["markupInErrors"], 0)
        self.assertIsNone(seen["pwned"])
        self.assertIsNone(seen["pwnedAfterShard"])
        # Its logs opened: the shard page at its logs (or the note that it has none yet).
        self.assertTrue(seen["logHref"].startswith("#/shard/"), seen)
        self.assertEqual(seen["shardError"], INJECTION)
        self.assertTrue(seen["logs"] or seen["noLogsNote"], seen)
        self.assertEqual(seen["pageErrors"], [])
        for shot in ("sweep.png", "shard.png"):
            path = os.path.join(self.artifacts, shot)
            self.assertGreater(os.path.getsize(path), 10000, path)
        print(f"screenshots: {self.artifacts}/sweep.png, shard.png")

    def test_live_curves_grow_without_a_reload(self):
        # Two `kind: command` training scripts logging a loss per step (seedgrid.log with a
        # step), 4 steps a second for ~25 s: their live curves on the sweep page and on a
        # running shard's page must grow while the page stays loaded.
        run, server = self._run_and_serve(
            curves_spec(self.dir, "curves", [(100, 0.25, 0)], seeds=2))
        b = subprocess.run(["node", os.path.join(HERE, "browser_test.js"), server.url, "curves",
                            self.artifacts, "curves"], cwd=HERE, capture_output=True, text=True,
                           timeout=300)
        self.assertEqual(b.returncode, 0, b.stderr)
        seen = json.loads(b.stdout.strip().splitlines()[-1])
        out, _ = run.communicate(timeout=240)
        self.assertEqual(run.returncode, 0, out)
        for where in ("sweepSteps", "shardSteps"):
            steps = [s["step"] for s in seen[where]]
            self.assertGreaterEqual(len(steps), 3, seen)  # grew at least twice
            self.assertEqual(steps, sorted(steps), seen)
            self.assertGreater(seen[where][-1]["points"], seen[where][0]["points"], seen)
        self.assertGreaterEqual(seen["sweepShards"], 1)
        self.assertIn("loss · attempt 1 · step", seen["shardCaption"])
        self.assertFalse(seen["reloaded"], seen)
        self.assertFalse(seen["reloadedShard"], seen)
        self.assertEqual(seen["pageErrors"], [])
        for shot in ("sweep-curves.png", "shard-curves.png"):
            path = os.path.join(self.artifacts, shot)
            self.assertGreater(os.path.getsize(path), 10000, path)
        print(f"screenshots: {self.artifacts}/sweep-curves.png, shard-curves.png")

    def _run_and_serve(self, spec):
        """`seedgrid run spec` in the background, and `seedgrid serve` on its registry once the
        sweep is recorded: (the run's Popen, the Server)."""
        run = subprocess.Popen([SEEDGRID, "run", spec, "--workers", "2"], cwd=self.dir,
                               env=sweep_env(), stdout=subprocess.PIPE,
                               stderr=subprocess.STDOUT, text=True, start_new_session=True)
        self.addCleanup(lambda: run.poll() is None and run.kill())
        registry = os.path.join(self.dir, "runs", "registry.sqlite")
        end = time.time() + 120
        while time.time() < end and not registry_ready(registry) and run.poll() is None:
            time.sleep(0.1)
        if not registry_ready(registry):
            self.fail(f"the sweep was not recorded: {run.poll()}\n{run.communicate(timeout=60)[0]}")
        server = Server(registry)
        self.addCleanup(server.stop)
        return run, server


if __name__ == "__main__":
    unittest.main()

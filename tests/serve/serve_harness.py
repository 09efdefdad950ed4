"""Helpers for the `seedgrid serve` tests: a real chaos sweep made with the real binary (under
mpirun, through tests/integration/harness.py's conventions), a `seedgrid serve` process on a
free port, and raw HTTP requests (http.client: the path is sent as written, `..` and `%2e`
included, never normalised by a client library)."""
import http.client
import json
import os
import select
import shutil
import signal
import sqlite3
import subprocess
import sys
import tempfile
import textwrap
import time

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "integration"))
import harness  # noqa: E402  (SEEDGRID, the MPI environment)

SEEDGRID = harness.SEEDGRID

# Params and error texts are free text: this one is markup and a script, which every page must
# show as text.
INJECTION = "<img src=x onerror=\"window.__pwned=1\"><script>window.__pwned=2</script>&amp;'q'"


def sweep_env():
    env = dict(os.environ)
    env.update(OMPI_ALLOW_RUN_AS_ROOT="1", OMPI_ALLOW_RUN_AS_ROOT_CONFIRM="1",
               OMPI_MCA_rmaps_base_oversubscribe="1", OMP_WAIT_POLICY="PASSIVE",
               SEEDGRID_PROGRESS="plain", SEEDGRID_PROGRESS_INTERVAL="1")
    return env


def write_spec(directory, name, stage):
    """<directory>/<name>.yaml: a sweep `name` (out: runs) of the one stage `stage` (YAML text of
    the stage's mapping, indented as written)."""
    path = os.path.join(directory, name + ".yaml")
    with open(path, "w") as f:
        f.write(f"name: {name}\nout: runs\nstages:\n  - "
                + textwrap.indent(textwrap.dedent(stage), "    ").lstrip())
    return path


def chaos_spec(directory, name, seeds, sleep_ms):
    """A chaos sweep whose `throw` shards fail for good (fail_until_attempt beyond
    max_attempts) with INJECTION as their error, and whose `ok` shards succeed."""
    return write_spec(directory, name, f"""\
        name: warmup
        kind: chaos
        seeds: {seeds}
        zip:
          mode: [ok, throw]
        params: {{sleep_ms: {sleep_ms}, fail_until_attempt: 9, message: {json.dumps(INJECTION)}}}
        resources: {{max_attempts: 2}}
        """)


def curves_spec(directory, name, shards, seeds=1):
    """A `kind: command` sweep of tests/serve/slow_train.py shards, `seeds` per (steps, sleep,
    fail) in `shards` (zipped: each value distinct): each logs a loss per step (its live curve)
    and fails at the end when asked."""
    script = os.path.join(os.path.dirname(os.path.abspath(__file__)), "slow_train.py")
    steps, sleeps, fails = zip(*shards)
    return write_spec(directory, name, f"""\
        name: train
        kind: command
        seeds: {seeds}
        zip:
          steps: {list(steps)}
          sleep: {list(sleeps)}
          fail: {list(fails)}
        params:
          argv: [/usr/bin/python3, {script}, --steps, "{{steps}}", --sleep, "{{sleep}}",
                 --fail, "{{fail}}"]
        resources: {{max_attempts: 1}}
        """)


def registry_ready(registry):
    """Whether the sweep's shards are recorded (a server can open the registry)."""
    if not os.path.exists(registry):
        return False
    try:
        con = sqlite3.connect(f"file:{registry}?mode=ro", uri=True, timeout=5)
        try:
            return bool(con.execute("select count(*) from sweep_shards").fetchone()[0])
        finally:
            con.close()
    except sqlite3.Error:
        return False


class Server:
    """`seedgrid serve` on a free port; stopped (SIGTERM) by stop()."""

    def __init__(self, registry, *args, cwd=None):
        self.proc = subprocess.Popen([SEEDGRID, "serve", "--registry", registry, "--port", "0",
                                      *args], cwd=cwd, stdout=subprocess.PIPE,
                                     stderr=subprocess.STDOUT, text=True)
        self.banner = self._read_line(60)
        if not self.banner.startswith("seedgrid serve: http://"):
            self.stop()
            raise AssertionError(f"serve did not start: {self.banner!r}")
        url = self.banner.split()[2]
        hostport = url.split("//", 1)[1].split("/", 1)[0]
        self.port = int(hostport.rsplit(":", 1)[1])
        self.url = url
        self.token = url.split("?token=", 1)[1] if "?token=" in url else None

    def _read_line(self, timeout):
        end = time.time() + timeout
        while time.time() < end:
            r, _, _ = select.select([self.proc.stdout], [], [], 0.2)
            if r:
                return self.proc.stdout.readline().strip()
            if self.proc.poll() is not None:
                return self.proc.stdout.read()
        return ""

    def request(self, path, method="GET", headers=None, host="127.0.0.1", body=None):
        """(status, headers dict (lower-case names), body bytes) of one raw request."""
        c = http.client.HTTPConnection(host, self.port, timeout=30)
        try:
            c.putrequest(method, path, skip_accept_encoding=True)
            for k, v in (headers or {}).items():
                c.putheader(k, v)
            if body is not None:
                c.putheader("Content-Length", str(len(body)))
            c.endheaders(body.encode() if body is not None else None)
            r = c.getresponse()
            return r.status, {k.lower(): v for k, v in r.getheaders()}, r.read()
        finally:
            c.close()

    def json(self, path, **kw):
        status, headers, body = self.request(path, **kw)
        if status != 200:
            raise AssertionError(f"GET {path}: {status} {body[:300]!r}")
        assert headers["content-type"].startswith("application/json"), headers
        return json.loads(body)

    def stop(self):
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self.proc.stdout.close()
        return self.proc.returncode


def make_sweep(name="webtest", seeds=3, sleep_ms=50):
    """A finished chaos sweep (3 done, 3 failed) in a new temp dir: (dir, registry path)."""
    d = tempfile.mkdtemp(prefix="seedgrid-serve-")
    spec = chaos_spec(d, name, seeds, sleep_ms)
    p = subprocess.run([SEEDGRID, "run", spec, "--workers", "2"], cwd=d, env=sweep_env(),
                       capture_output=True, text=True, timeout=240)
    if p.returncode not in (0, 3):  # 3: shards failed, as planned
        shutil.rmtree(d, ignore_errors=True)
        raise AssertionError(f"seedgrid run: {p.returncode}\n{p.stdout}\n{p.stderr}")
    return d, os.path.join(d, "runs", "registry.sqlite")

#!/usr/bin/env python3
"""`seedgrid serve` response times on a large registry (BENCHMARKS.md §8).

  bench/serve/run.py --registry REG --sweep NAME [--seedgrid build/seedgrid] [--reps 7]

Starts `seedgrid serve` on the registry, requests every route the page uses for a sweep (what
a browser fetches to draw the sweep page and to poll it), `--reps` times each after one warm-up
request, and prints the median and the worst time per route, as a Markdown table.
Make a registry of 10^6 shards with a `noop` sweep (BENCHMARKS.md §1):
  printf 'name: big\\nkind: noop\\nseeds: 1000000\\nresources: {isolation: inline}\\n' > big.yaml
  seedgrid run big.yaml --workers 1 --out /tmp/sg1m/runs -q --max-shards 2000000
"""
import argparse
import http.client
import json
import os
import statistics
import subprocess
import sys
import time

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--registry", required=True)
    ap.add_argument("--sweep", required=True)
    ap.add_argument("--seedgrid", default=os.path.join(ROOT, "build", "seedgrid"))
    ap.add_argument("--reps", type=int, default=7)
    a = ap.parse_args()
    # The server makes one aggregate pass over every sweep before it listens: the time to its
    # banner, less the same for an empty registry, is what one pass costs (how far the counts of
    # this sweep lag behind its events while it runs).
    t0 = time.perf_counter()
    srv = subprocess.Popen([a.seedgrid, "serve", "--registry", a.registry, "--port", "0"],
                           stdout=subprocess.PIPE, text=True)
    try:
        banner = srv.stdout.readline()
        startup = time.perf_counter() - t0
        port = int(banner.split()[2].split("//")[1].split("/")[0].rsplit(":", 1)[1])
        c = http.client.HTTPConnection("127.0.0.1", port, timeout=60)

        def get(path):
            t = time.perf_counter()
            c.request("GET", path)
            r = c.getresponse()
            body = r.read()
            dt = time.perf_counter() - t
            if r.status != 200:
                sys.exit(f"{path}: {r.status} {body[:200]!r}")
            return dt, body

        _, body = get(f"/api/sweeps/{a.sweep}")
        total = json.loads(body)["total"]
        routes = [
            ("version poll", "/api/version"),
            ("sweep list", "/api/sweeps"),
            ("sweep page: summary, failed, report", f"/api/sweeps/{a.sweep}"),
            ("sweep page: first shard page", f"/api/sweeps/{a.sweep}/shards?limit=50&after=0"),
            ("shard page near the end", f"/api/sweeps/{a.sweep}/shards?limit=50&after={total - 100}"),
            ("shards filtered by status (none match: full scan)",
             f"/api/sweeps/{a.sweep}/shards?limit=50&status=failed"),
        ]
        print(f"{total:,} shards in sweep {a.sweep}; {a.reps} requests per route after a warm-up\n")
        print("| route | median | worst |\n|---|---|---|")
        page = 0.0
        for name, path in routes:
            get(path)
            times = [get(path)[0] for _ in range(a.reps)]
            med = statistics.median(times)
            if name.startswith("sweep page"):
                page += med
            print(f"| {name} `{path}` | {med * 1000:.1f} ms | {max(times) * 1000:.1f} ms |")
        print(f"\nsweep page (its two requests): {page * 1000:.0f} ms")
        print(f"start-up to listening, one aggregate pass included: {startup:.2f} s")
    finally:
        srv.terminate()
        srv.wait()


if __name__ == "__main__":
    main()

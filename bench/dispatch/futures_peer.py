"""The peer: mpi4py.futures (Debian python3-mpi4py) dispatching no-op tasks to one worker.
Run as: mpirun -n 2 python3 -m mpi4py.futures futures_peer.py N OUT.json
Measures the synchronous round trip (submit().result(), one in flight) and map() throughput."""
import json
import sys
import time

from mpi4py.futures import MPIPoolExecutor


def noop(x):
    return x


def main():
    n = int(sys.argv[1])
    out = sys.argv[2]
    with MPIPoolExecutor() as ex:
        for i in range(200):  # warm-up
            ex.submit(noop, i).result()
        rtt = []
        t0 = time.perf_counter()
        for i in range(n):
            s = time.perf_counter()
            ex.submit(noop, i).result()
            rtt.append((time.perf_counter() - s) * 1e6)
        sync_s = time.perf_counter() - t0
        t0 = time.perf_counter()
        list(ex.map(noop, range(n), chunksize=1))
        map_s = time.perf_counter() - t0
    rtt.sort()
    q = lambda p: rtt[min(len(rtt) - 1, int(p * len(rtt)))]
    json.dump({"shards": n, "sync_per_s": n / sync_s, "map_per_s": n / map_s,
               "rtt_us": {"p50": q(0.5), "p90": q(0.9), "p99": q(0.99), "max": rtt[-1]}},
              open(out, "w"), indent=2)


if __name__ == "__main__":
    main()

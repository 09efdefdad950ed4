#!/usr/bin/python3
"""The token cache end to end (BENCHMARKS.md, section 13): for each corpus size, a JSONL corpus
(gen_corpus.py) is tokenized with GPT-2's tokenizer by the `tokens` shard the planner adds for a
pretrain stage reading it, through `seedgrid run` (one worker). Reported per size: the corpus
bytes, the tokens, the shard's wall time (its attempt's start to end in the registry), MB/s, and
its peak RSS (the registry's peak_rss_kb of the attempt: the executor's VmHWM, reset per shard),
and for contrast the peak RSS of the pretrain shard that reads the whole stream back (what
tokenizing in memory costs). /proc/loadavg before and after.
    bench/tokcache/run.py SEEDGRID_BIN GPT2_DIR WORK_DIR [SIZE_MB ...]   (default 10 100 300)"""
import os
import sqlite3
import subprocess
import sys

HERE = os.path.dirname(os.path.abspath(__file__))

SPEC = """name: tc{mb}
out: runs
stages:
  - name: base
    kind: pretrain
    params:
      model: {{vocab_size: 50257, d_model: 8, n_layers: 1, n_heads: 1, d_mlp: 8, context: 16,
               tie_embeddings: true}}
      data: {{source: text, path: corpus.jsonl, tokenizer: {tok}}}
      train: {{steps: 1, batch: 1, warmup: 0, loss: all}}
"""


def loadavg():
    with open("/proc/loadavg") as f:
        return " ".join(f.read().split()[:3])


def main():
    seedgrid, tok, work = sys.argv[1:4]
    sizes = [float(s) for s in sys.argv[4:]] or [10, 100, 300]
    env = dict(os.environ, OMPI_ALLOW_RUN_AS_ROOT="1", OMPI_ALLOW_RUN_AS_ROOT_CONFIRM="1",
               OMPI_MCA_rmaps_base_oversubscribe="1", OMP_WAIT_POLICY="PASSIVE",
               SEEDGRID_PROGRESS="plain")
    print(f"load before: {loadavg()}", flush=True)
    print("| corpus | bytes | tokens | rows | wall s | MB/s | peak RSS MiB | consumer's peak RSS MiB |")
    print("|---|---|---|---|---|---|---|---|")
    for mb in sizes:
        d = os.path.join(work, f"{mb:g}MB")
        os.makedirs(d, exist_ok=True)
        corpus = os.path.join(d, "corpus.jsonl")
        if not os.path.exists(corpus):
            subprocess.run([sys.executable, os.path.join(HERE, "gen_corpus.py"), corpus, str(mb)],
                           check=True)
        spec = os.path.join(d, "spec.yaml")
        with open(spec, "w") as f:
            f.write(SPEC.format(mb=f"{mb:g}".replace(".", "_"), tok=os.path.abspath(tok)))
        p = subprocess.run([seedgrid, "run", spec, "--workers", "1"], cwd=d, env=env,
                           capture_output=True, text=True)
        if p.returncode != 0:
            sys.exit(f"seedgrid run failed for {mb} MB:\n{p.stdout}\n{p.stderr}")
        con = sqlite3.connect(os.path.join(d, "runs", "registry.sqlite"))
        (shard, start, end, rss), = con.execute(
            "select a.shard, a.start, a.\"end\", a.peak_rss_kb from attempts a join shards s on "
            "s.id=a.shard where s.kind='tokens' and a.outcome='ok' order by a.n desc limit 1")
        m = dict(con.execute("select name, value from metrics where shard=?", (shard,)))
        (consumer,), = con.execute(
            "select max(a.peak_rss_kb) from attempts a join shards s on s.id=a.shard where "
            "s.kind='pretrain' and a.outcome='ok'")
        wall = end - start
        print(f"| {mb:g} MB | {int(m['bytes'])} | {int(m['tokens'])} | {int(m['rows'])} | "
              f"{wall:.1f} | {m['bytes'] / 1e6 / wall:.2f} | {rss / 1024:.0f} | {consumer / 1024:.0f} |",
              flush=True)
    print(f"load after: {loadavg()}")


if __name__ == "__main__":
    main()

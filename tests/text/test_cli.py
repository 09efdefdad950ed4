"""`seedgrid tokenize`'s contract (docs/tokenizers.md) on a small tokenizer.json written here:
--text, --jsonl (file and stdin), --no-special, --decode, and exit 2 with FILE:LINE for bad
input. SEEDGRID_BIN names the binary."""
import json
import os
import subprocess
import tempfile
import unittest

BIN = os.environ.get("SEEDGRID_BIN", "build/seedgrid")


def byte_char(b):
    """GPT-2's printable stand-in for byte b."""
    printable = list(range(ord("!"), ord("~") + 1)) + list(range(0xA1, 0xAD)) + list(range(0xAE, 0x100))
    if b in printable:
        return chr(b)
    return chr(256 + sorted(set(range(256)) - set(printable)).index(b))


def write_bos_tokenizer(d):
    """A byte-level BPE tokenizer.json in d: the 256 bytes, the merge "a b" (id 256) and a <s>
    (257) that the post-processor puts in front (what --no-special leaves out)."""
    vocab = {byte_char(b): b for b in range(256)}
    vocab["ab"] = 256
    vocab["<s>"] = 257
    bl = {"type": "ByteLevel", "add_prefix_space": False, "use_regex": True}
    tok = {
        "normalizer": None, "pre_tokenizer": bl, "decoder": bl,
        "post_processor": {
            "type": "TemplateProcessing",
            "single": [{"SpecialToken": {"id": "<s>", "type_id": 0}},
                       {"Sequence": {"id": "A", "type_id": 0}}],
            "special_tokens": {"<s>": {"id": "<s>", "ids": [257], "tokens": ["<s>"]}}},
        "model": {"type": "BPE", "vocab": vocab, "merges": ["a b"]},
        "added_tokens": [{"id": 257, "content": "<s>", "special": True}],
    }
    with open(os.path.join(d, "tokenizer.json"), "w") as f:
        json.dump(tok, f)


class TokenizeCli(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.tmp = tempfile.TemporaryDirectory()
        cls.dir = cls.tmp.name
        write_bos_tokenizer(cls.dir)

    @classmethod
    def tearDownClass(cls):
        cls.tmp.cleanup()

    def run_tok(self, *args, stdin=None):
        return subprocess.run([BIN, "tokenize", self.dir, *args], input=stdin,
                              capture_output=True, text=True)

    def test_text_prints_the_ids(self):
        p = self.run_tok("--text", "ab é")
        self.assertEqual(p.returncode, 0, p.stderr)
        self.assertEqual(json.loads(p.stdout), [257, 256, 32, 195, 169])
        p = self.run_tok("--text", "ab", "--no-special")
        self.assertEqual(json.loads(p.stdout), [256])
        p = self.run_tok("--text", "")
        self.assertEqual(json.loads(p.stdout), [257])

    def test_jsonl_in_order_and_decode_back(self):
        lines = ["ab", "x<s>y", "", "tab\there\n"]
        path = os.path.join(self.dir, "in.jsonl")
        with open(path, "w") as f:
            f.write("".join(json.dumps(s) + "\n" for s in lines))
        p = self.run_tok("--jsonl", path, "--no-special")
        self.assertEqual(p.returncode, 0, p.stderr)
        ids = [json.loads(l) for l in p.stdout.splitlines()]
        self.assertEqual(ids[0], [256])
        self.assertEqual(ids[1], [ord("x"), 257, ord("y")])
        self.assertEqual(ids[2], [])
        back = self.run_tok("--decode", "--jsonl", "-", stdin=p.stdout)
        self.assertEqual([json.loads(l) for l in back.stdout.splitlines()], lines)
        # With the template's <s>, dropped again by --decode --no-special.
        p = self.run_tok("--jsonl", "-", stdin=json.dumps("ab") + "\n")
        self.assertEqual(json.loads(p.stdout), [257, 256])
        p = self.run_tok("--decode", "--no-special", "--text", "[257, 256]")
        self.assertEqual(json.loads(p.stdout), "ab")

    def test_bad_input_is_exit_2_with_file_and_line(self):
        path = os.path.join(self.dir, "bad.jsonl")
        with open(path, "w") as f:
            f.write('"ok"\n[1, 2]\n')
        p = self.run_tok("--jsonl", path)
        self.assertEqual(p.returncode, 2)
        self.assertIn(f"{path}:2: expected a JSON string", p.stderr)
        self.assertEqual(len(p.stdout.splitlines()), 1)
        p = self.run_tok("--decode", "--jsonl", "-", stdin="[1, 99999]\n")
        self.assertEqual(p.returncode, 2)
        self.assertIn("<stdin>:1: token id 99999 is not in the vocab", p.stderr)
        p = self.run_tok("--text", "\udcff")  # not valid UTF-8 once encoded by the OS
        self.assertEqual(p.returncode, 2)
        self.assertIn("not valid UTF-8", p.stderr)

    def test_unloadable_directory_is_exit_2(self):
        p = subprocess.run([BIN, "tokenize", os.path.join(self.dir, "nope"), "--text", "a"],
                           capture_output=True, text=True)
        self.assertEqual(p.returncode, 2)
        self.assertIn("not a directory", p.stderr)
        p = self.run_tok()
        self.assertEqual(p.returncode, 2)


if __name__ == "__main__":
    unittest.main()

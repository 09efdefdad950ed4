// The JS side of bench/tokenizer/run.sh (transformers.js's tokenizers as @lenml/tokenizers),
// measured exactly as bench_tokenizer.cpp: one cold pass, PASSES warm ones (median), ids of the
// first pass written for the comparison.
//   node bench_js.mjs NODE_MODULES_PARENT TOKENIZER_DIR CORPUS.jsonl IDS_OUT.jsonl [PASSES]
import fs from "node:fs";
import path from "node:path";
import { createRequire } from "node:module";
import { performance } from "node:perf_hooks";

const [modules, dir, corpusPath, outPath, passesArg] = process.argv.slice(2);
const passes = Number(passesArg ?? 3);
const require = createRequire(path.resolve(modules, "package.json"));
const { TokenizerLoader } = require("@lenml/tokenizers");
const readJson = (f) => JSON.parse(fs.readFileSync(path.join(dir, f), "utf8"));

const load0 = performance.now();
const tokenizer = TokenizerLoader.fromPreTrained({
  tokenizerJSON: readJson("tokenizer.json"),
  tokenizerConfig: fs.existsSync(path.join(dir, "tokenizer_config.json")) ? readJson("tokenizer_config.json") : {},
});
const loadS = (performance.now() - load0) / 1000;
const texts = fs.readFileSync(corpusPath, "utf8").split("\n").filter((l) => l).map((l) => JSON.parse(l));
const bytes = texts.reduce((n, t) => n + Buffer.byteLength(t, "utf8"), 0);

function encodeAll(keep) {
  const t0 = performance.now();
  for (const t of texts) {
    const ids = tokenizer.encode(t, { add_special_tokens: true });
    if (keep) keep.push(ids);
  }
  return (performance.now() - t0) / 1000;
}
const ids = [];
const cold = encodeAll(ids);
const warm = [];
for (let p = 0; p < passes; ++p) warm.push(encodeAll(null));
warm.sort((a, b) => a - b);
fs.writeFileSync(outPath, ids.map((x) => JSON.stringify(x)).join("\n") + "\n");
console.log(JSON.stringify({ bytes, load_s: loadS, cold_s: cold, warm_s: warm[Math.floor(warm.length / 2)] }));

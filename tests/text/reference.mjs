// The JS reference (transformers.js's tokenizers, as @lenml/tokenizers) for the comparisons:
//   node reference.mjs NODE_MODULES TOKENIZER_DIR CORPUS.jsonl OUT.jsonl
// For each corpus line writes {"ids": encode with special tokens, "plain": encode without,
// "decoded": decode(plain) with no clean-up, "skipped": decode(ids) skipping special tokens}.
// TOKENIZER_DIR holds tokenizer.json and tokenizer_config.json.
import fs from "node:fs";
import path from "node:path";
import { createRequire } from "node:module";

const [modules, dir, corpusPath, outPath] = process.argv.slice(2);
const require = createRequire(path.resolve(modules, "package.json"));
const { TokenizerLoader } = require("@lenml/tokenizers");

const readJson = (f) => JSON.parse(fs.readFileSync(path.join(dir, f), "utf8"));
const tokenizer = TokenizerLoader.fromPreTrained({
  tokenizerJSON: readJson("tokenizer.json"),
  tokenizerConfig: fs.existsSync(path.join(dir, "tokenizer_config.json"))
    ? readJson("tokenizer_config.json")
    : {},
});
const lines = fs.readFileSync(corpusPath, "utf8").split("\n").filter((l) => l.length > 0);
const out = [];
for (const line of lines) {
  const text = JSON.parse(line);
  const ids = tokenizer.encode(text, { add_special_tokens: true });
  const plain = tokenizer.encode(text, { add_special_tokens: false });
  // (decode refuses an empty array)
  const decode = (xs, skip) => xs.length === 0 ? "" :
    tokenizer.decode(xs, { skip_special_tokens: skip, clean_up_tokenization_spaces: false });
  const decoded = decode(plain, false);
  const skipped = decode(ids, true);
  out.push(JSON.stringify({ ids, plain, decoded, skipped }));
}
fs.writeFileSync(outPath, out.join("\n") + "\n");

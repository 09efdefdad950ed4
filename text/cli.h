// `seedgrid tokenize`: the tokenizers of text/ from the command line, for users and for the
// tests that compare them with the JS reference. The contract (docs/tokenizers.md):
//   seedgrid tokenize DIR --text S            the ids of S, as one JSON array
//   seedgrid tokenize DIR --jsonl F           one JSON string per line in, one JSON array of ids
//                                             per line out, in order ("-": stdin)
//   ... --decode                              the reverse: arrays of ids in, JSON strings out
//   ... --no-special                          no post-processor tokens (encode); special
//                                             tokens dropped (decode)
// A bad line is exit 2 with F:LINE; a tokenizer directory that cannot be loaded is exit 2.
#pragma once

#include <CLI/CLI.hpp>

#include <string>

namespace seedgrid::text {

struct TokenizeArgs {
  std::string dir;
  std::string text;
  bool has_text = false;  // --text given (it may be "")
  std::string jsonl;
  bool decode = false;
  bool no_special = false;
};

// Registers the subcommand on app; args is filled by app.parse.
CLI::App* AddTokenizeCommand(CLI::App& app, TokenizeArgs& args);
// Runs it: the process exit code (0, 1 I/O, 2 usage/bad input).
int RunTokenize(const TokenizeArgs& args);

}  // namespace seedgrid::text

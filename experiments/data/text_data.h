// The user's own text datasets (docs/data.md): JSONL, CSV and plain-text files named in a spec,
// their columns mapped by name, checked at plan time, hashed into the shard id, and tokenized
// through a tokenizer.json and a prompt template. No LibTorch.
//
// Files, by extension:
//   .jsonl   one JSON object per line (blank lines skipped); a cell is a string, or a number or
//            boolean (written as JSON); missing keys and nulls are missing cells
//   .csv     RFC 4180: a header row, then records; fields separated by commas, quoted with "
//            ("" inside quotes is one "), quoted fields may hold commas and newlines; CRLF or LF
//   .txt     one row per non-empty line, in column "text"
// Every row remembers its 1-based line in the file, so a problem reads "file:line: what".
//
// Plan-time checks (CheckTextData) report every problem at once as "data.<key>: file:line: …":
// a missing file, a missing column, an empty cell where one is required, a label that is not
// ±1, an empty split, an answer string that does not tokenize to exactly one token.
#pragma once

#include <cstdint>
#include <functional>
#include <map>
#include <stdexcept>
#include <string>
#include <string_view>
#include <vector>

#include "core/types.h"

namespace seedgrid::text {
class Tokenizer;
class PromptTemplate;
}  // namespace seedgrid::text

namespace seedgrid::data {

// A data file that cannot be used: "file:line: what".
class DataError : public std::runtime_error {
 public:
  using std::runtime_error::runtime_error;
};

struct Table {
  std::string path;
  std::vector<std::string> columns;                      // in first-seen order
  std::vector<std::map<std::string, std::string>> rows;  // column -> cell
  std::vector<int64_t> lines;                            // 1-based line of each row
  bool Has(const std::string& column) const;
};

// RFC 4180 records of `text` with the 1-based line each starts on. Throws DataError
// ("<origin>:line: ...") on an unterminated quote or text after a closing quote.
std::vector<std::vector<std::string>> ParseCsv(std::string_view text, const std::string& origin,
                                               std::vector<int64_t>* lines = nullptr);
// Reads a .jsonl, .csv or .txt file (see above). Throws DataError naming the file and line.
Table ReadTable(const std::string& path);

// The `data:` params of a text source, paths made absolute against the spec's directory.
struct TextDataSpec {
  std::string tokenizer, train, eval, neutral;  // absolute; "" when not given
  Json template_json;
  bool generation_prompt = true;
  std::map<std::string, std::string> columns;  // role (prompt, label, ...) -> column name
  std::vector<std::string> yes, no;
  int64_t max_len = 0;
  bool truncate_left = true;
  static TextDataSpec FromParams(const Json& data, const std::string& base_dir);
};

// A persona pair for θ+/θ− training.
struct PairRow {
  std::string system_pos, system_neg, prompt, response_pos, response_neg;
  int64_t line = 0;
};
// A steering evaluation row: the prompt (no persona), its label h = ±1.
struct EvalRow {
  std::string system, prompt;
  int label = 0;
  int64_t line = 0;
};

// Rows of a table under the column mapping; problems ("file:line: ...") are appended.
std::vector<PairRow> PairRows(const Table& t, const TextDataSpec& spec,
                              std::vector<std::string>& problems);
std::vector<EvalRow> EvalRows(const Table& t, const TextDataSpec& spec,
                              std::vector<std::string>& problems);
std::vector<std::string> NeutralRows(const Table& t, const TextDataSpec& spec,
                                     std::vector<std::string>& problems);

// Each answer string as its single token id; a string that is not exactly one token is a
// problem naming it and its ids.
std::vector<int32_t> AnswerIds(const text::Tokenizer& tok, const std::vector<std::string>& answers,
                               const std::string& key, std::vector<std::string>& problems);

// Every plan-time check of a text source (files, columns, labels, answers), as
// "data.<key>: message". `needs_train`: the train file is required (lora_steer).
std::vector<std::string> CheckTextData(const TextDataSpec& spec, bool needs_train);

// Sha256 over the bytes of every file the spec names (tokenizer files included): what makes an
// edited file change the shard id. Missing files are skipped (CheckTextData reports them).
std::string DigestTextData(const TextDataSpec& spec);

// The `data:` keys of a text source with their defaults (merged into a kind's data defaults,
// beside `source`), the static checks of their values, and the plan-time resolution a kind's
// resolve hook calls: with data.source text, every CheckTextData problem, data.digest set to
// DigestTextData, and the top-level `data_dir` (unhashed) set to the spec's directory, against
// which the runner makes the paths absolute.
Json TextDataDefaults();
std::vector<std::string> ValidateTextDataParams(const Json& params);
std::vector<std::string> ResolveTextData(Json& params, const std::string& spec_dir,
                                         bool needs_train);
inline constexpr char kDataDirParam[] = "data_dir";

// The non-empty `column` cells of a .txt, .jsonl or .csv file, row by row, read in one pass
// without holding the file: `fn(cell, line, bytes)` gets each cell, its 1-based line and the
// bytes of the file read so far. The rows are ReadTable's (same blank-line, null and CSV rules);
// throws DataError naming the file and line, and after the pass when no row had the column.
using CellFn = std::function<void(std::string_view cell, int64_t line, int64_t bytes)>;
void ForEachCell(const std::string& path, const std::string& column, const CellFn& fn);

// A pretraining corpus (pretrain's data.source: text; docs/data.md): the `column` cell of every
// row of a .txt, .jsonl or .csv file, each followed by a newline, encoded with the tokenizer's
// specials and concatenated into one stream (cut into windows by the runner). The token cache
// (experiments/tokens/cache.h) stores exactly these ids, row by row (CorpusRowIds).
std::vector<int32_t> CorpusRowIds(std::string_view cell, const text::Tokenizer& tok);
std::vector<int32_t> TokenizeCorpus(const std::string& path, const std::string& column,
                                    const text::Tokenizer& tok);
// pretrain's resolve: with data.source text, the corpus and tokenizer checked (the tokenizer's
// vocab must fit model.vocab_size), data.digest and `data_dir` set as ResolveTextData does.
std::vector<std::string> ResolveCorpus(Json& params, const std::string& spec_dir);
// The same checks for a kind that reads a corpus into a model it does not size (harvest, head
// ablation): the tokenizer must fit `vocab` (INT64_MAX when the model is not known at plan time:
// the runner checks then), named `vocab_name` in the problem. Sets data.digest and `data_dir`.
std::vector<std::string> ResolveCorpusData(Json& params, const std::string& spec_dir, int64_t vocab,
                                           const std::string& vocab_name);

// Token ids of a training pair or an eval prompt, truncated to max_len on the configured side.
struct Tokenized {
  std::vector<int32_t> ids;
  int64_t prompt_len = 0;  // ids[0, prompt_len) are the prompt (masked out of a loss)
};
class TextEncoder {
 public:
  TextEncoder(const text::Tokenizer& tok, const text::PromptTemplate& tmpl,
              const TextDataSpec& spec);
  // The prompt (with the generation tail) and the response; loss targets are the response.
  Tokenized Pair(std::string_view system, std::string_view prompt, std::string_view response) const;
  // The prompt alone, with the generation tail when generation_prompt; the answer is predicted
  // from its last token.
  Tokenized Prompt(std::string_view system, std::string_view prompt) const;
  // Plain text (no template), the tokenizer's specials added.
  Tokenized Plain(std::string_view text) const;

 private:
  Tokenized Truncate(std::vector<int32_t> prompt, std::vector<int32_t> response) const;
  const text::Tokenizer& tok_;
  const text::PromptTemplate& tmpl_;
  const TextDataSpec& spec_;
};

}  // namespace seedgrid::data

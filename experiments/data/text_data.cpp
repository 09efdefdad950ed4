#include "experiments/data/text_data.h"

#include <algorithm>
#include <filesystem>
#include <fstream>
#include <sstream>

#include <fmt/format.h>
#include <fmt/ranges.h>

#include "core/hash.h"
#include "text/template.h"
#include "text/tokenizer.h"

namespace seedgrid::data {
namespace {

namespace fs = std::filesystem;

std::string Slurp(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  if (!in) throw DataError(fmt::format("{}: cannot open", path));
  std::ostringstream s;
  s << in.rdbuf();
  return s.str();
}

std::string Extension(const std::string& path) { return fs::path(path).extension().string(); }

std::string CellText(const Json& v) { return v.is_string() ? v.get<std::string>() : v.dump(); }

Table ReadJsonl(const std::string& path, const std::string& text) {
  Table t;
  t.path = path;
  std::istringstream in(text);
  std::string line;
  for (int64_t n = 1; std::getline(in, line); ++n) {
    if (line.find_first_not_of(" \t\r") == std::string::npos) continue;
    Json j = Json::parse(line, nullptr, false);
    if (j.is_discarded() || !j.is_object())
      throw DataError(fmt::format("{}:{}: not a JSON object", path, n));
    std::map<std::string, std::string> row;
    for (const auto& [k, v] : j.items()) {
      if (std::find(t.columns.begin(), t.columns.end(), k) == t.columns.end())
        t.columns.push_back(k);
      if (!v.is_null()) row[k] = CellText(v);
    }
    t.rows.push_back(std::move(row));
    t.lines.push_back(n);
  }
  return t;
}

Table ReadCsv(const std::string& path, const std::string& text) {
  std::vector<int64_t> lines;
  auto records = ParseCsv(text, path, &lines);
  Table t;
  t.path = path;
  if (records.empty()) return t;
  t.columns = records[0];
  for (size_t r = 1; r < records.size(); ++r) {
    const auto& rec = records[r];
    if (rec.size() == 1 && rec[0].empty()) continue;  // a blank line
    if (rec.size() != t.columns.size())
      throw DataError(fmt::format("{}:{}: {} fields, the header has {}", path, lines[r], rec.size(),
                                  t.columns.size()));
    std::map<std::string, std::string> row;
    for (size_t c = 0; c < rec.size(); ++c) row[t.columns[c]] = rec[c];
    t.rows.push_back(std::move(row));
    t.lines.push_back(lines[r]);
  }
  return t;
}

Table ReadText(const std::string& path, const std::string& text) {
  Table t;
  t.path = path;
  t.columns = {"text"};
  std::istringstream in(text);
  std::string line;
  for (int64_t n = 1; std::getline(in, line); ++n) {
    if (!line.empty() && line.back() == '\r') line.pop_back();
    if (line.find_first_not_of(" \t") == std::string::npos) continue;
    t.rows.push_back({{"text", line}});
    t.lines.push_back(n);
  }
  return t;
}

// The cell of `role` in row r, or a problem when it is required and missing or empty.
std::string Cell(const Table& t, size_t r, const TextDataSpec& spec, const std::string& role,
                 bool required, std::vector<std::string>& problems) {
  const std::string& column = spec.columns.at(role);
  const auto it = t.rows[r].find(column);
  if (it != t.rows[r].end() && !it->second.empty()) return it->second;
  if (required)
    problems.push_back(fmt::format("{}:{}: empty or missing '{}' (the {} column)", t.path,
                                   t.lines[r], column, role));
  return {};
}

// Problems for required columns the table lacks (one per column, at its first line).
bool HasColumns(const Table& t, const TextDataSpec& spec, const std::vector<std::string>& roles,
                std::vector<std::string>& problems) {
  bool ok = true;
  for (const auto& role : roles) {
    const std::string& column = spec.columns.at(role);
    if (t.Has(column)) continue;
    problems.push_back(fmt::format("{}:{}: no column '{}' (the {} column; columns: {})", t.path,
                                   t.lines.empty() ? 1 : t.lines[0], column, role,
                                   fmt::join(t.columns, ", ")));
    ok = false;
  }
  if (t.rows.empty()) {
    problems.push_back(fmt::format("{}:1: no rows (an empty split)", t.path));
    ok = false;
  }
  return ok;
}

std::string Absolute(const Json& v, const std::string& base_dir) {
  const std::string s = v.get<std::string>();
  if (s.empty()) return s;
  const fs::path p(s);
  return (p.is_absolute() ? p : fs::path(base_dir) / p).lexically_normal().string();
}

}  // namespace

bool Table::Has(const std::string& column) const {
  return std::find(columns.begin(), columns.end(), column) != columns.end();
}

std::vector<std::vector<std::string>> ParseCsv(std::string_view text, const std::string& origin,
                                               std::vector<int64_t>* lines) {
  std::vector<std::vector<std::string>> records;
  std::vector<std::string> record;
  std::string field;
  int64_t line = 1, record_line = 1;
  size_t i = 0;
  const auto end_record = [&] {
    record.push_back(std::move(field));
    field.clear();
    records.push_back(std::move(record));
    record.clear();
    if (lines) lines->push_back(record_line);
  };
  while (i < text.size()) {
    const char c = text[i];
    if (c == '"' && field.empty()) {  // a quoted field
      const int64_t open_line = line;
      for (++i;; ++i) {
        if (i >= text.size())
          throw DataError(fmt::format("{}:{}: unterminated quoted field", origin, open_line));
        if (text[i] == '"') {
          if (i + 1 < text.size() && text[i + 1] == '"') {
            field += '"';
            ++i;
            continue;
          }
          ++i;
          break;
        }
        if (text[i] == '\n') ++line;
        field += text[i];
      }
      if (i < text.size() && text[i] != ',' && text[i] != '\n' && text[i] != '\r')
        throw DataError(fmt::format("{}:{}: text after a closing quote", origin, line));
      continue;
    }
    if (c == ',') {
      record.push_back(std::move(field));
      field.clear();
    } else if (c == '\n' || c == '\r') {
      end_record();
      if (c == '\r' && i + 1 < text.size() && text[i + 1] == '\n') ++i;
      record_line = ++line;
    } else {
      field += c;
    }
    ++i;
  }
  if (!field.empty() || !record.empty()) end_record();
  return records;
}

namespace {

// Whether a CSV record that began on an earlier line is still inside a quoted field after
// `line` (ParseCsv's quoting: a quote opens a field only at its start; "" inside is one quote).
bool InQuotes(std::string_view line, bool in_quotes) {
  bool field_start = !in_quotes;
  for (size_t i = 0; i < line.size(); ++i) {
    const char c = line[i];
    if (in_quotes) {
      if (c != '"') continue;
      if (i + 1 < line.size() && line[i + 1] == '"') {
        ++i;
      } else {
        in_quotes = false;
      }
    } else if (c == '"' && field_start) {
      in_quotes = true;
    }
    field_start = !in_quotes && c == ',';
  }
  return in_quotes;
}

// The file's lines in one pass: fn(line without '\n', its 1-based number, bytes read so far).
template <typename Fn>
void ForEachLine(const std::string& path, Fn&& fn) {
  std::ifstream in(path, std::ios::binary);
  if (!in) throw DataError(fmt::format("{}: cannot open", path));
  std::string line;
  int64_t bytes = 0;
  for (int64_t n = 1; std::getline(in, line); ++n) {
    bytes += static_cast<int64_t>(line.size()) + (in.eof() ? 0 : 1);
    fn(line, n, bytes);
  }
  if (in.bad()) throw DataError(fmt::format("{}: read error", path));
}

// CSV records, each parsed once its quotes close: header first, then fn(record, line, bytes).
void ForEachCsvRecord(const std::string& path,
                      const std::function<void(std::vector<std::string>&, int64_t, int64_t)>& fn) {
  std::string chunk;
  int64_t first = 0;
  bool quoted = false;
  const auto flush = [&](int64_t bytes) {
    std::vector<int64_t> lines;
    auto records = ParseCsv(chunk, path, &lines);
    for (size_t r = 0; r < records.size(); ++r) fn(records[r], first + lines[r] - 1, bytes);
    chunk.clear();
  };
  int64_t total = 0;
  ForEachLine(path, [&](std::string& line, int64_t n, int64_t bytes) {
    if (chunk.empty() && !quoted) first = n;
    if (!chunk.empty() || quoted) chunk += '\n';
    chunk += line;
    quoted = InQuotes(line, quoted);
    total = bytes;
    if (!quoted) flush(bytes);
  });
  if (!chunk.empty() || quoted) flush(total);  // an unterminated quote: ParseCsv says where
}

}  // namespace

void ForEachCell(const std::string& path, const std::string& column, const CellFn& fn) {
  const std::string ext = Extension(path);
  if (ext != ".jsonl" && ext != ".csv" && ext != ".txt")
    throw DataError(fmt::format("{}: unknown format '{}' (.jsonl, .csv or .txt)", path, ext));
  std::error_code ec;
  if (!fs::is_regular_file(path, ec)) throw DataError(fmt::format("{}: no such file", path));
  bool seen = false;
  std::vector<std::string> columns;
  if (ext == ".txt") {
    seen = column == "text";
    columns = {"text"};
    ForEachLine(path, [&](std::string& line, int64_t n, int64_t bytes) {
      if (!line.empty() && line.back() == '\r') line.pop_back();
      if (seen && line.find_first_not_of(" \t") != std::string::npos) fn(line, n, bytes);
    });
  } else if (ext == ".jsonl") {
    ForEachLine(path, [&](std::string& line, int64_t n, int64_t bytes) {
      if (line.find_first_not_of(" \t\r") == std::string::npos) return;
      const Json j = Json::parse(line, nullptr, false);
      if (j.is_discarded() || !j.is_object())
        throw DataError(fmt::format("{}:{}: not a JSON object", path, n));
      for (const auto& [k, v] : j.items())
        if (std::find(columns.begin(), columns.end(), k) == columns.end()) columns.push_back(k);
      const auto it = j.find(column);
      if (it == j.end()) return;
      seen = true;
      if (it->is_null()) return;
      const std::string cell = CellText(*it);
      if (!cell.empty()) fn(cell, n, bytes);
    });
  } else {
    size_t index = 0;
    ForEachCsvRecord(path, [&](std::vector<std::string>& rec, int64_t n, int64_t bytes) {
      if (columns.empty()) {
        columns = rec;
        const auto it = std::find(columns.begin(), columns.end(), column);
        seen = it != columns.end();
        index = static_cast<size_t>(it - columns.begin());
        return;
      }
      if (rec.size() == 1 && rec[0].empty()) return;  // a blank line
      if (rec.size() != columns.size())
        throw DataError(fmt::format("{}:{}: {} fields, the header has {}", path, n, rec.size(),
                                    columns.size()));
      if (seen && !rec[index].empty()) fn(rec[index], n, bytes);
    });
  }
  if (!seen)
    throw DataError(
        fmt::format("{}:1: no column '{}' (columns: {})", path, column, fmt::join(columns, ", ")));
}

Table ReadTable(const std::string& path) {
  const std::string ext = Extension(path);
  if (ext != ".jsonl" && ext != ".csv" && ext != ".txt")
    throw DataError(fmt::format("{}: unknown format '{}' (.jsonl, .csv or .txt)", path, ext));
  std::error_code ec;
  if (!fs::is_regular_file(path, ec)) throw DataError(fmt::format("{}: no such file", path));
  const std::string text = Slurp(path);
  if (ext == ".jsonl") return ReadJsonl(path, text);
  if (ext == ".csv") return ReadCsv(path, text);
  return ReadText(path, text);
}

TextDataSpec TextDataSpec::FromParams(const Json& data, const std::string& base_dir) {
  TextDataSpec s;
  s.tokenizer = Absolute(data.at("tokenizer"), base_dir);
  s.train = Absolute(data.at("train"), base_dir);
  s.eval = Absolute(data.at("eval"), base_dir);
  s.neutral = Absolute(data.at("neutral"), base_dir);
  s.template_json = data.at("template");
  s.generation_prompt = data.at("generation_prompt").get<bool>();
  for (const auto& [role, column] : data.at("columns").items())
    s.columns[role] = column.get<std::string>();
  if (data.contains("answers")) {  // the token cache's params leave them out
    for (const auto& a : data.at("answers").at("yes")) s.yes.push_back(a.get<std::string>());
    for (const auto& a : data.at("answers").at("no")) s.no.push_back(a.get<std::string>());
  }
  s.max_len = data.at("max_len").get<int64_t>();
  s.truncate_left = data.at("truncation").get<std::string>() == "left";
  return s;
}

std::vector<PairRow> PairRows(const Table& t, const TextDataSpec& spec,
                              std::vector<std::string>& problems) {
  std::vector<PairRow> out;
  if (!HasColumns(t, spec, {"prompt", "response_pos", "response_neg"}, problems)) return out;
  for (size_t r = 0; r < t.rows.size(); ++r) {
    PairRow row;
    row.prompt = Cell(t, r, spec, "prompt", true, problems);
    row.response_pos = Cell(t, r, spec, "response_pos", true, problems);
    row.response_neg = Cell(t, r, spec, "response_neg", true, problems);
    row.system_pos = Cell(t, r, spec, "system_pos", false, problems);
    row.system_neg = Cell(t, r, spec, "system_neg", false, problems);
    row.line = t.lines[r];
    out.push_back(std::move(row));
  }
  return out;
}

std::vector<EvalRow> EvalRows(const Table& t, const TextDataSpec& spec,
                              std::vector<std::string>& problems) {
  std::vector<EvalRow> out;
  if (!HasColumns(t, spec, {"prompt", "label"}, problems)) return out;
  for (size_t r = 0; r < t.rows.size(); ++r) {
    EvalRow row;
    row.prompt = Cell(t, r, spec, "prompt", true, problems);
    row.system = Cell(t, r, spec, "system", false, problems);
    const std::string label = Cell(t, r, spec, "label", true, problems);
    if (label == "1" || label == "+1" || label == "1.0")
      row.label = 1;
    else if (label == "-1" || label == "-1.0")
      row.label = -1;
    else if (!label.empty())
      problems.push_back(
          fmt::format("{}:{}: label '{}' is not 1 or -1", t.path, t.lines[r], label));
    row.line = t.lines[r];
    out.push_back(std::move(row));
  }
  return out;
}

std::vector<std::string> NeutralRows(const Table& t, const TextDataSpec& spec,
                                     std::vector<std::string>& problems) {
  std::vector<std::string> out;
  if (!HasColumns(t, spec, {"text"}, problems)) return out;
  for (size_t r = 0; r < t.rows.size(); ++r)
    out.push_back(Cell(t, r, spec, "text", true, problems));
  return out;
}

std::vector<int32_t> AnswerIds(const text::Tokenizer& tok, const std::vector<std::string>& answers,
                               const std::string& key, std::vector<std::string>& problems) {
  std::vector<int32_t> ids;
  if (answers.empty()) problems.push_back(key + ": give at least one answer string");
  for (const auto& a : answers) {
    const auto enc = tok.Encode(a, false);
    if (enc.size() == 1) {
      ids.push_back(enc[0]);
      continue;
    }
    problems.push_back(
        fmt::format("{}: '{}' is {} tokens ({}), not one: the answer is scored as "
                    "one next token",
                    key, a, enc.size(), fmt::join(enc, ", ")));
  }
  return ids;
}

std::vector<std::string> CheckTextData(const TextDataSpec& spec, bool needs_train) {
  std::vector<std::string> problems;
  const auto read = [&](const std::string& key, const std::string& path, auto&& rows) {
    if (path.empty()) {
      problems.push_back(fmt::format("data.{}: required when data.source is text", key));
      return;
    }
    try {
      std::vector<std::string> found;
      rows(ReadTable(path), found);
      for (auto& f : found) problems.push_back(fmt::format("data.{}: {}", key, f));
    } catch (const DataError& e) {
      problems.push_back(fmt::format("data.{}: {}", key, e.what()));
    }
  };
  if (needs_train)
    read("train", spec.train, [&](const Table& t, auto& p) { PairRows(t, spec, p); });
  read("eval", spec.eval, [&](const Table& t, auto& p) { EvalRows(t, spec, p); });
  read("neutral", spec.neutral, [&](const Table& t, auto& p) { NeutralRows(t, spec, p); });
  try {
    text::PromptTemplate::FromJson(spec.template_json);
  } catch (const text::TemplateError& e) {
    problems.push_back(std::string("data.") + e.what());
  }
  if (spec.tokenizer.empty()) {
    problems.push_back(
        "data.tokenizer: required when data.source is text (a directory with "
        "tokenizer.json)");
    return problems;
  }
  try {
    const auto tok = text::Tokenizer::FromDirectory(spec.tokenizer);
    AnswerIds(tok, spec.yes, "data.answers.yes", problems);
    AnswerIds(tok, spec.no, "data.answers.no", problems);
  } catch (const std::exception& e) {
    problems.push_back(fmt::format("data.tokenizer: {}: {}", spec.tokenizer, e.what()));
  }
  return problems;
}

std::string DigestTextData(const TextDataSpec& spec) {
  std::string all;
  const auto add = [&](const std::string& label, const fs::path& path) {
    std::error_code ec;
    if (path.empty() || !fs::is_regular_file(path, ec)) return;
    all += label + ":" + Sha256Hex(Slurp(path.string())) + "\n";
  };
  add("train", spec.train);
  add("eval", spec.eval);
  add("neutral", spec.neutral);
  if (!spec.tokenizer.empty()) {
    for (const char* f : {"tokenizer.json", "tokenizer_config.json", "vocab.json", "encoder.json",
                          "merges.txt", "vocab.bpe"})
      add(f, fs::path(spec.tokenizer) / f);
  }
  return Sha256Hex(all);
}

Json TextDataDefaults() {
  return {
      {"tokenizer", ""},
      {"template", "plain"},
      {"generation_prompt", true},
      {"train", ""},
      {"eval", ""},
      {"neutral", ""},
      {"columns",
       {{"prompt", "prompt"},
        {"response_pos", "response_pos"},
        {"response_neg", "response_neg"},
        {"system_pos", "system_pos"},
        {"system_neg", "system_neg"},
        {"system", "system"},
        {"label", "label"},
        {"text", "text"}}},
      {"answers", {{"yes", {" Yes"}}, {"no", {" No"}}}},
      {"max_len", 256},
      {"truncation", "left"},
      {"digest", ""},
  };
}

std::vector<std::string> ValidateTextDataParams(const Json& params) {
  std::vector<std::string> p;
  const Json& data = params.at("data");
  const auto source = data.at("source").get<std::string>();
  if (source != "synthetic" && source != "text")
    p.push_back(fmt::format("data.source: '{}' is not synthetic or text", source));
  if (data.at("max_len").get<int64_t>() < 2) p.push_back("data.max_len: must be >= 2");
  const auto trunc = data.at("truncation").get<std::string>();
  if (trunc != "left" && trunc != "right")
    p.push_back(fmt::format("data.truncation: '{}' is not left or right", trunc));
  for (const auto& [role, column] : data.at("columns").items())
    if (!column.is_string() || column.get<std::string>().empty())
      p.push_back(fmt::format("data.columns.{}: expected a column name", role));
  for (const char* side : {"yes", "no"})
    for (const auto& a : data.at("answers").at(side))
      if (!a.is_string())
        p.push_back(fmt::format("data.answers.{}: {} is not a string", side, a.dump()));
  if (data.at("digest") != "")
    p.push_back("data.digest: set by seedgrid from the data files; do not set it in the spec");
  if (params.at(kDataDirParam) != "")
    p.push_back(std::string(kDataDirParam) +
                ": set by seedgrid (the spec's directory); do not set it");
  return p;
}

std::vector<std::string> ResolveTextData(Json& params, const std::string& spec_dir,
                                         bool needs_train) {
  if (params.at("data").at("source") != "text") return {};
  const auto spec = TextDataSpec::FromParams(params.at("data"), spec_dir);
  auto problems = CheckTextData(spec, needs_train);
  params["data"]["digest"] = DigestTextData(spec);
  params[kDataDirParam] = spec_dir;
  return problems;
}

std::vector<int32_t> CorpusRowIds(std::string_view cell, const text::Tokenizer& tok) {
  return tok.Encode(std::string(cell) + "\n", true);
}

std::vector<int32_t> TokenizeCorpus(const std::string& path, const std::string& column,
                                    const text::Tokenizer& tok) {
  std::vector<int32_t> stream;
  ForEachCell(path, column, [&](std::string_view cell, int64_t, int64_t) {
    const auto ids = CorpusRowIds(cell, tok);
    stream.insert(stream.end(), ids.begin(), ids.end());
  });
  return stream;
}

std::vector<std::string> ResolveCorpus(Json& params, const std::string& spec_dir) {
  const int64_t vocab = params.at("model").at("vocab_size").get<int64_t>();
  return ResolveCorpusData(params, spec_dir, vocab, "model.vocab_size");
}

std::vector<std::string> ResolveCorpusData(Json& params, const std::string& spec_dir, int64_t vocab,
                                           const std::string& vocab_name) {
  Json& data = params.at("data");
  if (data.at("source") != "text") return {};
  std::vector<std::string> problems;
  TextDataSpec spec;
  spec.train = Absolute(data.at("path"), spec_dir);
  spec.tokenizer = Absolute(data.at("tokenizer"), spec_dir);
  if (spec.train.empty()) problems.push_back("data.path: required when data.source is text");
  if (spec.tokenizer.empty())
    problems.push_back("data.tokenizer: required when data.source is text");
  if (problems.empty()) {
    try {
      const auto tok = text::Tokenizer::FromDirectory(spec.tokenizer);
      if (static_cast<int64_t>(tok.VocabSize()) > vocab)
        problems.push_back(fmt::format("data.tokenizer: {} has {} tokens but {} is {}",
                                       spec.tokenizer, tok.VocabSize(), vocab_name, vocab));
      const Table t = ReadTable(spec.train);
      const std::string column = data.at("column").get<std::string>();
      if (!t.Has(column))
        problems.push_back(fmt::format("data.column: {}:1: no column '{}' (columns: {})",
                                       spec.train, column, fmt::join(t.columns, ", ")));
      else if (t.rows.empty())
        problems.push_back(fmt::format("data.path: {}:1: no rows (an empty corpus)", spec.train));
    } catch (const DataError& e) {
      problems.push_back(fmt::format("data.path: {}", e.what()));
    } catch (const std::exception& e) {
      problems.push_back(fmt::format("data.tokenizer: {}: {}", spec.tokenizer, e.what()));
    }
  }
  data["digest"] = DigestTextData(spec);
  params[kDataDirParam] = spec_dir;
  return problems;
}

TextEncoder::TextEncoder(const text::Tokenizer& tok, const text::PromptTemplate& tmpl,
                         const TextDataSpec& spec)
    : tok_(tok), tmpl_(tmpl), spec_(spec) {}

Tokenized TextEncoder::Truncate(std::vector<int32_t> prompt, std::vector<int32_t> response) const {
  Tokenized t;
  t.prompt_len = static_cast<int64_t>(prompt.size());
  t.ids = std::move(prompt);
  t.ids.insert(t.ids.end(), response.begin(), response.end());
  const int64_t excess = static_cast<int64_t>(t.ids.size()) - spec_.max_len;
  if (excess <= 0) return t;
  if (spec_.truncate_left) {
    t.ids.erase(t.ids.begin(), t.ids.begin() + excess);
    t.prompt_len = std::max<int64_t>(0, t.prompt_len - excess);
  } else {
    t.ids.resize(static_cast<size_t>(spec_.max_len));
    t.prompt_len = std::min(t.prompt_len, spec_.max_len);
  }
  return t;
}

Tokenized TextEncoder::Pair(std::string_view system, std::string_view prompt,
                            std::string_view response) const {
  return Truncate(tok_.Encode(tmpl_.Prompt(system, prompt, true), !tmpl_.has_bos()),
                  tok_.Encode(tmpl_.Response(response), false));
}

Tokenized TextEncoder::Prompt(std::string_view system, std::string_view prompt) const {
  return Truncate(
      tok_.Encode(tmpl_.Prompt(system, prompt, spec_.generation_prompt), !tmpl_.has_bos()), {});
}

Tokenized TextEncoder::Plain(std::string_view text) const {
  return Truncate(tok_.Encode(text, true), {});
}

}  // namespace seedgrid::data

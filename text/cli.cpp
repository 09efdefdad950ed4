#include "text/cli.h"

#include <fmt/format.h>
#include <nlohmann/json.hpp>

#include <cstdio>
#include <fstream>
#include <iostream>

#include "text/tokenizer.h"

namespace seedgrid::text {

using Json = nlohmann::json;

CLI::App* AddTokenizeCommand(CLI::App& app, TokenizeArgs& args) {
  auto* cmd = app.add_subcommand(
      "tokenize", "Encode or decode text with a Hugging Face tokenizer directory (tokenizer.json)");
  cmd->add_option("dir", args.dir, "Directory with tokenizer.json (+ tokenizer_config.json)")
      ->required();
  auto* text = cmd->add_option_function<std::string>(
      "--text",
      [&args](const std::string& s) {
        args.text = s;
        args.has_text = true;
      },
      "One text (or, with --decode, a JSON array of ids)");
  auto* jsonl = cmd->add_option("--jsonl", args.jsonl,
                                "One JSON string per line (or, with --decode, a JSON array of "
                                "ids per line); - for stdin");
  text->excludes(jsonl);
  cmd->add_flag("--decode", args.decode, "Ids to text instead of text to ids");
  cmd->add_flag(
      "--no-special", args.no_special,
      "Encode without the post-processor's special tokens; decode without special tokens");
  return cmd;
}

namespace {

std::string Dump(const Json& j) { return j.dump(-1, ' ', false, Json::error_handler_t::replace); }

// One input item (a line or --text) to one output line; throws std::invalid_argument.
std::string Convert(const Tokenizer& tok, const TokenizeArgs& a, std::string_view item,
                    bool raw_text) {
  if (a.decode) {
    Json j = Json::parse(item);
    if (!j.is_array()) throw std::invalid_argument("expected a JSON array of token ids");
    std::vector<int32_t> ids;
    ids.reserve(j.size());
    for (const auto& v : j) {
      if (!v.is_number_integer()) throw std::invalid_argument("expected integer token ids");
      ids.push_back(v.get<int32_t>());
    }
    return Dump(Json(tok.Decode(ids, a.no_special)));
  }
  std::string text;
  if (raw_text) {
    text = std::string(item);
  } else {
    Json j = Json::parse(item);
    if (!j.is_string()) throw std::invalid_argument("expected a JSON string");
    text = j.get<std::string>();
  }
  return Dump(Json(tok.Encode(text, !a.no_special)));
}

int RunLines(const Tokenizer& tok, const TokenizeArgs& a, std::istream& in,
             const std::string& name) {
  std::string line, out;
  size_t lineno = 0;
  while (std::getline(in, line)) {
    ++lineno;
    if (!line.empty() && line.back() == '\r') line.pop_back();
    try {
      out = Convert(tok, a, line, false);
    } catch (const std::exception& e) {
      std::fflush(stdout);
      fmt::print(stderr, "seedgrid tokenize: {}:{}: {}\n", name, lineno, e.what());
      return 2;
    }
    out.push_back('\n');
    if (std::fwrite(out.data(), 1, out.size(), stdout) != out.size()) {
      fmt::print(stderr, "seedgrid tokenize: writing stdout failed\n");
      return 1;
    }
  }
  if (in.bad()) {
    fmt::print(stderr, "seedgrid tokenize: {}: read failed\n", name);
    return 1;
  }
  return 0;
}

}  // namespace

int RunTokenize(const TokenizeArgs& a) {
  if (a.jsonl.empty() && !a.has_text) {
    fmt::print(stderr, "seedgrid tokenize: give --text S or --jsonl F\n");
    return 2;
  }
  try {
    Tokenizer tok = Tokenizer::FromDirectory(a.dir);
    if (a.jsonl.empty()) {
      fmt::print("{}\n", Convert(tok, a, a.text, true));
      return 0;
    }
    if (a.jsonl == "-") return RunLines(tok, a, std::cin, "<stdin>");
    std::ifstream in(a.jsonl, std::ios::binary);
    if (!in) {
      fmt::print(stderr, "seedgrid tokenize: {}: cannot open\n", a.jsonl);
      return 2;
    }
    return RunLines(tok, a, in, a.jsonl);
  } catch (const std::exception& e) {
    fmt::print(stderr, "seedgrid tokenize: {}\n", e.what());
    return 2;
  }
}

}  // namespace seedgrid::text

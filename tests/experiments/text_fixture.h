// Text fixtures of the torch-free text tests (text_data_test, token_cache_test): a tiny
// byte-level tokenizer and a lora_steer text spec with its data files.
#pragma once

#include <filesystem>
#include <fstream>
#include <string>

#include "core/types.h"
#include "text/unicode.h"

namespace seedgrid::data {

namespace fs = std::filesystem;

inline void WriteFile(const fs::path& p, const std::string& text) {
  std::ofstream(p, std::ios::binary) << text;
}

// A byte-level tokenizer whose " Yes" and " No" are single tokens (ids 256..260 are merges).
inline void WriteTokenizer(const fs::path& dir) {
  fs::create_directories(dir);
  const auto& b = text::ByteToUnicode();
  Json vocab = Json::object();
  for (int i = 0; i < 256; ++i) vocab[b[static_cast<size_t>(i)]] = i;
  const std::string sp = b[' '];
  vocab[sp + "Y"] = 256;
  vocab[sp + "Ye"] = 257;
  vocab[sp + "Yes"] = 258;
  vocab[sp + "N"] = 259;
  vocab[sp + "No"] = 260;
  Json bl = {{"type", "ByteLevel"}, {"add_prefix_space", false}, {"use_regex", true}};
  Json tok = {{"normalizer", nullptr},
              {"pre_tokenizer", bl},
              {"post_processor", nullptr},
              {"decoder", bl},
              {"added_tokens", Json::array()},
              {"model",
               {{"type", "BPE"},
                {"vocab", vocab},
                {"merges", {sp + " Y", sp + "Y e", sp + "Ye s", sp + " N", sp + "N o"}}}}};
  WriteFile(dir / "tokenizer.json", tok.dump());
}

// A lora_steer stage on text data in directory `dir`.
inline std::string SteerSpec(const std::string& extra = "") {
  return "name: t\nstages:\n  - name: steer\n    kind: lora_steer\n    seeds: 1\n    params:\n"
         "      base: /nowhere\n      data:\n        source: text\n        tokenizer: tok\n"
         "        train: pairs.jsonl\n        eval: eval.csv\n        neutral: neutral.txt\n" +
         extra;
}

inline void WriteData(const fs::path& dir) {
  WriteTokenizer(dir / "tok");
  WriteFile(dir / "pairs.jsonl",
            "{\"prompt\": \"Q1\", \"response_pos\": \" Yes\", \"response_neg\": \" No\"}\n");
  WriteFile(dir / "eval.csv", "prompt,label\n\"Is it, though?\",1\nNo way,-1\n");
  WriteFile(dir / "neutral.txt", "Some neutral text.\n");
}

}  // namespace seedgrid::data

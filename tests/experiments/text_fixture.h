// Text fixtures of the text tests (text_data_test, token_cache_test, harvest_text_test,
// ablation_test): tiny byte-level tokenizers, a lora_steer text spec with its data files, and
// planning a spec file.
#pragma once

#include <filesystem>
#include <fstream>
#include <string>
#include <utility>
#include <vector>

#include "core/spec.h"
#include "core/types.h"
#include "experiments/all_kinds.h"
#include "text/unicode.h"

namespace seedgrid::data {

namespace fs = std::filesystem;

inline void WriteFile(const fs::path& p, const std::string& text) {
  std::ofstream(p, std::ios::binary) << text;
}

// GPT-2's byte-level scheme: the 256 byte tokens, then one merge per entry of `merges` (each a
// pair of byte strings as written, " " included), ids 256, 257, ... in order.
inline void WriteByteBpeTokenizer(const fs::path& dir,
                                  const std::vector<std::pair<std::string, std::string>>& merges) {
  fs::create_directories(dir);
  const auto& b = text::ByteToUnicode();
  const auto mapped = [&](const std::string& raw) {
    std::string out;
    for (unsigned char c : raw) out += b[c];
    return out;
  };
  Json vocab = Json::object();
  for (int i = 0; i < 256; ++i) vocab[b[static_cast<size_t>(i)]] = i;
  Json merge_list = Json::array();
  for (const auto& [l, r] : merges) {
    vocab[mapped(l + r)] = static_cast<int>(vocab.size());
    merge_list.push_back(mapped(l) + " " + mapped(r));
  }
  Json bl = {{"type", "ByteLevel"}, {"add_prefix_space", false}, {"use_regex", true}};
  Json tok = {{"normalizer", nullptr},
              {"pre_tokenizer", bl},
              {"post_processor", nullptr},
              {"decoder", bl},
              {"added_tokens", Json::array()},
              {"model", {{"type", "BPE"}, {"vocab", vocab}, {"merges", merge_list}}}};
  WriteFile(dir / "tokenizer.json", tok.dump());
}

// A byte-level tokenizer whose " Yes" and " No" are single tokens (ids 256..260 are merges).
inline void WriteTokenizer(const fs::path& dir) {
  WriteByteBpeTokenizer(dir, {{" ", "Y"}, {" Y", "e"}, {" Ye", "s"}, {" ", "N"}, {" N", "o"}});
}

// The problems `seedgrid run --dry-run` would print for a spec file ("" when it plans).
inline std::string PlanProblems(const fs::path& spec) {
  try {
    LoadSpec(spec.string(), {}, AllKinds());
  } catch (const SpecError& e) {
    return e.what();
  }
  return "";
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

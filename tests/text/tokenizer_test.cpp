// Whole tokenizers from small tokenizer.json texts written here: added tokens cut before
// normalization (lstrip/rstrip), the template's special tokens, decode, GPT-2's two-file form,
// and the errors a user sees. The real files are compared with the JS reference by
// compare_with_js.py.
#include <gtest/gtest.h>
#include <unistd.h>

#include <filesystem>
#include <fstream>

#include <nlohmann/json.hpp>

#include "text/tokenizer.h"
#include "text/unicode.h"

namespace seedgrid::text {
namespace {

using Json = nlohmann::json;
using Ids = std::vector<int32_t>;
namespace fs = std::filesystem;

// A byte-level tokenizer over a few bytes: every single byte of "abc h\n" plus two merges.
Json ByteLevelJson() {
  Json vocab = Json::object();
  int id = 0;
  for (unsigned char c : std::string("abch \n")) vocab[ByteToUnicode()[c]] = id++;
  vocab["ab"] = id++;                        // 6
  vocab[ByteToUnicode()[' '] + "h"] = id++;  // 7: " h"
  Json bl = {{"type", "ByteLevel"}, {"add_prefix_space", false}, {"use_regex", true}};
  return {{"normalizer", nullptr},
          {"pre_tokenizer", bl},
          {"post_processor",
           {{"type", "TemplateProcessing"},
            {"single", Json::parse(R"([{"SpecialToken": {"id": "<bos>", "type_id": 0}},
                                       {"Sequence": {"id": "A", "type_id": 0}},
                                       {"SpecialToken": {"id": "<eos>", "type_id": 0}}])")},
            {"special_tokens",
             {{"<bos>", {{"id", "<bos>"}, {"ids", {100}}, {"tokens", {"<bos>"}}}},
              {"<eos>", {{"id", "<eos>"}, {"ids", {101}}, {"tokens", {"<eos>"}}}}}}}},
          {"decoder", bl},
          {"model",
           {{"type", "BPE"}, {"vocab", vocab}, {"merges", {"a b", ByteToUnicode()[' '] + " h"}}}},
          {"added_tokens", Json::parse(R"([
             {"id": 100, "content": "<bos>", "special": true},
             {"id": 101, "content": "<eos>", "special": true},
             {"id": 102, "content": "<tool>", "special": false, "lstrip": true, "rstrip": true},
             {"id": 103, "content": "<tool_call>", "special": false}])")}};
}

Tokenizer Load(const Json& j) { return Tokenizer::FromJsonText(j.dump()); }

TEST(Tokenizer, EncodesWithTheTemplateAndWithout) {
  Tokenizer tok = Load(ByteLevelJson());
  EXPECT_EQ(tok.Encode("ab h", true), (Ids{100, 6, 7, 101}));
  EXPECT_EQ(tok.Encode("ab h", false), (Ids{6, 7}));
  EXPECT_EQ(tok.Encode("", true), (Ids{100, 101}));
}

TEST(Tokenizer, AddedTokensAreCutFirstLongestMatchWins) {
  Tokenizer tok = Load(ByteLevelJson());
  // <tool_call> (longest) rather than <tool> + "_call>"; "<bos>" in the text is the token.
  EXPECT_EQ(tok.Encode("a<tool_call>b<bos>", false), (Ids{0, 103, 1, 100}));
  // lstrip/rstrip: <tool> eats the spaces and newline around it.
  EXPECT_EQ(tok.Encode("ab  <tool> \nc", false), (Ids{6, 102, 2}));
  EXPECT_EQ(tok.Encode("ab  <tool_call> c", false), (Ids{6, 4, 4, 103, 4, 2}));
}

TEST(Tokenizer, NormalizedAddedTokensMatchAfterTheNormalizer) {
  Json j = ByteLevelJson();
  j["normalizer"] = {{"type", "Lowercase"}};
  j["added_tokens"] = Json::parse(R"([
      {"id": 100, "content": "<bos>", "special": true, "normalized": false},
      {"id": 101, "content": "<eos>", "special": true, "normalized": false},
      {"id": 102, "content": "<tool>", "special": false, "normalized": true},
      {"id": 103, "content": "<BIG>", "special": false, "normalized": false}])");
  Tokenizer tok = Load(j);
  // "<TOOL>" lowercases to "<tool>": a normalized token matches in the normalized text.
  EXPECT_EQ(tok.Encode("a<TOOL>", false), (Ids{0, 102}));
  // "<BIG>" is matched in the raw text, before the lowercase could change it.
  EXPECT_EQ(tok.Encode("<BIG>b", false), (Ids{103, 1}));
}

TEST(Tokenizer, DecodesBackAndSkipsSpecials) {
  Tokenizer tok = Load(ByteLevelJson());
  Ids ids = tok.Encode("ab h\nca<tool_call>", true);
  EXPECT_EQ(tok.Decode(ids), "<bos>ab h\nca<tool_call><eos>");
  EXPECT_EQ(tok.Decode(ids, /*skip_special=*/true), "ab h\nca<tool_call>");
  EXPECT_TRUE(tok.IsSpecial(100));
  EXPECT_FALSE(tok.IsSpecial(103));
  EXPECT_EQ(tok.TokenToId("<tool>"), 102);
  EXPECT_EQ(tok.IdToToken(6), "ab");
  EXPECT_THROW(tok.Decode(Ids{55}), std::out_of_range);
}

TEST(Tokenizer, RejectsInvalidUtf8Input) {
  Tokenizer tok = Load(ByteLevelJson());
  EXPECT_THROW(tok.Encode("ab\xFF"), std::invalid_argument);
}

TEST(Tokenizer, SentencePieceStyleWithByteFallback) {
  Json j = Json::parse(R"({
    "normalizer": {"type": "Sequence", "normalizers": [
      {"type": "Prepend", "prepend": "▁"},
      {"type": "Replace", "pattern": {"String": " "}, "content": "▁"}]},
    "pre_tokenizer": null,
    "post_processor": null,
    "decoder": {"type": "Sequence", "decoders": [
      {"type": "Replace", "pattern": {"String": "▁"}, "content": " "},
      {"type": "ByteFallback"}, {"type": "Fuse"},
      {"type": "Strip", "content": " ", "start": 1, "stop": 0}]},
    "model": {"type": "BPE", "unk_token": "<unk>", "byte_fallback": true, "fuse_unk": true,
      "vocab": {"<unk>": 0, "<0xE2>": 1, "<0x82>": 2, "<0xAC>": 3, "▁": 4, "h": 5, "i": 6,
                "▁h": 7, "▁hi": 8},
      "merges": ["▁ h", "▁h i"]},
    "added_tokens": []})");
  Tokenizer tok = Load(j);
  Ids ids = tok.Encode("hi \xE2\x82\xAC");  // "hi €"
  EXPECT_EQ(ids, (Ids{8, 4, 1, 2, 3}));
  EXPECT_EQ(tok.Decode(ids), "hi \xE2\x82\xAC");
}

class TempDir {
 public:
  TempDir() {
    std::string tmpl = (fs::temp_directory_path() / "seedgrid-tok-XXXXXX").string();
    path_ = ::mkdtemp(tmpl.data());
  }
  ~TempDir() {
    std::error_code ec;
    fs::remove_all(path_, ec);
  }
  const fs::path& path() const { return path_; }

 private:
  fs::path path_;
};

void Write(const fs::path& p, const std::string& text) {
  std::ofstream(p, std::ios::binary) << text;
}

TEST(Tokenizer, LoadsGpt2VocabAndMergesFiles) {
  TempDir dir;
  Json vocab = {{"a", 0},
                {"b", 1},
                {"ab", 2},
                {ByteToUnicode()[' '], 3},
                {ByteToUnicode()[' '] + "ab", 4},
                {"<|endoftext|>", 5}};
  Write(dir.path() / "vocab.json", vocab.dump());
  Write(dir.path() / "merges.txt", "#version: 0.2\na b\n" + ByteToUnicode()[' '] + " ab\n");
  Tokenizer tok = Tokenizer::FromDirectory(dir.path());
  EXPECT_EQ(tok.Encode("ab ab<|endoftext|>"), (Ids{2, 4, 5}));
  EXPECT_EQ(tok.Decode(Ids{2, 4, 5}), "ab ab<|endoftext|>");
  EXPECT_TRUE(tok.IsSpecial(5));
}

TEST(Tokenizer, ErrorsSayWhatAndWhere) {
  TempDir dir;
  EXPECT_THROW(Tokenizer::FromDirectory(dir.path() / "missing"), TokenizerError);
  try {
    Tokenizer::FromDirectory(dir.path());
    FAIL();
  } catch (const TokenizerError& e) {
    EXPECT_NE(std::string(e.what()).find("no tokenizer.json"), std::string::npos) << e.what();
  }
  Json j = ByteLevelJson();
  j["model"]["type"] = "WordPiece";
  Write(dir.path() / "tokenizer.json", j.dump());
  try {
    Tokenizer::FromDirectory(dir.path());
    FAIL();
  } catch (const TokenizerError& e) {
    std::string msg = e.what();
    EXPECT_NE(msg.find("tokenizer.json: model.type: unsupported 'WordPiece'"), std::string::npos)
        << msg;
  }
  Write(dir.path() / "tokenizer.json", "{not json");
  EXPECT_THROW(Tokenizer::FromDirectory(dir.path()), TokenizerError);
}

}  // namespace
}  // namespace seedgrid::text

// The pieces under the tokenizers: UTF-8 handling, normalization forms, GPT-2's byte map,
// Oniguruma patterns, HF's split behaviours, and the BPE merge order.
#include <gtest/gtest.h>

#include <nlohmann/json.hpp>

#include "text/bpe.h"
#include "text/components.h"
#include "text/regex.h"
#include "text/unicode.h"

namespace seedgrid::text {
namespace {

using Json = nlohmann::json;
using Strings = std::vector<std::string>;

TEST(Unicode, LossyDecodingReplacesEachMaximalInvalidSubpart) {
  EXPECT_EQ(Utf8Lossy("ok \xC3\xA9"), "ok \xC3\xA9");
  // A truncated 3-byte sequence is one U+FFFD, then the next character.
  EXPECT_EQ(Utf8Lossy("\xE2\x82"
                      "a"),
            "\xEF\xBF\xBD"
            "a");
  // F0 80: F0 needs 90..BF next, so F0 and 80 are replaced separately.
  EXPECT_EQ(Utf8Lossy("\xF0\x80"), "\xEF\xBF\xBD\xEF\xBF\xBD");
  // A surrogate encoded in UTF-8 is invalid: ED A0 80 -> three replacements.
  EXPECT_EQ(Utf8Lossy("\xED\xA0\x80"), "\xEF\xBF\xBD\xEF\xBF\xBD\xEF\xBF\xBD");
  EXPECT_EQ(FindInvalidUtf8("ab\xFF"), 2u);
  EXPECT_EQ(FindInvalidUtf8("h\xC3\xA9llo"), std::string_view::npos);
}

TEST(Unicode, NormalizationForms) {
  EXPECT_EQ(Normalize("e\xCC\x81", NormForm::kNFC), "\xC3\xA9");  // e + acute -> é
  EXPECT_EQ(Normalize("\xC3\xA9", NormForm::kNFD), "e\xCC\x81");
  EXPECT_EQ(Normalize("\xEF\xAC\x81", NormForm::kNFKC), "fi");  // ﬁ ligature
  EXPECT_EQ(Normalize("\xEF\xAC\x81", NormForm::kNFC), "\xEF\xAC\x81");
  EXPECT_EQ(Lowercase("ÀB\xCE\xA3"), "àb\xCF\x83");
  EXPECT_EQ(StripMarks(Normalize("café", NormForm::kNFD)), "cafe");
}

TEST(Unicode, TrimsUnicodeWhitespace) {
  EXPECT_EQ(TrimStart(" \t\xC2\xA0x "), "x ");
  EXPECT_EQ(TrimEnd(" x\n\xE3\x80\x80"), " x");
  EXPECT_EQ(TrimEnd("\xC3\xA9"), "\xC3\xA9");
}

TEST(Unicode, Gpt2ByteMap) {
  EXPECT_EQ(ByteToUnicode()[' '], "\xC4\xA0");   // Ġ
  EXPECT_EQ(ByteToUnicode()['\n'], "\xC4\x8A");  // Ċ
  EXPECT_EQ(ByteToUnicode()['a'], "a");
  for (int b = 0; b < 256; ++b) {
    size_t i = 0;
    EXPECT_EQ(UnicodeToByte(NextCodePoint(ByteToUnicode()[b], i)), b);
  }
  EXPECT_EQ(UnicodeToByte(U'\u4E2D'), -1);
}

Strings Pieces(std::string_view s, const std::vector<std::pair<size_t, size_t>>& spans) {
  Strings out;
  for (auto [b, e] : spans) out.emplace_back(s.substr(b, e - b));
  return out;
}

TEST(Regex, Gpt2PatternAsHfSplitsIt) {
  Regex re(R"('s|'t|'re|'ve|'m|'ll|'d| ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+|\s+(?!\S)|\s+)");
  std::string s = "Hello world's  12 café!\n\n";
  EXPECT_EQ(Pieces(s, re.FindAll(s)),
            (Strings{"Hello", " world", "'s", " ", " 12", " café", "!", "\n\n"}));
}

TEST(Regex, CaseInsensitiveGroupAndUnicodeClasses) {
  Regex re(R"((?i:'s|'ll)|\p{N}{1,3})");
  std::string s = "IT'S we'LL 12345";
  EXPECT_EQ(Pieces(s, re.FindAll(s)), (Strings{"'S", "'LL", "123", "45"}));
  EXPECT_THROW(Regex("(unclosed"), std::invalid_argument);
}

TEST(Split, EveryBehaviour) {
  std::string s = "a-b--c";
  std::vector<std::pair<size_t, size_t>> dashes = {{1, 2}, {3, 4}, {4, 5}};
  EXPECT_EQ(SplitBy(s, dashes, SplitBehavior::kRemoved, false), (Strings{"a", "b", "c"}));
  EXPECT_EQ(SplitBy(s, dashes, SplitBehavior::kIsolated, false),
            (Strings{"a", "-", "b", "-", "-", "c"}));
  EXPECT_EQ(SplitBy(s, dashes, SplitBehavior::kMergedWithPrevious, false),
            (Strings{"a-", "b-", "-", "c"}));
  EXPECT_EQ(SplitBy(s, dashes, SplitBehavior::kMergedWithNext, false),
            (Strings{"a", "-b", "-", "-c"}));
  EXPECT_EQ(SplitBy(s, dashes, SplitBehavior::kContiguous, false),
            (Strings{"a", "-", "b", "--", "c"}));
  // invert: the matches are the words, what lies between them the delimiters.
  EXPECT_EQ(SplitBy(s, dashes, SplitBehavior::kRemoved, true), (Strings{"-", "-", "-"}));
}

TEST(PreTokenizer, ByteLevelMapsBytesAndSplits) {
  auto pre = MakePreTokenizer(
      Json{{"type", "ByteLevel"}, {"add_prefix_space", true}, {"use_regex", true}}, "p");
  Strings words{"hi there\n"};
  pre->Apply(words, 0);
  EXPECT_EQ(words, (Strings{"\xC4\xA0hi", "\xC4\xA0there", "\xC4\x8A"}));
}

TEST(PreTokenizer, MetaspacePrependsOnlyOnTheFirstSectionWithSchemeFirst) {
  auto pre = MakePreTokenizer(
      Json{{"type", "Metaspace"}, {"replacement", "\u2581"}, {"prepend_scheme", "first"}}, "p");
  Strings first{"a b"}, later{"a b"};
  pre->Apply(first, 0);
  pre->Apply(later, 2);
  EXPECT_EQ(first, (Strings{"\u2581a", "\u2581b"}));
  EXPECT_EQ(later, (Strings{"a", "\u2581b"}));
}

TEST(PreTokenizer, DigitsAndSequence) {
  auto pre = MakePreTokenizer(Json::parse(R"({"type": "Sequence", "pretokenizers": [
      {"type": "WhitespaceSplit"}, {"type": "Digits", "individual_digits": true}]})"),
                              "p");
  Strings words{"ab12 x3"};
  pre->Apply(words, 0);
  EXPECT_EQ(words, (Strings{"ab", "1", "2", "x", "3"}));
}

TEST(Components, UnknownTypesNameTheirPlace) {
  try {
    MakePreTokenizer(Json::parse(R"({"type": "Sequence", "pretokenizers": [{"type": "Nope"}]})"),
                     "pre_tokenizer");
    FAIL();
  } catch (const TokenizerError& e) {
    EXPECT_NE(std::string(e.what()).find("pre_tokenizer.pretokenizers[0]: unsupported type 'Nope'"),
              std::string::npos)
        << e.what();
  }
  EXPECT_THROW(MakeNormalizer(Json{{"type", "BertNormalizer"}}, "n"), TokenizerError);
  EXPECT_THROW(MakeDecoder(Json{{"type", "CTC"}}, "d", nullptr), TokenizerError);
}

TEST(Decoder, ByteFallbackFuseStrip) {
  auto dec = MakeDecoder(Json::parse(R"({"type": "Sequence", "decoders": [
      {"type": "Replace", "pattern": {"String": "▁"}, "content": " "},
      {"type": "ByteFallback"}, {"type": "Fuse"},
      {"type": "Strip", "content": " ", "start": 1, "stop": 0}]})"),
                         "d", nullptr);
  Strings tokens{"\u2581Hi", "<0xE4>", "<0xB8>", "<0xAD>", "\u2581x", "<0xFF>"};
  dec->Apply(tokens);
  EXPECT_EQ(tokens, (Strings{"Hi\xE4\xB8\xAD x\xEF\xBF\xBD"}));
}

TEST(Decoder, MetaspaceDropsTheFirstPrependedSpace) {
  auto dec = MakeDecoder(
      Json{{"type", "Metaspace"}, {"replacement", "\u2581"}, {"prepend_scheme", "first"}}, "d",
      nullptr);
  Strings tokens{"\u2581Hi", "\u2581there"};
  dec->Apply(tokens);
  EXPECT_EQ(tokens, (Strings{"Hi", " there"}));
}

TEST(Decoder, ByteLevelKeepsAddedTokensAndReplacesCutCharacters) {
  std::unordered_set<std::string> added{"<x>"};
  auto dec = MakeDecoder(Json{{"type", "ByteLevel"}}, "d", &added);
  // "é" is C3 A9: its first byte alone, then an added token, then "a b".
  Strings tokens{ByteToUnicode()[0xC3], "<x>", "a", ByteToUnicode()[' '] + "b"};
  dec->Apply(tokens);
  EXPECT_EQ(tokens, (Strings{"\xEF\xBF\xBD", "<x>", "a b"}));
}

// A toy vocab: characters, then merges in rank order.
Bpe ToyBpe(Bpe::Options opt = {}) {
  Vocab v{{"a", 0},   {"b", 1},  {"c", 2},     {"ab", 3},     {"bc", 4},
          {"abc", 5}, {"aa", 6}, {"<unk>", 7}, {"<0xC3>", 8}, {"<0xA9>", 9}};
  return Bpe(v, {{"b", "c"}, {"a", "b"}, {"a", "bc"}, {"a", "a"}}, opt);
}

std::vector<int32_t> Word(const Bpe& bpe, std::string_view w) {
  std::vector<int32_t> ids;
  bpe.EncodeWord(w, ids);
  return ids;
}

TEST(Bpe, LowestRankFirstThenLeftmost) {
  Bpe bpe = ToyBpe();
  // "abc": b+c (rank 0) before a+b (rank 1), then a+bc.
  EXPECT_EQ(Word(bpe, "abc"), (std::vector<int32_t>{5}));
  // "ab" + "c" would need a+b first; rank order gives bc: "abcab" -> abc, ab.
  EXPECT_EQ(Word(bpe, "abcab"), (std::vector<int32_t>{5, 3}));
  // "aaa": equal ranks merge leftmost first -> aa, a.
  EXPECT_EQ(Word(bpe, "aaa"), (std::vector<int32_t>{6, 0}));
  // Cached: the same again.
  EXPECT_EQ(Word(bpe, "aaa"), (std::vector<int32_t>{6, 0}));
}

TEST(Bpe, ByteFallbackUnkAndFuse) {
  Bpe::Options opt;
  opt.unk_token = "<unk>";
  opt.byte_fallback = true;
  EXPECT_EQ(Word(ToyBpe(opt), "a\xC3\xA9"), (std::vector<int32_t>{0, 8, 9}));  // é as bytes
  EXPECT_EQ(Word(ToyBpe(opt), "axy"), (std::vector<int32_t>{0, 7, 7}));        // no <0x78>
  opt.byte_fallback = false;
  opt.fuse_unk = true;
  EXPECT_EQ(Word(ToyBpe(opt), "xyab"), (std::vector<int32_t>{7, 3}));
  EXPECT_THROW(Word(ToyBpe(), "x"), std::runtime_error);
}

TEST(Bpe, IgnoreMergesTakesWholeVocabWords) {
  Vocab v{{"a", 0}, {"b", 1}, {"c", 2}, {"ab", 3}, {"bc", 4}, {"abc", 5}};
  Bpe::Options opt;
  opt.ignore_merges = true;
  // Merges alone would give a + bc; the word is in the vocab, so it is one token.
  Bpe bpe(v, {{"b", "c"}}, opt);
  EXPECT_EQ(Word(bpe, "abc"), (std::vector<int32_t>{5}));
  EXPECT_EQ(Word(bpe, "abcc"), (std::vector<int32_t>{0, 4, 2}));
}

TEST(Bpe, MergesOutsideTheVocabAreRejected) {
  Vocab v{{"a", 0}, {"b", 1}};
  EXPECT_THROW(Bpe(v, {{"a", "b"}}, {}), std::invalid_argument);
}

}  // namespace
}  // namespace seedgrid::text

// harvest over a text corpus (experiments/harvest/text.h): examples decoded around the firing
// token, the plan-time checks of data.source text (file:line), the corpus digest in the shard id,
// and end to end through RunHarvest on a tiny pretrained model: a text harvest equals a file
// harvest of the same ids bit for bit, map shards + reduce equal one shard (decoded examples
// included), and every decoded example is the decode of its stored ids, which are the corpus
// stream's tokens at (window, position).
#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <filesystem>
#include <fstream>
#include <numeric>

#include <fmt/format.h>

#include "core/spec.h"
#include "core/store.h"
#include "experiments/all_kinds.h"
#include "experiments/data/text_data.h"
#include "experiments/data/tokens.h"
#include "experiments/harvest/files.h"
#include "experiments/harvest/harvest.h"
#include "experiments/harvest/layout.h"
#include "experiments/harvest/text.h"
#include "experiments/model/config.h"
#include "experiments/pretrain/pretrain.h"
#include "test_context.h"
#include "tests/experiments/harvest_fixtures.h"
#include "tests/experiments/text_fixture.h"
#include "tests/experiments/token_cache_fixture.h"
#include "tests/support/file_context.h"
#include "text/tokenizer.h"
#include "text/unicode.h"

namespace seedgrid::harvest {
namespace {

namespace fs = std::filesystem;
namespace L = harvest_layout;
using ::testing::HasSubstr;
using testing::TempDir;

void WriteFile(const fs::path& p, const std::string& text) {
  std::ofstream(p, std::ios::binary) << text;
}

constexpr int64_t kTokenizerVocab = 258;

// GPT-2's byte-level scheme with 256 byte tokens and two merges (" t" 256, " th" 257).
void WriteByteTokenizer(const fs::path& dir) {
  data::WriteByteBpeTokenizer(dir, {{" ", "t"}, {" t", "h"}});
}

std::vector<int32_t> Ids(const text::Tokenizer& tok, const std::string& s) {
  return tok.Encode(s, false);
}

// ---- Decoding --------------------------------------------------------------------------------

TEST(HarvestTextDecode, SplitsTheWindowAroundTheFiringToken) {
  TempDir d;
  WriteByteTokenizer(d.path());
  const auto tok = text::Tokenizer::FromDirectory(d.path());
  const auto ids = Ids(tok, "a the");  // a, " th", e... : [a, " th", e]
  ASSERT_EQ(ids.size(), 3u);
  // context 2, the firing token in the middle; the row starts one token before the window.
  const std::vector<int32_t> window = {-1, ids[0], ids[1], ids[2], -1};
  const DecodedExample e = DecodeExample(tok, window, 2);
  EXPECT_EQ(e.prefix, "a");
  EXPECT_EQ(e.token, " th");
  EXPECT_EQ(e.suffix, "e");
  const DecodedExample edge = DecodeExample(tok, std::vector<int32_t>{-1, ids[0], -1}, 1);
  EXPECT_EQ(edge.prefix, "");
  EXPECT_EQ(edge.token, "a");
  EXPECT_EQ(edge.suffix, "");
  EXPECT_THROW(DecodeExample(tok, window, 1), std::invalid_argument);
}

TEST(HarvestTextDecode, ABrokenCharacterBecomesTheReplacementCharacter) {
  TempDir d;
  WriteByteTokenizer(d.path());
  const auto tok = text::Tokenizer::FromDirectory(d.path());
  const auto ids = Ids(tok, "xé");  // x, 0xC3, 0xA9: é is two byte tokens
  ASSERT_EQ(ids.size(), 3u);
  const DecodedExample e = DecodeExample(tok, ids, 1);
  EXPECT_EQ(e.prefix, "x");
  EXPECT_EQ(e.token, "é");  // widened to the character its byte belongs to
  EXPECT_EQ(e.suffix, "");
  // Cut at the window's edge, a character has no other bytes to join.
  const DecodedExample cut = DecodeExample(tok, std::vector<int32_t>{ids[0], ids[1], -1}, 1);
  EXPECT_EQ(cut.token, "\xEF\xBF\xBD");
}

// ---- Plan time --------------------------------------------------------------------------------

std::string TextSpec(const std::string& data_extra = "", const std::string& params_extra = "",
                     const std::string& path = "corpus.jsonl", const std::string& column = "body") {
  return "name: t\nstages:\n  - name: h\n    kind: harvest\n    params:\n      base: base\n" +
         params_extra + "      data:\n        source: text\n        path: " + path +
         "\n        column: " + column + "\n        window: 16\n" +
         (data_extra.find("tokenizer:") == std::string::npos ? "        tokenizer: tok\n" : "") +
         data_extra;
}

// A checkpoint directory with only config.json (what the plan reads) of model vocab `vocab`.
void WriteBaseConfig(const fs::path& dir, int64_t vocab) {
  fs::create_directories(dir);
  Json model = ModelConfig::ModelParamDefaults();
  model["vocab_size"] = vocab;
  WriteFile(dir / "config.json", ModelConfig::FromParams(model).ToHfJson().dump());
}

TEST(HarvestTextConfig, PlanTimeProblemsNameTheFileAndLine) {
  TempDir d;
  WriteByteTokenizer(d.path() / "tok");
  WriteBaseConfig(d.path() / "base", 300);
  WriteFile(d.path() / "corpus.jsonl", "{\"body\": \"one\"}\n{\"body\": \"two\"}\n");
  WriteFile(d.path() / "spec.yaml", TextSpec());
  EXPECT_EQ(data::PlanProblems(d.path() / "spec.yaml"), "");

  const std::string dir = d.str();
  WriteFile(d.path() / "spec.yaml", TextSpec("        rows: -1\n"));
  WriteFile(d.path() / "corpus.jsonl", "{\"text\": \"one\"}\n");
  std::string p = data::PlanProblems(d.path() / "spec.yaml");
  EXPECT_THAT(p, HasSubstr("data.column: " + dir + "/corpus.jsonl:1: no column 'body'"));
  EXPECT_THAT(p, HasSubstr("data.rows: must be >= 0"));
  EXPECT_THAT(p, HasSubstr("spec.yaml:")) << "a spec problem names the spec's line";

  WriteFile(d.path() / "empty.txt", "\n\n");
  WriteFile(d.path() / "spec.yaml", TextSpec("", "", "empty.txt", "text"));
  EXPECT_THAT(data::PlanProblems(d.path() / "spec.yaml"),
              HasSubstr("data.path: " + dir + "/empty.txt:1: no rows (an empty corpus)"));
  WriteFile(d.path() / "spec.yaml", TextSpec("", "", "missing.txt", "text"));
  EXPECT_THAT(data::PlanProblems(d.path() / "spec.yaml"),
              HasSubstr("data.path: " + dir + "/missing.txt"));

  WriteFile(d.path() / "corpus.jsonl", "{\"body\": \"one\"}\n");
  WriteBaseConfig(d.path() / "base", 100);  // the tokenizer's 258 tokens do not fit
  WriteFile(d.path() / "spec.yaml", TextSpec());
  EXPECT_THAT(
      data::PlanProblems(d.path() / "spec.yaml"),
      HasSubstr(fmt::format("data.tokenizer: {}/tok has {} tokens but base's vocab_size is 100",
                            dir, kTokenizerVocab)));

  WriteBaseConfig(d.path() / "base", 300);
  WriteFile(d.path() / "spec.yaml",
            TextSpec("        tokenizer: nowhere\n", "      reservoir: {context: 8}\n"));
  p = data::PlanProblems(d.path() / "spec.yaml");
  EXPECT_THAT(p, HasSubstr("data.window: 16 tokens cannot hold an example of reservoir.context 8"));
}

TEST(HarvestTextConfig, TheCorpusDigestIsInTheShardId) {
  TempDir d;
  WriteByteTokenizer(d.path() / "tok");
  WriteBaseConfig(d.path() / "base", 300);
  WriteFile(d.path() / "corpus.jsonl", "{\"body\": \"one\"}\n");
  WriteFile(d.path() / "spec.yaml", TextSpec());
  const auto id = [&] {
    const Plan plan =
        ExpandSpec(LoadSpec((d.path() / "spec.yaml").string(), {}, AllKinds()), AllKinds());
    EXPECT_EQ(plan.shards.at(0).key.params()["data"]["digest"].get<std::string>().size(), 64u);
    return plan.shards.at(0).key.id();
  };
  const auto before = id();
  EXPECT_EQ(id(), before);
  WriteFile(d.path() / "corpus.jsonl", "{\"body\": \"one!\"}\n");
  EXPECT_NE(id(), before);
}

// ---- End to end (LibTorch) --------------------------------------------------------------------

using FileContext = testing::FileShardContext;

InputArtifact PretrainByteModel(const fs::path& dir) {
  Json params = PretrainKindConfig().defaults;
  params["model"]["vocab_size"] = 300;  // the byte tokenizer's 258 ids fit
  params["model"]["d_mlp"] = 32;
  params["train"]["steps"] = 10;
  params["train"]["batch"] = 8;
  params["eval"]["rows"] = 8;
  return testing::PretrainFixture(dir, params);
}

// A corpus of lines with multi-byte characters, so some windows cut a character.
std::string Corpus() {
  std::string s;
  for (int i = 0; i < 40; ++i)
    s += fmt::format("Line {}: the café's thé, naïve {} — then the end.\n", i, i * 7 % 13);
  return s;
}

Json TextParams(const fs::path& dir) {
  Json p = HarvestKindConfig().defaults;
  p["data"]["source"] = "text";
  p["data"]["path"] = "corpus.txt";
  p["data"]["tokenizer"] = "tok";
  p["data"]["window"] = 20;
  p["data"]["rows"] = 0;
  p["data"]["batch"] = 8;
  p["data"]["digest"] = "d1";
  p[data::kDataDirParam] = dir.string();
  p["reservoir"] = {{"k", 4}, {"context", 3}, {"per_batch", 2}, {"weighting", "uniform"}};
  p["pmi"]["top_k"] = 5;
  return p;
}

// The byte tokenizer and Corpus() written into `dir`, and a text harvest's params over them.
Json WriteTextCorpus(const fs::path& dir) {
  WriteByteTokenizer(dir / "tok");
  WriteFile(dir / "corpus.txt", Corpus());
  return TextParams(dir);
}

std::string RunOne(const fs::path& dir, const std::string& id, const Json& params,
                   const std::string& role, const std::vector<InputArtifact>& inputs) {
  FileContext ctx(testing::HarvestTask(id, params, role, inputs), dir / (id + ".h5"), dir / id);
  RunHarvest(ctx);
  ctx.Close();
  return (dir / (id + ".h5")).string();
}

void ExpectSameStatistics(const std::string& a, const std::string& b) {
  const Accumulators x = ReadAccumulators(a), y = ReadAccumulators(b);
  EXPECT_EQ(x.n_tokens, y.n_tokens);
  EXPECT_EQ(x.firing_count, y.firing_count);
  EXPECT_EQ(x.act_sum_post, y.act_sum_post);
  EXPECT_EQ(x.act_sum_pre, y.act_sum_pre);
  EXPECT_EQ(x.cooc, y.cooc);
  EXPECT_EQ(x.in_cooc, y.in_cooc);
  EXPECT_EQ(x.out_cooc, y.out_cooc);
  EXPECT_EQ(x.reservoir.Canonical().key, y.reservoir.Canonical().key);
  EXPECT_EQ(x.reservoir.Canonical().tokens, y.reservoir.Canonical().tokens);
  H5Reader rx(a), ry(b);
  EXPECT_EQ(rx.Read<double>("firing_density"), ry.Read<double>("firing_density"));
}

// Every decoded example is its stored ids decoded, and those ids are the corpus stream's.
void ExpectDecodedFromTheStream(const std::string& file, const std::vector<int32_t>& stream,
                                const text::Tokenizer& tok, int64_t window, int64_t context) {
  H5Reader r(file);
  Shape shape;
  const auto row = r.Read<int64_t>("reservoir/row", &shape);
  const auto pos = r.Read<int32_t>("reservoir/pos");
  const auto tokens = r.Read<int32_t>("reservoir/tokens");
  const auto prefix = r.ReadStrings(L::kTextPrefix), token = r.ReadStrings(L::kTextToken),
             suffix = r.ReadStrings(L::kTextSuffix);
  ASSERT_EQ(prefix.size(), row.size());
  const int64_t W = 2 * context + 1;
  int64_t examples = 0;
  for (size_t i = 0; i < row.size(); ++i) {
    if (row[i] < 0) {
      EXPECT_EQ(prefix[i] + token[i] + suffix[i], "");
      continue;
    }
    ++examples;
    std::vector<int32_t> ids;
    for (int64_t j = 0; j < W; ++j) {
      const int32_t id = tokens[i * static_cast<size_t>(W) + static_cast<size_t>(j)];
      const int64_t at = pos[i] - context + j;  // position in the window (row)
      if (at < 0 || at >= window) {
        EXPECT_EQ(id, -1);
        continue;
      }
      EXPECT_EQ(id, stream[static_cast<size_t>(row[i] * window + at)]);
      ids.push_back(id);
    }
    EXPECT_EQ(prefix[i] + token[i] + suffix[i], tok.Decode(ids));
    const int32_t fired = stream[static_cast<size_t>(row[i] * window + pos[i])];
    const std::string alone = tok.Decode(std::vector<int32_t>{fired});
    if (alone.find("\xEF\xBF\xBD") ==
        std::string::npos) {  // a whole-character token is itself and re-encodes to itself
      EXPECT_EQ(token[i], alone);
      EXPECT_EQ(tok.Encode(token[i], false), std::vector<int32_t>{fired}) << token[i];
    } else {  // a byte of a character: the character it belongs to
      EXPECT_FALSE(token[i].empty());
    }
  }
  EXPECT_GT(examples, 0);
}

TEST(HarvestTextRunner, EqualsAFileHarvestOfTheSameIdsAndMapsReduceToOneShard) {
  TempDir d;
  const fs::path& dir = d.path();
  const InputArtifact base = PretrainByteModel(dir);
  const Json tp = WriteTextCorpus(dir);
  // The corpus's ids come from its token cache (the tokens shard the planner adds).
  const InputArtifact cache = testing::WriteCache(dir, tp.at("data"), "cache");
  const std::string text_file = RunOne(dir, "text000000000000", tp, "single", {base, cache});

  // The same ids, cut by hand (consecutive windows, the partial last one dropped), as a file.
  const auto tok = text::Tokenizer::FromDirectory(dir / "tok");
  const std::vector<int32_t> stream =
      data::TokenizeCorpus((dir / "corpus.txt").string(), "text", tok);
  const int64_t window = 20, rows = static_cast<int64_t>(stream.size()) / window;
  ASSERT_GT(rows, 40);
  {
    H5Writer w((dir / "ids.h5").string());
    WriteTokenDataset(w, "tokens",
                      std::vector<int32_t>(stream.begin(), stream.begin() + rows * window), rows,
                      window, 300);
  }
  Json fp = tp;
  fp["data"]["source"] = "file";
  fp["data"]["path"] = (dir / "ids.h5").string();
  const std::string file_file = RunOne(dir, "file000000000000", fp, "single", {base});
  ExpectSameStatistics(text_file, file_file);
  EXPECT_EQ(ReadAccumulators(text_file).n_rows, rows);
  EXPECT_FALSE(H5Reader(file_file).Has(L::kTextToken));  // only text sources decode

  // The eval set: the corpus digest and every window harvested.
  H5Reader r(text_file);
  EXPECT_EQ(r.AttrString("eval", "data_digest"), "d1");
  EXPECT_EQ(r.AttrInt("eval", "data_window"), window);
  std::vector<int64_t> all(static_cast<size_t>(rows));
  std::iota(all.begin(), all.end(), 0);
  EXPECT_EQ(r.Read<int64_t>(L::kEvalWindows), all);
  ExpectDecodedFromTheStream(text_file, stream, tok, window, 3);

  // Three map shards and the reduce: the single shard's statistics and decoded examples.
  std::vector<InputArtifact> maps;
  std::vector<int64_t> map_windows;
  for (int s = 0; s < 3; ++s) {
    Json p = tp;
    p["shard_index"] = s;
    p["shard_count"] = 3;
    const std::string id = fmt::format("map{:013d}", s);
    InputArtifact in;
    in.path = RunOne(dir, id, p, "map", {base, cache});
    in.key = ShardKey({.id = ShardId{id}, .kind = "harvest"}, p, Json::object());
    maps.push_back(in);
    const auto w = H5Reader(in.path).Read<int64_t>(L::kEvalWindows);
    map_windows.insert(map_windows.end(), w.begin(), w.end());
  }
  EXPECT_EQ(map_windows, all);  // the maps split the windows exactly
  Json rp = tp;
  rp["role"] = "reduce";
  rp["shard_count"] = 3;
  const std::string reduce_file = RunOne(dir, "reduce0000000000", rp, "reduce", maps);
  ExpectSameStatistics(reduce_file, text_file);
  H5Reader a(reduce_file), b(text_file);
  for (const char* ds : {L::kTextPrefix, L::kTextToken, L::kTextSuffix})
    EXPECT_EQ(a.ReadStrings(ds), b.ReadStrings(ds)) << ds;
  EXPECT_EQ(a.Read<int64_t>(L::kEvalWindows), all);
  // The report's Examples section reads single and reduce files (not the maps'): their
  // seedgrid_examples attribute names datasets the file has.
  for (const auto& f : {reduce_file, text_file}) {
    const auto attr = H5Reader(f).AttrString("/", L::kReportExamples);
    ASSERT_TRUE(attr) << f;
    const Json spec = Json::parse(*attr);
    for (const char* key : {"prefix", "token", "suffix", "items", "rank"})
      EXPECT_TRUE(H5Reader(f).Has(spec.at(key).get<std::string>())) << key;
  }
  EXPECT_FALSE(H5Reader(maps[0].path).AttrString("/", L::kReportExamples));
}

TEST(HarvestTextRunner, IdsOutsideTheModelsVocabFailNamingTheTokenizer) {
  TempDir d;
  const fs::path& dir = d.path();
  Json params = PretrainKindConfig().defaults;  // vocab 48: byte ids do not fit
  params["train"]["steps"] = 1;
  params["eval"]["rows"] = 4;
  const InputArtifact base = testing::PretrainFixture(dir, params);
  const Json tp = WriteTextCorpus(dir);
  const InputArtifact cache = testing::WriteCache(dir, tp.at("data"), "cache");
  try {
    RunOne(dir, "text000000000000", tp, "single", {base, cache});
    ADD_FAILURE() << "byte ids ran on a 48-token model";
  } catch (const std::runtime_error& e) {
    EXPECT_THAT(e.what(), HasSubstr("outside the model's vocab of 48"));
    EXPECT_THAT(e.what(), HasSubstr((dir / "tok").string()));
  }
}

// A text harvest reads its corpus from the token cache, not the file: without the tokens shard
// among its inputs it fails saying so, and with a cache of other text (another digest) too.
TEST(HarvestTextRunner, ReadsTheCorpusFromTheTokenCache) {
  TempDir d;
  const fs::path& dir = d.path();
  const InputArtifact base = PretrainByteModel(dir);
  const Json tp = WriteTextCorpus(dir);
  Json other = tp.at("data");
  other["digest"] = "another text";
  const InputArtifact stale = testing::WriteCache(dir, other, "stale");
  for (const auto& inputs : {std::vector<InputArtifact>{base}, std::vector{base, stale}}) {
    try {
      RunOne(dir, "text000000000000", tp, "single", inputs);
      ADD_FAILURE() << "harvested text without its token cache";
    } catch (const std::runtime_error& e) {
      EXPECT_THAT(e.what(), HasSubstr("no token cache for data digest d1"));
    }
  }
}

}  // namespace
}  // namespace seedgrid::harvest

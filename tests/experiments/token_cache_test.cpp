// The token cache (experiments/tokens/cache.h): the streaming row reader agrees with ReadTable,
// the writer's chunked appends read back whole, the cached ids equal tokenizing the files
// directly (corpus and lora_steer splits), and the planner adds one tokens shard per distinct
// text, needed by every shard reading it, with a new id when a file changes. No LibTorch.
#include <gtest/gtest.h>

#include <fmt/format.h>

#include "core/spec.h"
#include "core/store.h"
#include "experiments/all_kinds.h"
#include "experiments/data/text_data.h"
#include "experiments/tokens/cache.h"
#include "experiments/tokens/layout.h"
#include "test_context.h"
#include "text/template.h"
#include "text/tokenizer.h"
#include "text_fixture.h"
#include "token_cache_fixture.h"

namespace seedgrid::data {
namespace {

using testing::TempDir;
using testing::WriteCache;
namespace L = tokens_layout;

// Every (cell, line) ForEachCell gives.
std::vector<std::pair<std::string, int64_t>> Cells(const std::string& path,
                                                   const std::string& column) {
  std::vector<std::pair<std::string, int64_t>> out;
  ForEachCell(path, column, [&](std::string_view c, int64_t line, int64_t) {
    out.emplace_back(std::string(c), line);
  });
  return out;
}

// The same from ReadTable: the rows with a non-empty cell.
std::vector<std::pair<std::string, int64_t>> TableCells(const std::string& path,
                                                        const std::string& column) {
  const Table t = ReadTable(path);
  std::vector<std::pair<std::string, int64_t>> out;
  for (size_t r = 0; r < t.rows.size(); ++r) {
    const auto it = t.rows[r].find(column);
    if (it != t.rows[r].end() && !it->second.empty()) out.emplace_back(it->second, t.lines[r]);
  }
  return out;
}

TEST(ForEachCell, SameRowsAsReadTable) {
  TempDir d;
  const auto p = [&](const char* n) { return (d.path() / n).string(); };
  WriteFile(d.path() / "a.csv",
            "id,text\r\n1,\"multi\r\nline, \"\"quoted\"\"\"\r\n\r\n2,\r\n3,plain\r\n4,\"a\"\"b\"\n"
            "5,\"x\n\ny\"\n6,last");
  WriteFile(d.path() / "a.jsonl",
            "{\"text\": \"one\"}\n\n{\"text\": null}\n{\"other\": 1}\n{\"text\": 7}\n"
            "{\"text\": \"\\u00e9t\\u00e9 \\ud83d\\ude00\"}");
  WriteFile(d.path() / "a.txt", "one\r\n\n   \n two \nthree");
  for (const char* f : {"a.csv", "a.jsonl", "a.txt"}) {
    EXPECT_EQ(Cells(p(f), "text"), TableCells(p(f), "text")) << f;
    EXPECT_FALSE(Cells(p(f), "text").empty()) << f;
  }
  EXPECT_EQ(Cells(p("a.csv"), "text").at(0).first, "multi\r\nline, \"quoted\"");
  EXPECT_THROW(Cells(p("a.csv"), "nope"), DataError);
  EXPECT_THROW(Cells(p("a.txt"), "nope"), DataError);
  WriteFile(d.path() / "bad.csv", "text\n\"open\nstill open\n");
  EXPECT_THROW(Cells(p("bad.csv"), "text"), DataError);
  WriteFile(d.path() / "bad.jsonl", "{\"text\": \"a\"}\n[1]\n");
  try {
    Cells(p("bad.jsonl"), "text");
    ADD_FAILURE() << "no DataError";
  } catch (const DataError& e) {
    EXPECT_NE(std::string(e.what()).find("bad.jsonl:2:"), std::string::npos) << e.what();
  }
}

TEST(SplitWriter, AppendsInChunksAndReadsBack) {
  TempDir d;
  const std::string file = (d.path() / "s.h5").string();
  H5Writer w(file);
  std::vector<std::vector<int32_t>> rows;
  {
    SplitWriter s(file, "x", true, true, /*flush_tokens=*/3);
    for (int r = 0; r < 50; ++r) {
      rows.emplace_back();
      for (int i = 0; i < r % 7; ++i) rows.back().push_back(r * 10 + i);
      s.Append(rows.back(), 100 + r, r % 5, r % 2 ? 1 : -1);
    }
    s.Close();
    EXPECT_EQ(s.rows(), 50);
  }
  w.Attr("tokens", "format", std::string("corpus"));  // the store's handle sees the group
  w.Close();
  const TokenSplit t = ReadTokenSplit(file, "x");
  ASSERT_EQ(t.rows(), 50);
  for (int r = 0; r < 50; ++r) {
    EXPECT_EQ(t.Row(r), rows[static_cast<size_t>(r)]);
    EXPECT_EQ(t.line[static_cast<size_t>(r)], 100 + r);
    EXPECT_EQ(t.prompt_len[static_cast<size_t>(r)], r % 5);
    EXPECT_EQ(t.label[static_cast<size_t>(r)], r % 2 ? 1 : -1);
  }
  EXPECT_EQ(H5Reader(file).AttrString("tokens", "format"), "corpus");
  EXPECT_THROW(ReadTokenSplit(file, "y"), StoreError);
}

TEST(TokenCache, CorpusIdsEqualTokenizingTheFile) {
  TempDir d;
  WriteTokenizer(d.path() / "tok");
  std::string corpus;
  for (int i = 0; i < 300; ++i)
    corpus += fmt::format("{{\"text\": \"row {} says Yes, no\\t\\u00e9 {}\"}}\n", i, i * i);
  WriteFile(d.path() / "c.jsonl", corpus);
  const Json data = {{"source", "text"}, {"path", "c.jsonl"}, {"tokenizer", "tok"},
                     {"column", "text"}, {"digest", "abc"},   {"seed", 3}};
  const ShardInput in = WriteCache(d.path(), data, "cache");
  const auto tok = text::Tokenizer::FromDirectory(d.path() / "tok");
  const auto direct = TokenizeCorpus((d.path() / "c.jsonl").string(), "text", tok);
  EXPECT_EQ(CorpusTokens({in}, data), direct);
  const TokenSplit s = ReadTokenSplit(in.path, L::kCorpus);
  EXPECT_EQ(s.rows(), 300);
  EXPECT_EQ(s.line.back(), 300);
  const H5Reader r(in.path);
  EXPECT_EQ(r.AttrString(L::kGroup, L::kAttrDataDigest), "abc");
  EXPECT_EQ(r.AttrString(L::kGroup, L::kAttrFormat), "corpus");
  Json other = data;
  other["digest"] = "edited";  // a consumer of other text does not take this cache
  EXPECT_THROW(CorpusTokens({in}, other), std::runtime_error);
  EXPECT_THROW(CorpusTokens({}, data), std::runtime_error);
}

TEST(TokenCache, SteerSplitsEqualTheEncoder) {
  TempDir d;
  WriteData(d.path());
  Json data = TextDataDefaults();
  data.update({{"source", "text"},
               {"tokenizer", "tok"},
               {"train", "pairs.jsonl"},
               {"eval", "eval.csv"},
               {"neutral", "neutral.txt"},
               {"template", "chatml"},
               {"max_len", 6},
               {"digest", "d"}});
  const ShardInput in = WriteCache(d.path(), data, "steer");
  const auto spec = TextDataSpec::FromParams(data, d.path().string());
  const auto tok = text::Tokenizer::FromDirectory(spec.tokenizer);
  const auto tmpl = text::PromptTemplate::FromJson(spec.template_json);
  const TextEncoder enc(tok, tmpl, spec);
  const auto pos = ReadTokenSplit(in.path, L::kTrainPos);
  const auto want = enc.Pair("", "Q1", " Yes");
  EXPECT_EQ(pos.Row(0), want.ids);
  EXPECT_EQ(pos.prompt_len.at(0), want.prompt_len);
  EXPECT_EQ(ReadTokenSplit(in.path, L::kTrainNeg).Row(0), enc.Pair("", "Q1", " No").ids);
  const auto ev = ReadTokenSplit(in.path, L::kEval);
  ASSERT_EQ(ev.rows(), 2);
  EXPECT_EQ(ev.Row(0), enc.Prompt("", "Is it, though?").ids);
  EXPECT_EQ(ev.label, (std::vector<int64_t>{1, -1}));
  EXPECT_EQ(ev.line, (std::vector<int64_t>{2, 3}));
  EXPECT_EQ(ReadTokenSplit(in.path, L::kNeutral).Row(0), enc.Plain("Some neutral text.").ids);
  EXPECT_EQ(H5Reader(in.path).AttrString(L::kGroup, L::kAttrTemplate), "\"chatml\"");
}

// The plan of the spec file `spec`.
Plan ExpandFile(const fs::path& spec) {
  return ExpandSpec(LoadSpec(spec.string(), {}, AllKinds()), AllKinds());
}

// The tokens shards of a plan, and the needs of its other shards.
struct Planned {
  std::vector<const ShardPlan*> tokens, others;
};
Planned PlanOf(const fs::path& spec) {
  static std::vector<seedgrid::Plan> keep;  // the pointers outlive the call
  keep.push_back(ExpandFile(spec));
  Planned p;
  for (const auto& s : keep.back().shards)
    (s.key.kind() == "tokens" ? p.tokens : p.others).push_back(&s);
  return p;
}

TEST(TokenCachePlan, OneShardForEveryStageConfigAndSeedReadingTheSameText) {
  TempDir d;
  WriteData(d.path());
  // Two stages and a grid over a param tokenization does not read, three seeds, two answer
  // sets: one cache. A second template is a second cache.
  const std::string body =
      SteerSpec(
          "        answers: {yes: [' Yes'], no: [' No']}\n"
          "    grid: {train.lr: [0.1, 0.2]}\n") +
      "  - name: again\n    kind: lora_steer\n    seeds: 3\n    params:\n"
      "      base: /nowhere\n      data:\n        source: text\n        tokenizer: tok\n"
      "        train: pairs.jsonl\n        eval: eval.csv\n        neutral: neutral.txt\n"
      "        answers: {yes: [' Yes', ' Ye'], no: [' No']}\n";
  WriteFile(d.path() / "spec.yaml", body);
  const auto p = PlanOf(d.path() / "spec.yaml");
  ASSERT_EQ(p.tokens.size(), 1u);
  EXPECT_EQ(p.others.size(), 5u);
  const ShardId cache = p.tokens[0]->key.id();
  EXPECT_EQ(p.tokens[0]->key.stage(), "tokens");
  EXPECT_EQ(p.tokens[0]->key.params().at("format"), "steer");
  for (const ShardPlan* s : p.others) {
    const auto& needs = s->key.needs();
    EXPECT_NE(std::find(needs.begin(), needs.end(), cache), needs.end()) << s->key.stage();
  }
  const auto before = cache;
  WriteFile(d.path() / "neutral.txt", "Other neutral text.\n");  // an edited file
  const auto edited = PlanOf(d.path() / "spec.yaml");
  ASSERT_EQ(edited.tokens.size(), 1u);
  EXPECT_NE(edited.tokens[0]->key.id(), before);
  WriteFile(d.path() / "spec.yaml", body + "        template: chatml\n");
  EXPECT_EQ(PlanOf(d.path() / "spec.yaml").tokens.size(), 2u);
}

TEST(TokenCachePlan, TheImplicitStageDoesNotTakeAStagesName) {
  TempDir d;
  WriteData(d.path());
  WriteFile(d.path() / "spec.yaml",
            SteerSpec() + "  - name: tokens\n    kind: chaos\n    seeds: 1\n");
  const Plan plan = ExpandFile(d.path() / "spec.yaml");
  ASSERT_EQ(plan.spec.stages.size(), 3u);
  EXPECT_EQ(plan.spec.stages.back().name, "tokens_");
  EXPECT_EQ(plan.spec.stages.back().kind, "tokens");
  int caches = 0;
  for (const auto& s : plan.shards) {
    if (s.key.kind() != "tokens") continue;
    ++caches;
    EXPECT_EQ(s.key.stage(), "tokens_");
    EXPECT_EQ(s.stage_index, 2);
  }
  EXPECT_EQ(caches, 1);
}

// Tokenizing is CPU work: the implicit stage and its shards ask for 0 GPUs, whatever the
// consumer's stage asks for; the consumers keep their own resources.
TEST(TokenCachePlan, TheTokensShardsAskForNoGpu) {
  TempDir d;
  WriteData(d.path());
  WriteFile(d.path() / "spec.yaml",
            SteerSpec() + "    resources: {gpus: 2, timeout: 10m, memory: 1G}\n");
  const Plan plan = ExpandFile(d.path() / "spec.yaml");
  int caches = 0;
  for (const auto& s : plan.shards) {
    if (s.key.kind() != "tokens") {
      EXPECT_EQ(s.resources.gpus, 2);
      EXPECT_EQ(s.resources.memory_mb, 1024);
      continue;
    }
    ++caches;
    EXPECT_EQ(s.resources.gpus, 0);
    EXPECT_EQ(s.resources.timeout_s, 0);
    EXPECT_EQ(s.resources.memory_mb, 0);
    EXPECT_EQ(s.resources.max_attempts, Resources{}.max_attempts);  // retried as any shard
  }
  EXPECT_EQ(caches, 1);
  ASSERT_EQ(plan.spec.stages.back().kind, "tokens");
  EXPECT_EQ(plan.spec.stages.back().resources.gpus, 0);
  EXPECT_EQ(plan.spec.stages.front().resources.gpus, 2);
}

// The planner adds tokens stages; one a spec writes is an error at plan time (exit 2, file:line),
// whatever its params, rather than a shard that fails when it runs.
TEST(TokenCachePlan, ASpecThatNamesKindTokensIsAnError) {
  TempDir d;
  WriteData(d.path());
  // The stage's line (14), or its params' first (17) when it has params.
  for (const auto& [stage, line] : std::vector<std::pair<std::string, int>>{
           {"  - name: cache\n    kind: tokens\n", 14},
           {"  - name: cache\n    kind: tokens\n    params:\n      format: corpus\n"
            "      data: {source: text, path: neutral.txt, tokenizer: tok}\n",
            17}}) {
    WriteFile(d.path() / "spec.yaml", SteerSpec() + stage);
    try {
      LoadSpec((d.path() / "spec.yaml").string(), {}, AllKinds());
      ADD_FAILURE() << "a spec named kind tokens";
    } catch (const SpecError& e) {
      const std::string what = e.what();
      EXPECT_NE(what.find(fmt::format("spec.yaml:{}: ", line)), std::string::npos) << what;
      EXPECT_NE(what.find("stage 'cache': kind tokens is added by the planner for data.source: "
                          "text (docs/data.md); a spec does not name it"),
                std::string::npos)
          << what;
    }
  }
}

TEST(TokenCachePlan, NoCacheWithoutText) {
  TempDir d;
  WriteFile(d.path() / "spec.yaml", "name: s\nkind: pretrain\nseeds: 2\n");
  const auto p = PlanOf(d.path() / "spec.yaml");
  EXPECT_TRUE(p.tokens.empty());
  EXPECT_EQ(p.others.size(), 2u);
}

}  // namespace
}  // namespace seedgrid::data

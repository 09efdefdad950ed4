// The user's text datasets (experiments/data/text_data.h): the CSV reader, JSONL/CSV/text
// tables, the plan-time checks (file:line, exit 2 through SpecError), the data digest in the
// shard id, and the tokenized rows (template, masking, truncation). No LibTorch.
#include <gtest/gtest.h>

#include <fstream>

#include "core/spec.h"
#include "experiments/all_kinds.h"
#include "experiments/data/text_data.h"
#include "test_context.h"
#include "text/template.h"
#include "text/tokenizer.h"
#include "text/unicode.h"
#include "text_fixture.h"

namespace seedgrid::data {
namespace {

using testing::TempDir;
namespace fs = std::filesystem;

TEST(Csv, QuotesCommasNewlinesAndLineNumbers) {
  std::vector<int64_t> lines;
  const auto r = ParseCsv("a,b\r\n\"x, \"\"y\"\"\",2\n\"multi\nline\",3\nlast,\n", "f.csv", &lines);
  ASSERT_EQ(r.size(), 4u);
  EXPECT_EQ(r[1], (std::vector<std::string>{"x, \"y\"", "2"}));
  EXPECT_EQ(r[2], (std::vector<std::string>{"multi\nline", "3"}));
  EXPECT_EQ(r[3], (std::vector<std::string>{"last", ""}));
  EXPECT_EQ(lines, (std::vector<int64_t>{1, 2, 3, 5}));
  EXPECT_THROW(ParseCsv("a\n\"open\n", "f.csv"), DataError);
  try {
    ParseCsv("a\n\"q\"x\n", "f.csv");
    FAIL();
  } catch (const DataError& e) {
    EXPECT_STREQ(e.what(), "f.csv:2: text after a closing quote");
  }
}

TEST(Tables, JsonlCsvAndTextKeepTheirLines) {
  TempDir d;
  WriteFile(d.path() / "a.jsonl", "{\"prompt\": \"p\", \"label\": -1}\n\n{\"prompt\": \"q\"}\n");
  const Table j = ReadTable((d.path() / "a.jsonl").string());
  ASSERT_EQ(j.rows.size(), 2u);
  EXPECT_EQ(j.rows[0].at("label"), "-1");
  EXPECT_EQ(j.lines, (std::vector<int64_t>{1, 3}));
  WriteFile(d.path() / "a.txt", "one\n\n two \n");
  const Table t = ReadTable((d.path() / "a.txt").string());
  EXPECT_EQ(t.lines, (std::vector<int64_t>{1, 3}));
  EXPECT_EQ(t.rows[1].at("text"), " two ");
  WriteFile(d.path() / "bad.jsonl", "{}\n[1]\n");
  EXPECT_THROW(ReadTable((d.path() / "bad.jsonl").string()), DataError);
  EXPECT_THROW(ReadTable((d.path() / "a.tsv").string()), DataError);
}

TEST(TextDataSpec, ShardIdFollowsTheFilesContent) {
  TempDir d;
  WriteData(d.path());
  WriteFile(d.path() / "spec.yaml", SteerSpec());
  const auto id = [&] {
    const Plan plan =
        ExpandSpec(LoadSpec((d.path() / "spec.yaml").string(), {}, AllKinds()), AllKinds());
    for (const auto& s : plan.shards)
      if (s.key.kind() == "lora_steer") return s.key.id();  // (the token cache comes first)
    return ShardId{};
  };
  const auto before = id();
  EXPECT_EQ(id(), before);
  WriteFile(d.path() / "eval.csv", "prompt,label\n\"Is it, though?\",1\nNo way,1\n");
  EXPECT_NE(id(), before);
}

TEST(TextDataSpec, PlanTimeProblemsNameTheFileAndLine) {
  TempDir d;
  WriteData(d.path());
  WriteFile(d.path() / "eval.csv", "prompt,label\nok,1\nhmm,maybe\n");
  WriteFile(d.path() / "pairs.jsonl", "{\"prompt\": \"Q1\", \"response_pos\": \" Yes\"}\n");
  WriteFile(d.path() / "neutral.txt", "\n");
  WriteFile(d.path() / "spec.yaml",
            SteerSpec("        answers: {yes: [\" Yes\"], no: [\" Nope\"]}\n"));
  const std::string p = PlanProblems(d.path() / "spec.yaml");
  const std::string dir = d.str();
  EXPECT_NE(p.find(dir + "/eval.csv:3: label 'maybe' is not 1 or -1"), std::string::npos) << p;
  EXPECT_NE(p.find(dir + "/pairs.jsonl:1: no column 'response_neg'"), std::string::npos) << p;
  EXPECT_NE(p.find(dir + "/neutral.txt:1: no rows (an empty split)"), std::string::npos) << p;
  EXPECT_NE(p.find("' Nope' is 3 tokens"), std::string::npos) << p;
  EXPECT_NE(p.find("spec.yaml:"), std::string::npos) << p;

  fs::remove(d.path() / "eval.csv");
  EXPECT_NE(PlanProblems(d.path() / "spec.yaml").find(dir + "/eval.csv: no such file"),
            std::string::npos);
}

TEST(TextDataSpec, ColumnsMapByName) {
  TempDir d;
  WriteData(d.path());
  WriteFile(d.path() / "eval.csv", "question,honest\nok,1\n");
  // One mapping for every file: the prompt column is `question` in the pairs too.
  WriteFile(d.path() / "pairs.jsonl",
            "{\"question\": \"Q1\", \"response_pos\": \" Yes\", \"response_neg\": \" No\"}\n");
  WriteFile(d.path() / "spec.yaml",
            SteerSpec("        columns: {prompt: question, label: honest}\n"));
  EXPECT_EQ(PlanProblems(d.path() / "spec.yaml"), "");
  WriteFile(d.path() / "spec.yaml", SteerSpec());
  EXPECT_NE(PlanProblems(d.path() / "spec.yaml")
                .find("no column 'prompt' (the prompt column; columns: question, honest)"),
            std::string::npos);
}

TEST(TextEncoder, MasksThePromptAndTruncates) {
  TempDir d;
  WriteTokenizer(d.path());
  const auto tok = text::Tokenizer::FromDirectory(d.path());
  const auto tmpl = text::PromptTemplate::Preset("plain");
  TextDataSpec spec;
  spec.max_len = 64;
  spec.generation_prompt = true;
  const TextEncoder enc(tok, tmpl, spec);
  const auto t = enc.Pair("", "ab", " Yes");
  EXPECT_EQ(t.ids, (std::vector<int32_t>{'a', 'b', 258}));
  EXPECT_EQ(t.prompt_len, 2);
  spec.max_len = 2;
  EXPECT_EQ(enc.Pair("", "ab", " Yes").ids, (std::vector<int32_t>{'b', 258}));
  EXPECT_EQ(enc.Pair("", "ab", " Yes").prompt_len, 1);
  spec.truncate_left = false;
  EXPECT_EQ(enc.Pair("", "ab", " Yes").ids, (std::vector<int32_t>{'a', 'b'}));
  EXPECT_EQ(enc.Pair("", "ab", " Yes").prompt_len, 2);
}

}  // namespace
}  // namespace seedgrid::data

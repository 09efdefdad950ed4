// kind: command, without processes: placeholders (syntax, plan-time check, expansion), the
// `code:` digest and what it does to shard ids, and the metrics files of the results contract.
// The real processes are tested under mpirun in tests/integration/test_command.py.
#include <filesystem>
#include <fstream>
#include <string>

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include "core/spec.h"
#include "experiments/command/code_hash.h"
#include "experiments/command/command.h"
#include "experiments/command/results.h"
#include "experiments/command/template.h"

namespace seedgrid {
namespace {

namespace fs = std::filesystem;
using ::testing::ElementsAre;
using ::testing::HasSubstr;
using ::testing::IsEmpty;

const KindRegistry& Kinds() {
  static const KindRegistry kinds = [] {
    KindRegistry k;
    RegisterCommandConfig(k);
    return k;
  }();
  return kinds;
}

class TempDir {
 public:
  TempDir() {
    char tmpl[] = "/tmp/seedgrid-command-test-XXXXXX";
    path_ = ::mkdtemp(tmpl);
  }
  ~TempDir() { fs::remove_all(path_); }
  std::string Write(const std::string& name, const std::string& text) const {
    fs::path p = fs::path(path_) / name;
    fs::create_directories(p.parent_path());
    std::ofstream(p) << text;
    return p.string();
  }
  const std::string& path() const { return path_; }

 private:
  std::string path_;
};

std::vector<std::string> Problems(const std::string& yaml, const std::string& file) {
  try {
    ParseSpec(yaml, file, {}, Kinds());
  } catch (const SpecError& e) {
    return e.problems();
  }
  return {};
}

TEST(CommandTemplate, NamesEscapesAndSyntaxErrors) {
  EXPECT_THAT(command::PlaceholderNames("--lr={lr} {{x}} {needs.base.dir}/w"),
              ElementsAre("lr", "needs.base.dir"));
  EXPECT_THROW(command::PlaceholderNames("{lr"), std::invalid_argument);
  EXPECT_THROW(command::PlaceholderNames("lr}"), std::invalid_argument);
  EXPECT_THROW(command::PlaceholderNames("{a b}"), std::invalid_argument);
  EXPECT_THROW(command::PlaceholderNames("{}"), std::invalid_argument);
}

TEST(CommandTemplate, ExpandsParamsAsTextAndLeavesEscapedBraces) {
  const Json params = Json::parse(R"({"lr": 0.0003, "model": {"name": "gpt", "layers": [1, 2]},
                                      "flag": true})");
  auto lookup = [&](const std::string& n) -> std::optional<std::string> {
    if (n == "seed") return "7";
    return command::ParamText(params, n);
  };
  EXPECT_EQ(command::ExpandTemplate("--lr={lr} --seed {seed}", lookup), "--lr=0.0003 --seed 7");
  EXPECT_EQ(command::ExpandTemplate("{model.name}:{model.layers}:{flag}", lookup),
            "gpt:[1,2]:true");
  EXPECT_EQ(command::ExpandTemplate("{{\"a\": {seed}}}", lookup), "{\"a\": 7}");
  EXPECT_THROW(command::ExpandTemplate("{nope}", lookup), std::invalid_argument);
}

TEST(CommandTemplate, CheckKnowsParamsAxesRuntimeNamesAndNeeds) {
  const Json params = Json::parse(R"({"train": {"steps": 3}})");
  EXPECT_THAT(command::CheckTemplate("{train.steps} {lr} {seed} {shard_id} {out} {checkpoint} "
                                     "{attempt} {needs.base.dir} {needs.base.h5}",
                                     params, {"lr"}, {"base"}),
              IsEmpty());
  auto unknown = command::CheckTemplate("{lrr}", params, {"lr"}, {});
  ASSERT_EQ(unknown.size(), 1u);
  EXPECT_THAT(unknown[0], HasSubstr("unknown placeholder '{lrr}'"));
  auto need = command::CheckTemplate("{needs.other.dir}", params, {}, {"base"});
  ASSERT_EQ(need.size(), 1u);
  EXPECT_THAT(need[0], HasSubstr("does not need 'other'"));
  EXPECT_THAT(command::CheckTemplate("{needs.base.files}", params, {}, {"base"}).at(0),
              HasSubstr("{needs.<stage>.dir}"));
}

TEST(CommandSpec, UnknownPlaceholderIsAPlanTimeErrorAtItsLine) {
  TempDir dir;
  const std::string spec = dir.Write("s.yaml", R"(name: s
kind: command
grid: {lr: [0.1, 0.2]}
params:
  argv: [python3, train.py, --lr, "{lr}", --steps, "{stepz}"]
)");
  auto problems = Problems(R"(name: s
kind: command
grid: {lr: [0.1, 0.2]}
params:
  argv: [python3, train.py, --lr, "{lr}", --steps, "{stepz}"]
)",
                           spec);
  ASSERT_EQ(problems.size(), 1u) << ::testing::PrintToString(problems);
  EXPECT_THAT(problems[0], HasSubstr(spec + ":5:"));
  EXPECT_THAT(problems[0], HasSubstr("params.argv[5]: unknown placeholder '{stepz}'"));
}

TEST(CommandSpec, OwnParamsGridsAndOverridesAreAccepted) {
  TempDir dir;
  const std::string text = R"(name: s
kind: command
seeds: [0, 1]
grid: {lr: [0.1, 0.2]}
params:
  argv: [python3, train.py, --lr, "{lr}", --width, "{model.width}"]
  env: {TOKENIZERS_PARALLELISM: "false"}
  model: {width: 8}
)";
  const std::string file = dir.Write("s.yaml", text);
  SweepSpec spec = ParseSpec(text, file, {"params.model.width=16"}, Kinds());
  Plan plan = ExpandSpec(spec, Kinds());
  ASSERT_EQ(plan.shards.size(), 4u);
  EXPECT_EQ(plan.shards[0].key.params()["model"]["width"], 16);
  EXPECT_EQ(plan.shards[0].key.params()["cwd"], dir.path());  // "." relative to the spec file
  EXPECT_EQ(plan.shards[0].key.params()["code_digest"], "");
}

TEST(CommandSpec, EditingACodeFileChangesTheShardIdsAndNothingElseDoes) {
  TempDir dir;
  const std::string text = R"(name: s
kind: command
seeds: [0, 1]
params:
  argv: [python3, train.py]
  code: [train.py, "lib/*.py"]
)";
  const std::string file = dir.Write("s.yaml", text);
  dir.Write("train.py", "print('v1')\n");
  dir.Write("lib/util.py", "X = 1\n");
  auto ids = [&] {
    Plan plan = ExpandSpec(ParseSpec(text, file, {}, Kinds()), Kinds());
    std::vector<std::string> out;
    for (const auto& s : plan.shards) out.push_back(s.key.id().hex);
    return out;
  };
  const auto first = ids();
  EXPECT_EQ(ids(), first);  // same content: same ids
  dir.Write("train.py", "print('v2')\n");
  const auto edited = ids();
  EXPECT_NE(edited[0], first[0]);
  EXPECT_NE(edited[1], first[1]);
  dir.Write("train.py", "print('v1')\n");
  EXPECT_EQ(ids(), first);              // content, not timestamps
  dir.Write("lib/more.py", "Y = 2\n");  // a new file the glob matches
  EXPECT_NE(ids(), first);
}

TEST(CommandSpec, AMovedCheckoutKeepsItsShardIds) {
  TempDir a, b;
  const std::string text = R"(name: s
kind: command
params:
  argv: [python3, train.py]
  code: [train.py]
)";
  auto id = [&](const TempDir& d) {
    d.Write("train.py", "print(1)\n");
    Plan plan = ExpandSpec(ParseSpec(text, d.Write("s.yaml", text), {}, Kinds()), Kinds());
    EXPECT_EQ(plan.shards.at(0).key.params()["cwd"], d.path());  // the runner gets the real place
    return plan.shards.at(0).key.id().hex;
  };
  EXPECT_EQ(id(a), id(b));
}

TEST(CommandSpec, ACodePatternThatMatchesNothingIsAnError) {
  TempDir dir;
  const std::string text = R"(name: s
kind: command
params:
  argv: [python3, train.py]
  code: [trian.py]
)";
  auto problems = Problems(text, dir.Write("s.yaml", text));
  ASSERT_EQ(problems.size(), 1u);
  EXPECT_THAT(problems[0], HasSubstr("code[0]: 'trian.py' matches no file"));
  EXPECT_THAT(problems[0], HasSubstr(":5:"));
}

TEST(CommandSpec, CodeDigestCannotBeSetAndArgvIsRequired) {
  TempDir dir;
  const std::string text = R"(name: s
kind: command
params: {code_digest: abc}
)";
  auto problems = Problems(text, dir.Write("s.yaml", text));
  EXPECT_THAT(::testing::PrintToString(problems), HasSubstr("argv: give the command"));
  EXPECT_THAT(::testing::PrintToString(problems), HasSubstr("code_digest: set by seedgrid"));
}

TEST(CommandCode, DigestIsIndependentOfTheCheckoutsLocation) {
  TempDir a, b;
  for (const TempDir* d : {&a, &b}) {
    d->Write("src/x.py", "x\n");
    d->Write("src/sub/y.py", "y\n");
  }
  auto da = command::DigestCode({"src"}, a.path());
  auto db = command::DigestCode({"src"}, b.path());
  EXPECT_THAT(da.problems, IsEmpty());
  EXPECT_THAT(da.files, ElementsAre("src/sub/y.py", "src/x.py"));
  EXPECT_EQ(da.hex, db.hex);
  b.Write("src/sub/y.py", "y2\n");
  EXPECT_NE(command::DigestCode({"src"}, b.path()).hex, da.hex);
}

TEST(CommandResults, MetricsJsonAndJsonl) {
  TempDir dir;
  dir.Write("metrics.jsonl",
            "{\"name\": \"loss\", \"value\": 2.0, \"step\": 0}\n"
            "{\"name\": \"loss\", \"value\": 1.5, \"step\": 10}\n"
            "\n"
            "{\"name\": \"lr\", \"value\": 0.1}\n");
  dir.Write("metrics.json", "{\"acc\": 0.9, \"lr\": 0.2}");
  auto m = command::ReadMetrics(dir.path());
  ASSERT_EQ(m.curves.size(), 1u);
  EXPECT_EQ(m.curves[0].name, "loss");
  EXPECT_THAT(m.curves[0].steps, ElementsAre(0, 10));
  EXPECT_THAT(m.curves[0].values, ElementsAre(2.0, 1.5));
  std::map<std::string, double> finals(m.finals.begin(), m.finals.end());
  EXPECT_EQ(finals.at("loss"), 1.5);
  EXPECT_EQ(finals.at("lr"), 0.2);  // metrics.json wins
  EXPECT_EQ(finals.at("acc"), 0.9);
}

TEST(CommandResults, AMalformedMetricsLineFailsWithFileAndLine) {
  TempDir dir;
  const std::string f = dir.Write("metrics.jsonl", "{\"name\": \"a\", \"value\": 1}\n{oops\n");
  try {
    command::ReadMetrics(dir.path());
    FAIL() << "expected an error";
  } catch (const std::runtime_error& e) {
    EXPECT_THAT(e.what(), HasSubstr(f + ":2: not JSON"));
  }
  dir.Write("metrics.jsonl", "");
  dir.Write("metrics.json", "{\"a\": \"high\"}");
  EXPECT_THROW(command::ReadMetrics(dir.path()), std::runtime_error);
}

}  // namespace
}  // namespace seedgrid

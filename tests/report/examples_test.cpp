// The report's Examples section (coordinator/report/examples.h): a shard file that describes its
// text examples with the root attribute seedgrid_examples is shown in report.md and report.html,
// rows by rank, empty rows skipped, at most kExamplesEach examples a row, the token marked, text
// escaped; a file without the attribute adds nothing, and a bad one a warning.
#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <fstream>
#include <sstream>

#include "coordinator/report/examples.h"
#include "coordinator/report/report.h"
#include "tests/report/fixture.h"

namespace seedgrid {
namespace {

using ::testing::HasSubstr;
using ::testing::Not;

std::string Slurp(const std::string& path) {
  std::ifstream in(path);
  std::stringstream s;
  s << in.rdbuf();
  return s.str();
}

ReportResult TablesOnly(const testing::SweepFixture& f, const testing::TempDir& out) {
  ReportOptions o;
  o.registry_path = f.registry_path();
  o.sweep = f.sweep();
  o.out_dir = out.path().string();
  o.figures = false;
  return WriteReport(o);
}

// 3 rows × 4 slots. Row 1 ranks first, row 0 second; row 2 has no examples.
void WriteExamples(H5Writer& w) {
  std::vector<std::string> prefix(12), token(12), suffix(12);
  for (int k = 0; k < 4; ++k) {
    prefix[static_cast<size_t>(k)] = "zero ";
    token[static_cast<size_t>(k)] = "z" + std::to_string(k);
    suffix[static_cast<size_t>(k)] = " end";
    prefix[static_cast<size_t>(4 + k)] = "a|b <i>\nnext ";
    token[static_cast<size_t>(4 + k)] = " one" + std::to_string(k);
    suffix[static_cast<size_t>(4 + k)] = "!";
  }
  w.WriteStrings("ex/prefix", prefix);
  w.WriteStrings("ex/token", token);
  w.WriteStrings("ex/suffix", suffix);
  w.Write("ex/items", std::vector<int64_t>{4, 2, 0});
  w.Write("ex/rank", std::vector<double>{0.5, 0.75, 0.9});
  w.Write("ex/layer", std::vector<int64_t>{0, 0, 1});
  w.Write("ex/unit", std::vector<int64_t>{7, 8, 9});
  const Json spec = {{"title", "Decoded examples"}, {"prefix", "ex/prefix"},
                     {"token", "ex/token"},         {"suffix", "ex/suffix"},
                     {"items", "ex/items"},         {"rank", "ex/rank"},
                     {"rank_name", "density"},      {"label", {"ex/layer", "ex/unit"}},
                     {"label_name", "layer.unit"}};
  w.Attr("/", report::kExamplesAttr, spec.dump());
}

TEST(ReportExamples, AFileThatDescribesItsExamplesIsShownMarkedAndEscaped) {
  testing::SweepFixture f("examples");
  f.Add({"look", 0, "noop", {}, 0, ShardStatus::kDone, {{"x", 1}}, WriteExamples});
  f.Add({"look", 0, "noop", {}, 1, ShardStatus::kDone, {{"x", 2}}, [](H5Writer& w) {
           w.Write("other", std::vector<int64_t>{1});
         }});
  testing::TempDir out;
  const ReportResult r = TablesOnly(f, out);
  EXPECT_TRUE(r.warnings.empty());
  const std::string md = Slurp(r.index_md), html = Slurp(r.html);
  EXPECT_THAT(md, HasSubstr("## Examples"));
  EXPECT_THAT(md, HasSubstr("### Decoded examples, stage look: look, seed 0"));
  EXPECT_THAT(md, HasSubstr("| layer.unit | density | example |"));
  // Row 0.8 (rank 0.75) first, its 2 filled slots; then row 0.7, 3 of its 4; row 1.9 (empty) not.
  const auto first = md.find("| 0.8 | 0.75 | a\\|b &lt;i&gt;⏎next « one0»! |");
  const auto second = md.find("| 0.7 | 0.5 | zero «z0» end |");
  ASSERT_NE(first, std::string::npos) << md;
  ASSERT_NE(second, std::string::npos) << md;
  EXPECT_LT(first, second);
  EXPECT_THAT(md, HasSubstr("« one1»"));
  EXPECT_THAT(md, HasSubstr("«z2»"));
  EXPECT_THAT(md, Not(HasSubstr("«z3»")));  // kExamplesEach = 3
  EXPECT_THAT(md, Not(HasSubstr("| 1.9 |")));
  EXPECT_THAT(md, Not(HasSubstr("seed 1")));  // the file without examples
  EXPECT_THAT(html, HasSubstr("<h2>Examples</h2>"));
  EXPECT_THAT(html, HasSubstr("<code>zero <mark>z0</mark> end</code>"));
  EXPECT_THAT(html, HasSubstr("a|b &lt;i&gt;⏎next <mark> one0</mark>!"));
}

TEST(ReportExamples, NoAttributeNoSectionAndABadOneAWarning) {
  testing::SweepFixture f("plain");
  f.Add({"look", 0, "noop", {}, 0, ShardStatus::kDone, {{"x", 1}}, [](H5Writer& w) {
           w.Write("other", std::vector<int64_t>{1});
         }});
  f.Add({"look", 0, "noop", {}, 1, ShardStatus::kDone, {{"x", 1}}, [](H5Writer& w) {
           w.Write("other", std::vector<int64_t>{1});
           w.Attr("/", report::kExamplesAttr, R"({"prefix": "missing"})");
         }});
  testing::TempDir out;
  const ReportResult r = TablesOnly(f, out);
  EXPECT_THAT(Slurp(r.index_md), Not(HasSubstr("## Examples")));
  ASSERT_EQ(r.warnings.size(), 1u);
  EXPECT_THAT(r.warnings[0], HasSubstr("examples of "));
}

}  // namespace
}  // namespace seedgrid

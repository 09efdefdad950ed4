#include "coordinator/report/render.h"

#include <gtest/gtest.h>

namespace seedgrid::report {
namespace {

TEST(EscapeLatex, EveryBooktabsSpecialCharacter) {
  EXPECT_EQ(EscapeLatex("a&b%c$d#e_f{g}h"), "a\\&b\\%c\\$d\\#e\\_f\\{g\\}h");
  EXPECT_EQ(EscapeLatex("~^\\"), "\\textasciitilde{}\\textasciicircum{}\\textbackslash{}");
  EXPECT_EQ(EscapeLatex("plain 1.5"), "plain 1.5");
}

TEST(CsvField, QuotesPerRfc4180) {
  EXPECT_EQ(CsvField("plain"), "plain");
  EXPECT_EQ(CsvField("a,b"), "\"a,b\"");
  EXPECT_EQ(CsvField("say \"hi\""), "\"say \"\"hi\"\"\"");
  EXPECT_EQ(CsvField("two\nlines"), "\"two\nlines\"");
}

TEST(EscapeHtml, MarkupCharacters) {
  EXPECT_EQ(EscapeHtml("<a href=\"x\">&'"), "&lt;a href=&quot;x&quot;&gt;&amp;&#39;");
}

TEST(FormatNumber, FourSignificantDigitsAndDashForNaN) {
  EXPECT_EQ(FormatNumber(3.14159265), "3.142");
  EXPECT_EQ(FormatNumber(-0.000123456), "-0.0001235");
  EXPECT_EQ(FormatNumber(std::nan("")), "—");
}

}  // namespace
}  // namespace seedgrid::report

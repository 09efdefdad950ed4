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

TEST(CsvField, CellsASpreadsheetWouldRunGetAQuote) {
  // OWASP CSV injection: = + - @ tab CR at the start of a cell.
  EXPECT_EQ(CsvField("=1+1"), "'=1+1");
  EXPECT_EQ(CsvField("+cmd|' /C calc'!A0"), "'+cmd|' /C calc'!A0");
  EXPECT_EQ(CsvField("-2+3+cmd|' /C calc'!A0"), "'-2+3+cmd|' /C calc'!A0");
  EXPECT_EQ(CsvField("@SUM(A1:A9)"), "'@SUM(A1:A9)");
  EXPECT_EQ(CsvField("\t=1"), "'\t=1");
  EXPECT_EQ(CsvField("\r=1"), "\"'\r=1\"");
  EXPECT_EQ(CsvField("=HYPERLINK(\"x\",\"y\")"), "\"'=HYPERLINK(\"\"x\"\",\"\"y\"\")\"");
  EXPECT_EQ(CsvField("-"), "'-");
  // Numbers, and ';'-lists of them (the seeds and values columns), stay numbers.
  EXPECT_EQ(CsvField("-0.5"), "-0.5");
  EXPECT_EQ(CsvField("+2e-3"), "+2e-3");
  EXPECT_EQ(CsvField("-1.5;2;-inf"), "-1.5;2;-inf");
  EXPECT_EQ(CsvField("-1;=2"), "'-1;=2");
  // Elsewhere in a cell the characters are harmless.
  EXPECT_EQ(CsvField("a=b-c"), "a=b-c");
}

TEST(EscapeMarkdownCell, NoRawHtmlNoCellBreaks) {
  EXPECT_EQ(EscapeMarkdownCell("<script>alert('x')</script>"),
            "&lt;script&gt;alert('x')&lt;/script&gt;");
  EXPECT_EQ(EscapeMarkdownCell("a|b"), "a\\|b");
  EXPECT_EQ(EscapeMarkdownCell("a&amp;b"), "a&amp;amp;b");
  EXPECT_EQ(EscapeMarkdownCell("c:\\dir\\|"), "c:\\\\dir\\\\\\|");
  EXPECT_EQ(EscapeMarkdownCell("two\nlines\r\n"), "two lines  ");
  EXPECT_EQ(EscapeMarkdownCell("plain 1.5 ±"), "plain 1.5 ±");
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

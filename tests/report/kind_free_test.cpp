// The report is generic: what it shows of a kind comes from the kind registry (core/kinds.h,
// KindConfig::report), so no file of coordinator/report may name a registered kind. A kind name
// there (a metric list, a dataset path, an `if (kind == ...)`) would be a kind's knowledge that
// adding a kind cannot reach through its own folder.
#include <gtest/gtest.h>

#include <algorithm>
#include <cctype>
#include <filesystem>
#include <fstream>
#include <sstream>

#include "core/kinds.h"

namespace seedgrid {

void RegisterTestKinds(KindRegistry& kinds);  // tests/kinds (generated)

namespace {

namespace fs = std::filesystem;

bool IsWordChar(char c) { return std::isalnum(static_cast<unsigned char>(c)) || c == '_'; }

// Lines of `text` where `word` occurs as a whole identifier-like word.
std::vector<int> WordLines(const std::string& text, const std::string& word) {
  std::vector<int> lines;
  for (size_t at = text.find(word); at != std::string::npos; at = text.find(word, at + 1)) {
    const bool starts = at == 0 || !IsWordChar(text[at - 1]);
    const bool ends = at + word.size() == text.size() || !IsWordChar(text[at + word.size()]);
    if (starts && ends)
      lines.push_back(1 + static_cast<int>(std::count(text.begin(), text.begin() + at, '\n')));
  }
  return lines;
}

TEST(ReportSources, NameNoRegisteredKind) {
  KindRegistry test_kinds;
  RegisterTestKinds(test_kinds);
  std::vector<std::string> names = AllKinds().Names();
  for (const auto& n : test_kinds.Names()) names.push_back(n);
  ASSERT_FALSE(names.empty());
  const fs::path dir = fs::path(SEEDGRID_SOURCE_DIR) / "coordinator" / "report";
  size_t files = 0;
  for (const auto& e : fs::directory_iterator(dir)) {
    const std::string ext = e.path().extension().string();
    if (ext != ".cpp" && ext != ".h") continue;
    ++files;
    std::ifstream in(e.path());
    std::stringstream s;
    s << in.rdbuf();
    for (const auto& name : names) {
      for (int line : WordLines(s.str(), name))
        ADD_FAILURE() << e.path().string() << ":" << line << " names kind '" << name
                      << "': move it into the kind's report defaults (KindConfig::report)";
    }
  }
  EXPECT_GE(files, 5u);
}

TEST(ReportSources, TheScanFindsAWord) {
  // The scan itself: whole words only, with their line.
  EXPECT_EQ(WordLines("a\nkind == \"echo\"\n", "echo"), std::vector<int>{2});
  EXPECT_TRUE(WordLines("echoes echo_curve pre_echo", "echo").empty());
}

}  // namespace
}  // namespace seedgrid

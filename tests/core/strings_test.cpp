#include "core/strings.h"

#include <gtest/gtest.h>

#include <cstdlib>

namespace seedgrid {
namespace {

TEST(Strings, JoinPutsTheSeparatorBetweenPartsOnly) {
  EXPECT_EQ(Join({}, ", "), "");
  EXPECT_EQ(Join({"a"}, ", "), "a");
  EXPECT_EQ(Join({"a", "", "c"}, "/"), "a//c");
}

TEST(Strings, TrimDropsAsciiSpaceAtBothEnds) {
  EXPECT_EQ(Trim("  a b \t\r\n"), "a b");
  EXPECT_EQ(Trim("\v\f"), "");
  EXPECT_EQ(Trim(""), "");
  EXPECT_EQ(Trim("x"), "x");
}

TEST(Strings, EnvReadsUnsetAsEmpty) {
  ::unsetenv("SEEDGRID_STRINGS_TEST");
  EXPECT_EQ(Env("SEEDGRID_STRINGS_TEST"), "");
  ::setenv("SEEDGRID_STRINGS_TEST", "v=1", 1);
  EXPECT_EQ(Env("SEEDGRID_STRINGS_TEST"), "v=1");
  ::unsetenv("SEEDGRID_STRINGS_TEST");
}

TEST(Strings, EnvIntFallsBackUnlessAWholeNumber) {
  ::unsetenv("SEEDGRID_STRINGS_TEST");
  EXPECT_EQ(EnvInt("SEEDGRID_STRINGS_TEST", 7), 7);
  ::setenv("SEEDGRID_STRINGS_TEST", "12", 1);
  EXPECT_EQ(EnvInt("SEEDGRID_STRINGS_TEST", 7), 12);
  ::setenv("SEEDGRID_STRINGS_TEST", "-3", 1);
  EXPECT_EQ(EnvInt("SEEDGRID_STRINGS_TEST", 7), -3);
  for (const char* bad : {"", "4x", "abc", "99999999999"}) {
    ::setenv("SEEDGRID_STRINGS_TEST", bad, 1);
    EXPECT_EQ(EnvInt("SEEDGRID_STRINGS_TEST", 7), 7) << bad;
  }
  ::unsetenv("SEEDGRID_STRINGS_TEST");
}

}  // namespace
}  // namespace seedgrid

// `seedgrid serve`'s safety functions (coordinator/serve/safety.h) and the hint `seedgrid
// submit` prints. The server and its API over a real sweep: test_serve.py, test_browser.py.
#include "coordinator/serve/safety.h"

#include <gtest/gtest.h>
#include <stdlib.h>

#include <filesystem>
#include <fstream>

#include "coordinator/submit/submit.h"

namespace seedgrid::serve {
namespace {

namespace fs = std::filesystem;

class ResolveUnderTest : public ::testing::Test {
 protected:
  void SetUp() override {
    char tmpl[] = "/tmp/sg-serve-test.XXXXXX";
    base_ = mkdtemp(tmpl);
    root_ = base_ / "runs" / "sweep";
    fs::create_directories(root_ / "stage");
    std::ofstream(root_ / "stage" / "a.h5") << "x";
    std::ofstream(base_ / "runs" / "registry.sqlite") << "secret";
  }
  void TearDown() override { fs::remove_all(base_); }
  fs::path base_, root_;
};

TEST_F(ResolveUnderTest, AcceptsPathsInside) {
  auto p = ResolveUnder(root_, "stage/a.h5");
  ASSERT_TRUE(p);
  EXPECT_EQ(*p, fs::canonical(root_ / "stage" / "a.h5"));
  // Not existing yet is fine (the server answers 404).
  EXPECT_TRUE(ResolveUnder(root_, "stage/b.logs/attempt-1.out"));
  // "%2e%2e" reaches here only after the server decoded once: a literal name, not "..".
  EXPECT_TRUE(ResolveUnder(root_, "%2e%2e/registry.sqlite"));
}

TEST_F(ResolveUnderTest, RefusesEveryWayOut) {
  for (const char* rel :
       {"../registry.sqlite", "..", "stage/../../registry.sqlite", "stage/..", "./stage/a.h5",
        "stage//a.h5", "/etc/passwd", "", "stage\\..\\..\\registry.sqlite", "stage/a.h5/"}) {
    EXPECT_FALSE(ResolveUnder(root_, rel)) << rel;
  }
  EXPECT_FALSE(ResolveUnder(root_, std::string_view("stage/a\0/x", 10)));
}

TEST_F(ResolveUnderTest, RefusesSymlinksThatLeave) {
  fs::create_symlink(base_ / "runs" / "registry.sqlite", root_ / "stage" / "link");
  fs::create_directory_symlink(base_ / "runs", root_ / "up");
  EXPECT_FALSE(ResolveUnder(root_, "stage/link"));
  EXPECT_FALSE(ResolveUnder(root_, "up/registry.sqlite"));
  fs::create_symlink(root_ / "stage" / "a.h5", root_ / "inside");
  EXPECT_TRUE(ResolveUnder(root_, "inside"));
}

TEST(HtmlEscape, EscapesMarkupAndQuotes) {
  EXPECT_EQ(HtmlEscape("<img src=x onerror=\"a('b')\">&"),
            "&lt;img src=x onerror=&quot;a(&#39;b&#39;)&quot;&gt;&amp;");
  EXPECT_EQ(HtmlEscape("plain ünïcode"), "plain ünïcode");
}

TEST(Bind, OnlyLoopbackAddressesAreLoopback) {
  for (const char* b : {"127.0.0.1", "127.1.2.3", "localhost", "::1", "[::1]"}) {
    EXPECT_TRUE(IsLoopbackBind(b)) << b;
  }
  for (const char* b : {"0.0.0.0", "::", "10.0.0.5", "192.168.1.1", "example.org", "1270.0.0.1"}) {
    EXPECT_FALSE(IsLoopbackBind(b)) << b;
  }
}

TEST(Token, GeneratedTokensAreLongRandomAndCompareExactly) {
  const std::string a = GenerateToken(), b = GenerateToken();
  EXPECT_EQ(a.size(), 32u);
  EXPECT_NE(a, b);
  EXPECT_TRUE(TokenEquals(a, a));
  EXPECT_FALSE(TokenEquals(a.substr(0, 31), a));
  EXPECT_FALSE(TokenEquals(a + "0", a));
  EXPECT_FALSE(TokenEquals("", a));
  EXPECT_FALSE(TokenEquals("", ""));  // no token configured never matches
}

TEST(ShardIdText, HexOnly) {
  EXPECT_TRUE(IsShardIdText("3fa9"));
  EXPECT_TRUE(IsShardIdText(std::string(64, 'a')));
  EXPECT_FALSE(IsShardIdText(std::string(65, 'a')));
  EXPECT_FALSE(IsShardIdText("../x"));
  EXPECT_FALSE(IsShardIdText("3FA9"));
  EXPECT_FALSE(IsShardIdText(""));
}

TEST(SubmitServeHint, NamesTheServeCommandAndThePortForward) {
  const std::string h =
      ServeHint("/opt/sg/seedgrid", "/scratch/runs/registry.sqlite", "ana", "login1");
  EXPECT_NE(h.find("/opt/sg/seedgrid serve --registry /scratch/runs/registry.sqlite"),
            std::string::npos)
      << h;
  EXPECT_NE(h.find("ssh -N -L 8765:127.0.0.1:8765 ana@login1"), std::string::npos) << h;
  EXPECT_NE(h.find("http://127.0.0.1:8765/"), std::string::npos) << h;
}

}  // namespace
}  // namespace seedgrid::serve

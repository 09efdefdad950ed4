// The checks a launch makes before it takes a file on disk as a shard's result (issue 13).
#include "core/shard_check.h"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <filesystem>
#include <fstream>

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include "core/store.h"

namespace seedgrid {
namespace {

namespace fs = std::filesystem;
using ::testing::HasSubstr;

class ShardCheckTest : public ::testing::Test {
 protected:
  void SetUp() override {
    char tmpl[] = "/tmp/seedgrid-check-XXXXXX";
    dir_ = ::mkdtemp(tmpl);
  }
  void TearDown() override { fs::remove_all(dir_); }

  std::string Write(const std::string& hex) {
    const std::string path = dir_ + "/" + hex + ".h5";
    H5Writer w(path);
    w.Write("chaos/values", std::vector<double>{1, 2, 3});
    ShardFileHeader h;
    h.key = ShardKey({.id = ShardId{hex}, .stage = "a", .kind = "chaos"});
    h.sweep = "s";
    WriteShardAttributes(w, h, {{"value", 1.5}});
    w.Close();
    return path;
  }

  std::string dir_;
};

TEST_F(ShardCheckTest, AWholeFileOfTheShardPasses) {
  const std::string p = Write("0123456789abcdef");
  EXPECT_EQ(CheckShardFile(p, ShardId{"0123456789abcdef"}, {"chaos/values"}), std::nullopt);
}

TEST_F(ShardCheckTest, EachKindOfDamageIsNamed) {
  const ShardId id{"0123456789abcdef"};
  const std::string p = Write(id.hex);
  EXPECT_THAT(CheckShardFile(p, id, {"chaos/values", "eval/missing"}).value_or(""),
              HasSubstr("dataset eval/missing missing"));
  EXPECT_THAT(CheckShardFile(p, ShardId{"fedcba9876543210"}, {}).value_or(""),
              HasSubstr("it is shard 0123456789abcdef's file"));
  ASSERT_EQ(::truncate(p.c_str(), fs::file_size(p) / 2), 0);
  EXPECT_THAT(CheckShardFile(p, id, {}).value_or(""), HasSubstr("does not open as HDF5"));
  ASSERT_EQ(::truncate(p.c_str(), 0), 0);
  EXPECT_THAT(CheckShardFile(p, id, {}).value_or(""), HasSubstr("empty file"));
  std::ofstream(p) << "not an HDF5 file at all, but long enough to look like something";
  EXPECT_THAT(CheckShardFile(p, id, {}).value_or(""), HasSubstr("does not open as HDF5"));
  EXPECT_THAT(CheckShardFile(dir_ + "/nope.h5", id, {}).value_or(""), HasSubstr("cannot stat"));
}

TEST_F(ShardCheckTest, StampChangesWithAnyRewriteEvenWithSameSizeAndMtime) {
  const std::string p = Write("0123456789abcdef");
  const auto before = FileStampOf(p);
  ASSERT_TRUE(before);
  EXPECT_NE(*before, 0);
  EXPECT_EQ(FileStampOf(p), before);  // stable while untouched
  struct stat st {};
  ASSERT_EQ(::stat(p.c_str(), &st), 0);
  // Rewrite the same bytes and put the mtime back (cp -p does as much): ctime moves on.
  const std::string bytes = [&] {
    std::ifstream in(p, std::ios::binary);
    return std::string(std::istreambuf_iterator<char>(in), {});
  }();
  ::usleep(20000);
  std::ofstream(p, std::ios::binary | std::ios::trunc) << bytes;
  const timespec times[2] = {st.st_atim, st.st_mtim};
  ASSERT_EQ(::utimensat(AT_FDCWD, p.c_str(), times, 0), 0);
  EXPECT_NE(FileStampOf(p), before);
  EXPECT_EQ(FileStampOf(dir_ + "/missing"), std::nullopt);
}

TEST_F(ShardCheckTest, MoveAsideKeepsEveryDamagedFile) {
  const std::string p = Write("0123456789abcdef");
  const std::string a = MoveAside(p);
  EXPECT_FALSE(fs::exists(p));
  EXPECT_THAT(a, HasSubstr(".h5.damaged-"));
  Write("0123456789abcdef");
  const std::string b = MoveAside(p);  // same second: a suffix, not an overwrite
  EXPECT_NE(a, b);
  EXPECT_TRUE(fs::exists(a));
  EXPECT_TRUE(fs::exists(b));
}

TEST_F(ShardCheckTest, DirStatFindsFilesByDirectory) {
  const std::string p = Write("0123456789abcdef");
  DirStat ds;
  struct stat st {};
  EXPECT_TRUE(ds.Stat(p, &st));
  EXPECT_EQ(FileStamp(st), FileStampOf(p));
  EXPECT_FALSE(ds.Stat(dir_ + "/other.h5", &st));
  EXPECT_FALSE(ds.Stat(dir_ + "/no/such/dir.h5", &st));
}

}  // namespace
}  // namespace seedgrid
